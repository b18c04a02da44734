package io.vblk.aio.metrics;

import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

@Timeout(value = 30, unit = TimeUnit.SECONDS)
class LatencyHistogramTest {

    @Test
    void smallValuesAreExactAndZeroJoinsOne() {
        for (long v = 1; v <= 16; v++) {
            assertThat(LatencyHistogram.upperBound(LatencyHistogram.index(v))).as("v=%d", v).isEqualTo(v);
        }
        assertThat(LatencyHistogram.index(0)).isZero();
        assertThat(LatencyHistogram.index(1)).isZero();
    }

    @Test
    void everyValueLiesInItsBucketAndBucketsAreContiguous() {
        Random rnd = new Random(42);
        for (int k = 0; k < 200_000; k++) {
            long v = rnd.nextLong() >>> rnd.nextInt(64);
            int i = LatencyHistogram.index(v);
            assertThat(i).isBetween(0, LatencyHistogram.BUCKETS - 1);
            assertThat(v).as("v=%d bucket %d", v, i).isLessThanOrEqualTo(LatencyHistogram.upperBound(i));
            if (i > 0) {
                assertThat(v).as("v=%d bucket %d", v, i).isGreaterThan(LatencyHistogram.upperBound(i - 1));
            }
        }
        for (int i = 1; i < LatencyHistogram.BUCKETS; i++) {
            long prev = LatencyHistogram.upperBound(i - 1);
            if (prev == Long.MAX_VALUE) {
                break;
            }
            assertThat(LatencyHistogram.index(prev + 1)).isEqualTo(i);
        }
        assertThat(LatencyHistogram.index(Long.MAX_VALUE)).isEqualTo(LatencyHistogram.BUCKETS - 1);
        assertThat(LatencyHistogram.upperBound(LatencyHistogram.BUCKETS - 1)).isEqualTo(Long.MAX_VALUE);
    }

    @Test
    void bucketsAreAtMostAnEighthOfTheirValueWide() {
        for (int i = 9; i < LatencyHistogram.BUCKETS - 1; i++) {
            long lo = LatencyHistogram.upperBound(i - 1);
            long hi = LatencyHistogram.upperBound(i);
            assertThat((double) (hi - lo) / lo).as("bucket %d", i).isLessThanOrEqualTo(0.125);
        }
    }

    @Test
    void powersOfTwoAndOneAndAHalfTimesThemAreBounds() {
        for (int k = 0; k < 62; k++) {
            assertThat(LatencyHistogram.isBound(1L << k)).as("2^%d", k).isTrue();
            if (k >= 3) {
                assertThat(LatencyHistogram.isBound(3L << (k - 1))).as("1.5*2^%d", k).isTrue();
            }
        }
        assertThat(LatencyHistogram.isBound(17)).isFalse();
        assertThat(LatencyHistogram.isBound(1000)).isFalse();
        assertThatThrownBy(() -> LatencyHistogram.requireBounds(new long[] {1, 1000}))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("1000");
        assertThatThrownBy(() -> LatencyHistogram.requireBounds(new long[] {4, 2}))
                .isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void quantilesCountSumAndMax() {
        LatencyHistogram h = new LatencyHistogram();
        assertThat(h.snapshot().quantile(0.99)).isZero();
        for (int v = 1; v <= 1000; v++) {
            h.record(v * 1000L); // 1 us .. 1 ms
        }
        LatencyHistogram.Snapshot s = h.snapshot();
        assertThat(s.count()).isEqualTo(1000);
        assertThat(s.sum()).isEqualTo(1000L * 1001 / 2 * 1000);
        assertThat(s.max()).isEqualTo(1_000_000);
        assertThat(s.mean()).isEqualTo(500_500.0);
        // At most 1/8 above the true value, never below it.
        assertThat(s.quantile(0.5)).isBetween(500_000L, 562_500L);
        assertThat(s.quantile(0.99)).isBetween(990_000L, 1_000_000L);
        assertThat(s.quantile(0.999)).isBetween(999_000L, 1_000_000L);
        assertThat(s.quantile(1.0)).isEqualTo(1_000_000);
        assertThat(s.quantile(0.0)).isBetween(1000L, 1125L);
        assertThatThrownBy(() -> s.quantile(1.5)).isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void negativeValuesCountAsZero() {
        LatencyHistogram h = new LatencyHistogram();
        h.record(-5);
        LatencyHistogram.Snapshot s = h.snapshot();
        assertThat(s.count()).isEqualTo(1);
        assertThat(s.sum()).isZero();
        assertThat(s.bucketCount(0)).isEqualTo(1);
    }

    @Test
    void countsUpToBoundsAreExactAtBucketBounds() {
        LatencyHistogram h = new LatencyHistogram();
        long[] values = {0, 1, 2, 3, 4, 5, 8, 9, 16, 17, 32, 33, 1024, 1025, 5000};
        for (long v : values) {
            h.record(v);
        }
        long[] bounds = LatencyHistogram.requireBounds(new long[] {1, 2, 4, 8, 16, 32, 1024});
        long[] c = h.snapshot().countsUpTo(bounds);
        // <=1: 0,1  (2,2]: 2  (2,4]: 3,4  (4,8]: 5,8  (8,16]: 9,16  (16,32]: 17,32  (32,1024]: 33,1024  rest: 1025,5000
        assertThat(c).containsExactly(2, 1, 2, 2, 2, 2, 2, 2);
    }

    @Test
    void snapshotsAdd() {
        LatencyHistogram a = new LatencyHistogram();
        LatencyHistogram b = new LatencyHistogram();
        a.record(10);
        b.record(1000);
        b.record(20);
        LatencyHistogram.Snapshot s = LatencyHistogram.Snapshot.empty().plus(a.snapshot()).plus(b.snapshot());
        assertThat(s.count()).isEqualTo(3);
        assertThat(s.sum()).isEqualTo(1030);
        assertThat(s.max()).isEqualTo(1000);
        assertThat(s.quantile(1.0)).isEqualTo(1000);
    }

    /** A reader on another thread sees counts that only grow and never exceed what was recorded. */
    @Test
    void concurrentSnapshotsNeverGoBackwards() throws Exception {
        LatencyHistogram h = new LatencyHistogram();
        AtomicBoolean stop = new AtomicBoolean();
        long[] recorded = new long[1];
        CompletableFuture<Long> reader = CompletableFuture.supplyAsync(() -> {
            long last = 0;
            long reads = 0;
            while (!stop.get()) {
                LatencyHistogram.Snapshot s = h.snapshot();
                if (s.count() < last) {
                    throw new AssertionError("count went back from " + last + " to " + s.count());
                }
                last = s.count();
                reads++;
            }
            return reads;
        });
        Thread writer = new Thread(() -> {
            for (int i = 0; i < 500_000; i++) {
                h.record(i & 0xffff);
            }
            recorded[0] = 500_000;
        });
        writer.start();
        writer.join();
        stop.set(true);
        assertThat(reader.get(10, TimeUnit.SECONDS)).isPositive();
        assertThat(h.snapshot().count()).isEqualTo(recorded[0]);
    }
}
