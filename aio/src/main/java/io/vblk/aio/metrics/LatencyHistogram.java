package io.vblk.aio.metrics;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;

/**
 * Home thread: the one thread that calls {@link #record} (the owning IoThread). No locking.
 * {@link #snapshot()} from any thread: every word is written and read with opaque accesses, so a
 * snapshot never sees a torn long, only one that may lag the writer by the records in progress.
 *
 * <p>A log-linear histogram of non-negative longs: nanoseconds for latencies, counts for sizes (the
 * io_submit batch sizes, the queue depth seen at pop). One writer records without allocation,
 * lock or fence; any thread takes a {@link Snapshot}.
 *
 * <p>Buckets. A value {@code v} is filed by {@code u = v - 1} (so every bucket's inclusive upper
 * bound is a round number, as Prometheus's {@code le} wants): {@code u < 8} gets bucket {@code u}
 * (values 1..8 exact; 0 joins 1); above, each power of two is cut into {@value #SUB_BUCKETS}
 * equal parts, so a bucket is at most 1/8 of its lower bound wide:
 *
 * <pre>
 *   bucket:        0   1  ...  7 |  8   9  ... 15 | 16    17    ... 23 | 24  ...
 *   values (le):   1   2  ...  8 |  9  10  ... 16 | 18    20    ... 32 | 36  ...
 *                  exact          | width 1        | width 2             | width 4
 * </pre>
 *
 * Every power of two and every 1.5 x a power of two from 8 up is a bucket bound, so exported
 * bounds can be chosen among those ({@link #isBound}). 488 buckets cover the whole long range.
 */
public final class LatencyHistogram {
    /** log2 of the parts each power of two is cut into. */
    static final int SUB_BITS = 3;
    public static final int SUB_BUCKETS = 1 << SUB_BITS;
    /** Buckets for every long: the top power of two (2^62) starts bucket (63 - 3) * 8. */
    public static final int BUCKETS = (64 - SUB_BITS) * SUB_BUCKETS;

    private static final VarHandle COUNTS = MethodHandles.arrayElementVarHandle(long[].class);
    private static final VarHandle SUM;
    private static final VarHandle MAX;

    static {
        try {
            MethodHandles.Lookup l = MethodHandles.lookup();
            SUM = l.findVarHandle(LatencyHistogram.class, "sum", long.class);
            MAX = l.findVarHandle(LatencyHistogram.class, "max", long.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    private final long[] counts = new long[BUCKETS];
    @SuppressWarnings("unused") // through SUM
    private long sum;
    @SuppressWarnings("unused") // through MAX
    private long max;

    /**
     * Files one value; negative values (a clock that stepped back) count as 0. Home thread (the
     * single writer): the read-increment-write below is safe only because no other thread writes.
     */
    public void record(long value) {
        long v = Math.max(value, 0);
        int i = index(v);
        // Opaque: whole-word stores a snapshot reads whole; no ordering is needed between the
        // words (a snapshot may see the count before the sum). Pairs with snapshot()'s getOpaque.
        COUNTS.setOpaque(counts, i, (long) COUNTS.getOpaque(counts, i) + 1);
        SUM.setOpaque(this, (long) SUM.getOpaque(this) + v);
        if (v > (long) MAX.getOpaque(this)) {
            MAX.setOpaque(this, v);
        }
    }

    /** The bucket of {@code v >= 0}. */
    public static int index(long v) {
        long u = v - 1;
        if (u < SUB_BUCKETS) {
            return (int) Math.max(u, 0);
        }
        int msb = 63 - Long.numberOfLeadingZeros(u);
        int shift = msb - SUB_BITS;
        return ((shift + 1) << SUB_BITS) | (int) ((u >>> shift) & (SUB_BUCKETS - 1));
    }

    /** The largest value bucket {@code i} holds (inclusive); saturates at Long.MAX_VALUE. */
    public static long upperBound(int i) {
        if (i < SUB_BUCKETS) {
            return i + 1;
        }
        int shift = (i >>> SUB_BITS) - 1;
        long lowU = (long) (SUB_BUCKETS | (i & (SUB_BUCKETS - 1))) << shift;
        long up = lowU + (1L << shift); // highest u + 1
        return up < 0 ? Long.MAX_VALUE : up;
    }

    /** True when {@code bound} is some bucket's upper bound, so "values <= bound" is exact. */
    public static boolean isBound(long bound) {
        return bound >= 1 && upperBound(index(bound)) == bound;
    }

    /** Checks that {@code bounds} are increasing bucket bounds; returns them. Any thread. */
    public static long[] requireBounds(long[] bounds) {
        for (int k = 0; k < bounds.length; k++) {
            if (!isBound(bounds[k]) || (k > 0 && bounds[k] <= bounds[k - 1])) {
                throw new IllegalArgumentException("histogram bound " + bounds[k] + " at " + k
                        + " is not an increasing bucket bound (powers of two, 1.5 x powers of two from 12, 1..8)");
            }
        }
        return bounds;
    }

    /** A consistent-enough copy of the counts. Any thread; allocates. */
    public Snapshot snapshot() {
        long[] c = new long[BUCKETS];
        long n = 0;
        for (int i = 0; i < BUCKETS; i++) {
            c[i] = (long) COUNTS.getOpaque(counts, i);
            n += c[i];
        }
        return new Snapshot(c, n, (long) SUM.getOpaque(this), (long) MAX.getOpaque(this));
    }

    /**
     * Counts at one moment. {@link #count()} is the sum of the bucket counts (so it always agrees
     * with the buckets); {@link #sum()} and {@link #max()} may include a record the buckets do not.
     */
    public static final class Snapshot {
        private final long[] counts;
        private final long count;
        private final long sum;
        private final long max;

        Snapshot(long[] counts, long count, long sum, long max) {
            this.counts = counts;
            this.count = count;
            this.sum = sum;
            this.max = max;
        }

        /** An empty snapshot, to add others to. */
        public static Snapshot empty() {
            return new Snapshot(new long[BUCKETS], 0, 0, 0);
        }

        public long count() {
            return count;
        }

        public long sum() {
            return sum;
        }

        public long max() {
            return max;
        }

        public double mean() {
            return count == 0 ? 0 : (double) sum / count;
        }

        public long bucketCount(int i) {
            return counts[i];
        }

        /**
         * The value at quantile {@code q} (0..1): the upper bound of the bucket holding the value
         * of rank ceil(q * count), capped at {@link #max()}; so at most 1/8 above the true value.
         * 0 when empty.
         */
        public long quantile(double q) {
            if (q < 0 || q > 1 || Double.isNaN(q)) {
                throw new IllegalArgumentException("quantile must be in 0..1, got " + q);
            }
            if (count == 0) {
                return 0;
            }
            long rank = Math.max(1, (long) Math.ceil(q * count));
            long seen = 0;
            for (int i = 0; i < BUCKETS; i++) {
                seen += counts[i];
                if (seen >= rank) {
                    return max > 0 ? Math.min(upperBound(i), max) : upperBound(i);
                }
            }
            return max;
        }

        /**
         * Counts of values {@code <= bounds[k]}, not cumulative: element k holds the values above
         * {@code bounds[k-1]} up to {@code bounds[k]}; a last extra element holds the rest (+Inf).
         * Every bound must satisfy {@link LatencyHistogram#isBound} and be increasing.
         */
        public long[] countsUpTo(long[] bounds) {
            long[] out = new long[bounds.length + 1];
            int k = 0;
            for (int i = 0; i < BUCKETS; i++) {
                long up = upperBound(i);
                while (k < bounds.length && bounds[k] < up) {
                    k++;
                }
                out[k] += counts[i];
            }
            return out;
        }

        /** This plus {@code other}, bucket by bucket (e.g. all queues of a device). */
        public Snapshot plus(Snapshot other) {
            long[] c = new long[BUCKETS];
            for (int i = 0; i < BUCKETS; i++) {
                c[i] = counts[i] + other.counts[i];
            }
            return new Snapshot(c, count + other.count, sum + other.sum, Math.max(max, other.max));
        }

        @Override
        public String toString() {
            return "Snapshot[count=" + count + " p50=" + quantile(0.5) + " p99=" + quantile(0.99)
                    + " max=" + max + "]";
        }
    }
}
