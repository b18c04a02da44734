package io.vblk.guest;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.Arrays;
import java.util.SplittableRandom;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

@Timeout(10)
class LatencyHistogramTest {

    @Test
    void bucketsTileTheValueRangeWithoutGapsOrOverlap() {
        long expectLow = 0;
        for (int i = 0; ; i++) {
            long lo = LatencyHistogram.lowestIn(i);
            long hi = LatencyHistogram.highestIn(i);
            assertThat(lo).as("bucket %d", i).isEqualTo(expectLow);
            assertThat(hi).isGreaterThanOrEqualTo(lo);
            assertThat(LatencyHistogram.index(lo)).isEqualTo(i);
            assertThat(LatencyHistogram.index(hi)).isEqualTo(i);
            // Relative width at most 1/128 above the linear range.
            if (lo >= 256) {
                assertThat((double) (hi - lo + 1) / lo).isLessThanOrEqualTo(1.0 / 128);
            }
            if (hi == Long.MAX_VALUE) {
                break;
            }
            expectLow = hi + 1;
        }
    }

    @Test
    void percentilesAreWithinOnePercentOfTheExactOnes() {
        long seed = System.nanoTime();
        System.out.println("percentilesAreWithinOnePercentOfTheExactOnes seed=" + seed);
        SplittableRandom rnd = new SplittableRandom(seed);
        LatencyHistogram h = new LatencyHistogram();
        long[] values = new long[100_000];
        for (int i = 0; i < values.length; i++) {
            // Log-uniform between 100 ns and 100 ms, like latencies.
            values[i] = (long) Math.exp(Math.log(100) + rnd.nextDouble() * Math.log(1e6));
            h.record(values[i]);
        }
        Arrays.sort(values);
        for (double p : new double[] {1, 50, 90, 99, 99.9, 99.99}) {
            long exact = values[(int) Math.ceil(p / 100 * values.length) - 1];
            assertThat((double) h.percentile(p)).as("seed %d p%s", seed, p)
                    .isCloseTo(exact, within(exact * 0.01 + 1));
        }
        assertThat(h.percentile(100)).isEqualTo(values[values.length - 1]);
        assertThat(h.min()).isEqualTo(values[0]);
        assertThat(h.max()).isEqualTo(values[values.length - 1]);
        assertThat(h.count()).isEqualTo(values.length);
    }

    @Test
    void mergingAddsCountsAndExtremes() {
        LatencyHistogram a = new LatencyHistogram();
        LatencyHistogram b = new LatencyHistogram();
        for (int i = 1; i <= 100; i++) {
            a.record(i);
            b.record(1000 + i);
        }
        a.add(b);
        assertThat(a.count()).isEqualTo(200);
        assertThat(a.min()).isEqualTo(1);
        assertThat(a.max()).isEqualTo(1100);
        assertThat(a.percentile(50)).isEqualTo(100);
        assertThat(a.mean()).isCloseTo((5050 + 105050) / 200.0, within(1e-9));
        LatencyHistogram empty = new LatencyHistogram();
        assertThat(empty.percentile(99)).isZero();
        assertThat(empty.min()).isZero();
    }
}
