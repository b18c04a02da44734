package io.vblk.aio;

import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.TimeoutException;

/**
 * Home thread: the owning context's runs the work; {@link #kick()} and {@link #stop} from any
 * thread ({@link #stop} blocks, so never from a context's home thread).
 *
 * <p>Periodic work on an event loop, stopped in bounded time: run the work, {@link Sleeper#sleep}
 * for the period, run it again. {@link #kick()} ends the current sleep early (QEMU's
 * {@code block_copy_kick}); {@link #stop} sets the stop flag and wakes the task so that it ends
 * now rather than at the end of its period (QEMU's {@code cache_clean_timer_del_and_wait}).
 *
 * <p>Seed 001's window: the task checks the stop flag, does its work, and only then goes to sleep.
 * A stop that lands in between finds the task awake. With {@link Guard#WAKE_ORDER} on, the
 * {@link Sleeper} keeps that wake and the next sleep ends at once, so the task sees the flag and
 * ends; with it off (reproducers only) the wake takes the stale fast path and is lost, and the task
 * sleeps its whole period while {@link #stop} waits.
 */
public final class Periodic {
    private final AioContext ctx;
    private final Runnable work;
    private final long periodNanos;
    private final Sleeper sleeper;
    private final CompletableFuture<Void> stopped = new CompletableFuture<>();
    private volatile boolean stop;
    /** Times the task passed its stop check and ran its work; written on the home thread only. */
    private volatile long runs;

    private Periodic(AioContext ctx, String name, long periodNanos, Runnable work) {
        this.ctx = ctx;
        this.work = work;
        this.periodNanos = periodNanos;
        this.sleeper = new Sleeper(ctx, name, this::tick);
    }

    /**
     * Starts {@code work} on {@code ctx} at once and then every {@code period} (measured from the
     * end of one run to the start of the next). Any thread.
     */
    public static Periodic start(AioContext ctx, String name, Duration period, Runnable work) {
        if (period.isNegative() || period.isZero()) {
            throw new IllegalArgumentException(name + ": the period must be positive, got " + period);
        }
        Periodic p = new Periodic(ctx, name, period.toNanos(), work);
        ctx.runOn(p::tick); // publishes p to the home thread
        return p;
    }

    /** Home thread: the sleeper's callback (time up or woken) and the first run. */
    private void tick() {
        if (stop) {
            sleeper.close();
            stopped.complete(null);
            return;
        }
        runs++; // only this thread writes it
        try {
            work.run();
        } catch (RuntimeException e) {
            sleeper.close();
            stopped.completeExceptionally(e);
            return;
        }
        // The window of seed 001: a stop that came after the check above finds us awake.
        sleeper.sleep(periodNanos);
    }

    /** Ends the current sleep now: the work runs early (or, once stopping, the task ends). Any thread. */
    public void kick() {
        sleeper.wake();
    }

    /**
     * Stops the task: sets the flag and wakes it; returns true once it has ended, false when it
     * did not end within {@code bound} (a lost wake-up, seed 001; the task then ends at the end of
     * its period). A failure of the work is thrown. Any thread but a context's home thread.
     */
    public boolean stop(Duration bound) {
        stop = true;
        sleeper.wake();
        try {
            AioContext.await(stopped, bound);
            return true;
        } catch (CompletionException e) {
            if (e.getCause() instanceof TimeoutException) {
                return false;
            }
            throw e;
        }
    }

    /** Runs of the work so far. Any thread. */
    public long runs() {
        return runs;
    }

    /** The sleeper behind the task, for its meter ({@code vblk.guard.wakes.before.sleep}). */
    public Sleeper sleeper() {
        return sleeper;
    }

    /** The context the work runs on. */
    public AioContext context() {
        return ctx;
    }
}
