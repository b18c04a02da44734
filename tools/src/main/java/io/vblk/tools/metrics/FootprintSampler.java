package io.vblk.tools.metrics;

import io.vblk.aio.AioContext;
import io.vblk.aio.Periodic;
import io.vblk.aio.metrics.Meter;

import java.io.IOException;
import java.time.Duration;

/**
 * Home thread: the context it samples on runs {@link #sampleNow}; the gauges are read from any
 * thread (volatile fields); {@link #stop} from any thread that is no context's home thread.
 *
 * <p>The daemon's footprint as gauges: every {@code period} a {@link Periodic} task on the daemon's
 * main loop reads this process's resident set size, open descriptors and threads from
 * {@code /proc} ({@link ProcessSample}). It is the daemon's periodic work that shutdown must stop
 * in bounded time whatever the period — seed 001's setting: the stop lands while the task is
 * between its stop check and its sleep, and only the {@code Sleeper}'s wake order keeps the stop
 * from waiting out the period. Its sleeper's guard meter
 * ({@code vblk_guard_wakes_before_sleep_total{sleeper="footprint-sampler"}}) counts those stops.
 */
public final class FootprintSampler {
    /** The sleeper's name in the guard meter's tag. */
    public static final String NAME = "footprint-sampler";

    private final Periodic task;
    private final long pid = ProcessHandle.current().pid();
    private volatile double residentBytes = Double.NaN;
    private volatile double openFds = Double.NaN;
    private volatile double threads = Double.NaN;
    private volatile String lastError;

    private final Runnable afterReading;

    private FootprintSampler(AioContext ctx, Duration period, Runnable afterReading) {
        this.afterReading = afterReading;
        this.task = Periodic.start(ctx, NAME, period, this::sampleNow);
    }

    /**
     * Starts sampling on {@code ctx} (first reading at once) and binds the gauges and the sleeper's
     * guard meter to {@code metrics}. Any thread.
     */
    public static FootprintSampler start(VblkMetrics metrics, AioContext ctx, Duration period) {
        FootprintSampler s = new FootprintSampler(ctx, period, () -> { });
        bind(metrics, s, ctx);
        return s;
    }

    /**
     * Seed 001's reproducer: the same sampler, unbound, with {@code afterReading} run on the task
     * after each reading — inside the window between the task's stop check and its sleep.
     */
    public static FootprintSampler startForRepro(AioContext ctx, Duration period, Runnable afterReading) {
        return new FootprintSampler(ctx, period, afterReading);
    }

    private static void bind(VblkMetrics metrics, FootprintSampler s, AioContext ctx) {
        Binding b = metrics.open("footprint");
        metrics.gauge(b, Meter.PROCESS_RESIDENT, s, x -> x.residentBytes, NAME);
        metrics.gauge(b, Meter.PROCESS_OPEN_FDS, s, x -> x.openFds, NAME);
        metrics.gauge(b, Meter.PROCESS_THREADS, s, x -> x.threads, NAME);
        metrics.done(b);
        metrics.bindSleeper(s.task.sleeper(), NAME, ctx);
    }

    /** One reading; a failed one leaves the last figures and is kept for {@link #lastError}. */
    private void sampleNow() {
        try {
            ProcessSample p = ProcessSample.of(pid);
            residentBytes = p.rssKb() * 1024.0;
            openFds = p.fds();
            threads = p.threads();
            lastError = null;
        } catch (IOException | RuntimeException e) {
            lastError = e.toString();
        }
        afterReading.run();
    }

    /** The periodic task (its runs, kicks, sleeper). */
    public Periodic task() {
        return task;
    }

    /** Readings taken so far. */
    public long samples() {
        return task.runs();
    }

    /** Stops that found the task awake and were kept by the wake order (seed 001's window). */
    public long wakesBeforeSleep() {
        return task.sleeper().wakesBeforeSleep();
    }

    /** The last reading's failure, or null. */
    public String lastError() {
        return lastError;
    }

    /** Stops the task: true when it ended within {@code bound}. Never on a context's home thread. */
    public boolean stop(Duration bound) {
        return task.stop(bound);
    }
}
