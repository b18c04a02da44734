package io.vblk.tools.repro;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioOptions;
import io.vblk.aio.Guard;
import io.vblk.aio.IoThread;
import io.vblk.aio.Sleeper;

import java.time.Duration;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * Home thread: the caller's (no context's home thread); owns its IoThread and busy threads.
 *
 * <p>Seed 001: a closer waits for a periodic task to finish while the task sleeps. The task wakes
 * on kicks (as QEMU's block-copy and cache-clean tasks do), checks whether it should stop, does its
 * work and goes back to sleep for a long time. The closer kicks it a few times, then asks it to
 * stop and wakes it once more — landing, sometimes, while the task has checked the stop flag but
 * not yet gone to sleep. With the guard off the wake reads the task's stale state, sees it awake,
 * skips the kick, and the task sleeps its full (hour-long) time: the closer hangs, which a watchdog
 * catches after {@link ReproOptions#hangAfter()}. Busy threads supply the CPU contention that makes
 * the window wide, as in the seed's {@code stress-ng --cpu $(nproc)}.
 *
 * <p>Runs on the caller's thread (no context's home thread); owns its IoThread and busy threads.
 */
public final class LostWakeupRepro implements Repro {
    /** How long the task sleeps between kicks: far longer than any bound, so a lost wake is a hang. */
    private static final long TASK_SLEEP_NS = TimeUnit.HOURS.toNanos(1);
    /** The task's work between its stop check and its next sleep. */
    private static final int WORK_NS = 1_000_000;

    @Override
    public String hazard() {
        return "lost-wakeup";
    }

    @Override
    public String description() {
        return "seed 001: a wake that races the sleeper's arming is lost and close() hangs";
    }

    @Override
    public ReproResult run(boolean guardOn, ReproOptions options) throws Exception {
        long deadline = System.nanoTime() + options.timeLimit().toNanos();
        SplittableRandom rnd = new SplittableRandom(options.seed());
        // One core fewer than the machine has: contention that preempts the task inside its window,
        // while leaving the closer a core to aim with.
        Thread[] busy = startBusyThreads(Math.max(1, Runtime.getRuntime().availableProcessors() - 1));
        long wakesBeforeSleep = 0;
        try (IoThread io = IoThread.start("repro-iothread", AioOptions.DEFAULT)) {
            AioContext ctx = io.ctx();
            ctx.setGuard(Guard.WAKE_ORDER, guardOn);
            int i = 0;
            for (; i < options.iterations() && System.nanoTime() - deadline < 0; i++) {
                Task task = new Task(ctx, rnd.split());
                ctx.runOn(task::start);
                task.started.get(options.hangAfter().toMillis(), TimeUnit.MILLISECONDS);
                int kicks = 1 + rnd.nextInt(4);
                for (int k = 0; k < kicks; k++) {
                    int seen = task.checks;
                    task.sleeper.wake();
                    if (k == kicks - 1) {
                        // Arrive while the task works between its stop check and its sleep: wait to
                        // see it pass the check, then land somewhere in (or just after) its work.
                        long until = System.nanoTime() + options.hangAfter().toNanos();
                        while (task.checks == seen && System.nanoTime() - until < 0) {
                            Thread.onSpinWait();
                        }
                        spin(rnd.nextInt(WORK_NS));
                    } else {
                        spin(rnd.nextInt(40_000));
                    }
                }
                task.stop = true;
                task.sleeper.wake();
                try {
                    task.done.get(options.hangAfter().toMillis(), TimeUnit.MILLISECONDS);
                } catch (TimeoutException hang) {
                    boolean asleep = task.sleeper.sleeping();
                    // Recover without killing anything: a wake with the guard on ends the sleep.
                    ctx.setGuard(Guard.WAKE_ORDER, true);
                    task.sleeper.wake();
                    task.done.get(options.hangAfter().toMillis(), TimeUnit.MILLISECONDS);
                    return ReproResult.of(hazard(), guardOn, true, i + 1,
                                    "close() waited " + options.hangAfter().toMillis() + " ms for a task that "
                                            + (asleep ? "slept through its stop wake-up" : "never woke"))
                            .with("hang_ms", options.hangAfter().toMillis())
                            .with("seed", options.seed());
                }
                wakesBeforeSleep += task.sleeper.wakesBeforeSleep();
            }
            return ReproResult.of(hazard(), guardOn, false, i,
                            guardOn ? "every close finished; wakes that came before the sleeper armed were kept"
                                    : "no wake was lost within the bounds")
                    .with("wakes_before_sleep", wakesBeforeSleep)
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

    /** The periodic task; its fields are touched on the IoThread except the stop flag and the futures. */
    private static final class Task {
        final Sleeper sleeper;
        final SplittableRandom rnd;
        final CompletableFuture<Void> started = new CompletableFuture<>();
        final CompletableFuture<Void> done = new CompletableFuture<>();
        volatile boolean stop;
        /** Times the task passed its stop check; lets the closer aim at the window. */
        volatile int checks;

        Task(AioContext ctx, SplittableRandom rnd) {
            this.rnd = rnd;
            this.sleeper = new Sleeper(ctx, "periodic", this::onWake);
        }

        void start() {
            sleeper.sleep(TASK_SLEEP_NS);
            started.complete(null);
        }

        void onWake() {
            if (stop) {
                done.complete(null);
                return;
            }
            checks++; // only this thread writes it
            // The task's work, between checking the stop flag and sleeping again: the window.
            spin(WORK_NS / 2 + rnd.nextInt(WORK_NS));
            sleeper.sleep(TASK_SLEEP_NS);
        }
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
