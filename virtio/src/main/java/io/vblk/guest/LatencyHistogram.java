package io.vblk.guest;

import java.util.Arrays;

/**
 * Home thread: the thread that records (one vCPU thread). {@link #add} merges histograms
 * after their recorders stopped. No locking.
 *
 * <p>A log-linear histogram of non-negative values (nanoseconds here) in one preallocated
 * {@code long[]}: recording is an index computation and an increment, never an allocation.
 * Values below 2^{@value #SUB_BITS} get a bucket each; above that, every power-of-two range is
 * split into 2^({@value #SUB_BITS}-1) equal buckets, so a reported value is within
 * 1/2^({@value #SUB_BITS}-1) (0.8%) of the true one, as in HdrHistogram with two and a half
 * significant digits.
 */
public final class LatencyHistogram {
    /** log2 of the number of linear buckets at the bottom. */
    public static final int SUB_BITS = 8;
    private static final int HALF = 1 << (SUB_BITS - 1);
    /** Bucket count for values up to 2^63-1: linear part plus HALF buckets per power of two above it. */
    private static final int BUCKETS = (63 - SUB_BITS + 2) * HALF + HALF;

    private final long[] counts = new long[BUCKETS];
    private long total;
    private long min = Long.MAX_VALUE;
    private long max;
    private long sum;

    /** Bucket index of {@code v >= 0}. */
    static int index(long v) {
        if (v < 2L * HALF) {
            return (int) v;
        }
        int msb = 63 - Long.numberOfLeadingZeros(v);
        int shift = msb - SUB_BITS + 1;
        // The top SUB_BITS bits of v, in [HALF, 2*HALF).
        int mantissa = (int) (v >>> shift);
        return shift * HALF + mantissa;
    }

    /** Smallest value that lands in bucket {@code i}. */
    static long lowestIn(int i) {
        if (i < 2 * HALF) {
            return i;
        }
        int shift = i / HALF - 1;
        long mantissa = i - (long) shift * HALF;
        return mantissa << shift;
    }

    /** Largest value that lands in bucket {@code i}. */
    static long highestIn(int i) {
        if (i < 2 * HALF) {
            return i;
        }
        int shift = i / HALF - 1;
        long mantissa = i - (long) shift * HALF;
        return ((mantissa + 1) << shift) - 1;
    }

    /** Records one value; negative values (a clock that went backwards) count as 0. */
    public void record(long value) {
        long v = Math.max(0, value);
        counts[index(v)]++;
        total++;
        sum += v;
        if (v < min) {
            min = v;
        }
        if (v > max) {
            max = v;
        }
    }

    public long count() {
        return total;
    }

    public long min() {
        return total == 0 ? 0 : min;
    }

    public long max() {
        return max;
    }

    public double mean() {
        return total == 0 ? 0 : (double) sum / total;
    }

    /**
     * The value at {@code percentile} (0..100): the highest value of the bucket holding the
     * ceil(p/100 * count)-th smallest recording, capped at the exact maximum. 0 when empty.
     */
    public long percentile(double percentile) {
        if (total == 0) {
            return 0;
        }
        double p = Math.min(100.0, Math.max(0.0, percentile));
        long rank = Math.max(1, (long) Math.ceil(p / 100.0 * total));
        long seen = 0;
        for (int i = 0; i < BUCKETS; i++) {
            seen += counts[i];
            if (seen >= rank) {
                return Math.min(highestIn(i), max);
            }
        }
        return max;
    }

    /** Adds every recording of {@code other} to this one. */
    public void add(LatencyHistogram other) {
        for (int i = 0; i < BUCKETS; i++) {
            counts[i] += other.counts[i];
        }
        total += other.total;
        sum += other.sum;
        if (other.total > 0) {
            min = Math.min(min, other.min);
            max = Math.max(max, other.max);
        }
    }

    public void clear() {
        Arrays.fill(counts, 0);
        total = 0;
        sum = 0;
        min = Long.MAX_VALUE;
        max = 0;
    }
}
