package io.vblk.tools.repro;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioOptions;
import io.vblk.aio.Guard;
import io.vblk.aio.IoThread;
import io.vblk.aio.Periodic;
import io.vblk.tools.metrics.FootprintSampler;

import java.time.Duration;
import java.util.SplittableRandom;

/**
 * Home thread: the caller's (no context's home thread); owns its IoThread and busy threads.
 *
 * <p>Seed 001 on the product's own periodic work: {@code vblk serve --metrics}'s
 * {@link FootprintSampler}, a {@link Periodic} task on the daemon's main loop (read {@code /proc},
 * sleep the period; shutdown stops it with an early wake). Here it runs with its reading widened by
 * a spin, and sleeps an hour between runs, so a lost wake-up is a hang. The closer kicks it a few times ({@link Periodic#kick()}, QEMU's
 * {@code block_copy_kick}), then stops it ({@link Periodic#stop}: set the flag, wake, wait) —
 * landing, sometimes, after the task has checked its stop flag but before it has gone to sleep.
 * With the guard off the wake reads the sleeper's stale state, sees it awake, skips the kick, and
 * the task sleeps its full hour: {@code stop} times out after {@link ReproOptions#hangAfter()}, and
 * the run checks that the task is indeed asleep (else the verdict is {@code inconclusive}). Busy
 * threads supply the CPU contention that makes the window wide, as in the seed's
 * {@code stress-ng --cpu $(nproc)}; with the guard on every stop under that load ends within the
 * bound ({@code max_stop_ms}).
 */
public final class LostWakeupRepro implements Repro {
    /** How long the task sleeps between runs: far longer than any bound, so a lost wake is a hang. */
    private static final Duration TASK_PERIOD = Duration.ofHours(1);
    /** The task's work between its stop check and its next sleep. */
    private static final int WORK_NS = 1_000_000;

    @Override
    public String hazard() {
        return "lost-wakeup";
    }

    @Override
    public String description() {
        return "seed 001: a stop wake that races the periodic task's sleep is lost and stop() hangs";
    }

    @Override
    public ReproResult run(boolean guardOn, ReproOptions options) throws Exception {
        long deadline = System.nanoTime() + options.timeLimit().toNanos();
        SplittableRandom rnd = new SplittableRandom(options.seed());
        // One core fewer than the machine has: contention that preempts the task inside its window,
        // while leaving the closer a core to aim with.
        Thread[] busy = startBusyThreads(Math.max(1, Runtime.getRuntime().availableProcessors() - 1));
        long wakesBeforeSleep = 0;
        long maxStopNanos = 0;
        try (IoThread io = IoThread.start("repro-iothread", AioOptions.DEFAULT)) {
            AioContext ctx = io.ctx();
            ctx.setGuard(Guard.WAKE_ORDER, guardOn);
            int i = 0;
            for (; i < options.iterations() && System.nanoTime() - deadline < 0; i++) {
                SplittableRandom taskRnd = rnd.split();
                // vblk serve's footprint sampler (its /proc reading), the window widened by a spin.
                Periodic task = FootprintSampler.startForRepro(ctx, TASK_PERIOD,
                        () -> spin(WORK_NS / 2 + taskRnd.nextInt(WORK_NS))).task();
                if (!waitForRuns(task, 1, options)) {
                    task.stop(options.hangAfter());
                    return inconclusive(guardOn, i, "the task did not run its first sample within " + options.hangAfter());
                }
                int kicks = 1 + rnd.nextInt(4);
                for (int k = 0; k < kicks; k++) {
                    long seen = task.runs();
                    task.kick();
                    if (k == kicks - 1) {
                        // Arrive while the task works between its stop check and its sleep: wait to
                        // see it pass the check, then land somewhere in (or just after) its work.
                        if (!waitForRuns(task, seen + 1, options)) {
                            // The kick (an early wake) was lost in the same window: the task sleeps its hour.
                            boolean asleep = task.sleeper().sleeping();
                            ctx.setGuard(Guard.WAKE_ORDER, true);
                            boolean recovered = task.stop(options.hangAfter());
                            if (!asleep || !recovered) {
                                return inconclusive(guardOn, i + 1, "a kick was not followed by a run within "
                                        + options.hangAfter() + " and the task was " + (asleep ? "asleep" : "not asleep"));
                            }
                            return ReproResult.of(hazard(), guardOn, true, i + 1, "a kick (early wake) was lost: the task"
                                            + " slept through it for " + options.hangAfter().toMillis() + " ms")
                                    .with("hang_ms", options.hangAfter().toMillis())
                                    .with("lost", "kick")
                                    .with("task", "FootprintSampler")
                                    .with("seed", options.seed());
                        }
                        spin(rnd.nextInt(WORK_NS));
                    } else {
                        spin(rnd.nextInt(40_000));
                    }
                }
                long t0 = System.nanoTime();
                if (!task.stop(options.hangAfter())) {
                    boolean asleep = task.sleeper().sleeping();
                    // Recover without killing anything: a wake with the guard on ends the sleep.
                    ctx.setGuard(Guard.WAKE_ORDER, true);
                    boolean recovered = task.stop(options.hangAfter());
                    if (!asleep || !recovered) {
                        return inconclusive(guardOn, i + 1, "stop() timed out but the task was "
                                + (asleep ? "asleep and a guarded wake did not end it" : "not asleep (its work stalled)"));
                    }
                    return ReproResult.of(hazard(), guardOn, true, i + 1,
                                    "stop() waited " + options.hangAfter().toMillis()
                                            + " ms for a task that slept through its stop wake-up")
                            .with("hang_ms", options.hangAfter().toMillis())
                            .with("lost", "stop")
                            .with("task", "FootprintSampler")
                            .with("seed", options.seed());
                }
                maxStopNanos = Math.max(maxStopNanos, System.nanoTime() - t0);
                wakesBeforeSleep += task.sleeper().wakesBeforeSleep();
            }
            return ReproResult.of(hazard(), guardOn, false, i,
                            guardOn ? "every stop finished under load; wakes that came before the sleeper armed were kept"
                                    : "no wake was lost within the bounds")
                    .with("wakes_before_sleep", wakesBeforeSleep)
                    .with("max_stop_ms", String.format(java.util.Locale.ROOT, "%.1f", maxStopNanos / 1e6))
                    .with("task", "FootprintSampler")
                    .with("seed", options.seed());
        } finally {
            for (Thread t : busy) {
                t.interrupt();
            }
            for (Thread t : busy) {
                t.join(1000);
            }
        }
    }

    private ReproResult inconclusive(boolean guardOn, long iterations, String detail) {
        return ReproResult.inconclusive(hazard(), guardOn, iterations, detail);
    }

    /** Spins until the task has run {@code n} times, at most {@code hangAfter}. */
    private static boolean waitForRuns(Periodic task, long n, ReproOptions options) {
        long until = System.nanoTime() + options.hangAfter().toNanos();
        while (task.runs() < n) {
            if (System.nanoTime() - until > 0) {
                return false;
            }
            Thread.onSpinWait();
        }
        return true;
    }

    private static void spin(long nanos) {
        long end = System.nanoTime() + nanos;
        while (System.nanoTime() - end < 0) {
            Thread.onSpinWait();
        }
    }

    private static Thread[] startBusyThreads(int n) {
        Thread[] ts = new Thread[n];
        for (int i = 0; i < n; i++) {
            ts[i] = new Thread(() -> {
                long x = 0;
                while (!Thread.currentThread().isInterrupted()) {
                    x += System.nanoTime() & 7;
                }
                if (x == 42) {
                    System.out.print("");
                }
            }, "repro-busy-" + i);
            ts[i].setDaemon(true);
            ts[i].setPriority(Thread.MIN_PRIORITY);
            ts[i].start();
        }
        return ts;
    }

    /** For tests: the bound on how long {@link #run} can take. */
    static Duration bound(ReproOptions o) {
        return o.timeLimit().plus(o.hangAfter().multipliedBy(3));
    }
}
