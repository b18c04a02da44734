package io.vblk.tools.jmh;

import io.vblk.aio.metrics.LatencyHistogram;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

import java.util.concurrent.TimeUnit;

/**
 * What the device's latency metering costs per request: one {@link LatencyHistogram#record} (done
 * per request at the end of a completion section), against one {@code System.nanoTime()} (what a
 * clock read per request would cost instead; the queue reads the clock once per pass and once per
 * section). Run: {@code scripts/jmh.sh LatencyHistogramBenchmark -prof gc}.
 *
 * <p>Home thread: the JMH worker thread is the histogram's single writer.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Fork(value = 1)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
public class LatencyHistogramBenchmark {
    private final LatencyHistogram h = new LatencyHistogram();
    private long x = 0x9E3779B97F4A7C15L;

    /** A latency-like value, 1 us .. ~1 ms, from a xorshift. */
    private long next() {
        long v = x;
        v ^= v << 13;
        v ^= v >>> 7;
        v ^= v << 17;
        x = v;
        return 1000 + ((v >>> 1) & 0xFFFFF);
    }

    @Benchmark
    public long baseline() {
        return next();
    }

    @Benchmark
    public void record() {
        h.record(next());
    }

    @Benchmark
    public long nanoTime() {
        return System.nanoTime() + next();
    }
}
