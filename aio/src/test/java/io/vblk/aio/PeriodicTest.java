package io.vblk.aio;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.time.Duration;
import java.util.concurrent.CompletionException;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** Periodic work on an IoThread: runs, kicks, and a stop that ends in bounded time (seed 001). */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class PeriodicTest {
    private static final Duration HOUR = Duration.ofHours(1);
    private static final Duration BOUND = Duration.ofSeconds(10);

    private static void awaitRuns(Periodic p, long n) {
        long until = System.nanoTime() + BOUND.toNanos();
        while (p.runs() < n) {
            assertThat(System.nanoTime() - until).as("run %d within %s", n, BOUND).isNegative();
            Thread.onSpinWait();
        }
    }

    @Test
    void runsAtOnceAndAKickRunsItBeforeItsPeriod() {
        try (IoThread io = IoThread.start("periodic-t", AioOptions.DEFAULT)) {
            Periodic p = Periodic.start(io.ctx(), "task", HOUR, () -> { });
            awaitRuns(p, 1);
            p.kick();
            awaitRuns(p, 2);
            assertThat(p.stop(BOUND)).isTrue();
            assertThat(p.runs()).isEqualTo(2);
        }
    }

    /**
     * Seed 001's shutdown under load: stops that land in the task's work (between its stop check and
     * its sleep), with every core busy; each ends at once, none waits out the hour-long period.
     */
    @Test
    void stopUnderLoadEndsWithinTheBoundEveryTime() throws Exception {
        Thread[] busy = new Thread[Runtime.getRuntime().availableProcessors()];
        for (int i = 0; i < busy.length; i++) {
            busy[i] = Thread.ofPlatform().daemon().start(() -> {
                while (!Thread.currentThread().isInterrupted()) {
                    Thread.onSpinWait();
                }
            });
        }
        long before = 0;
        try (IoThread io = IoThread.start("periodic-load", AioOptions.DEFAULT)) {
            for (int i = 0; i < 100; i++) {
                // The work holds the task in its window (checked the stop flag, not yet asleep) until
                // the closer is about to stop it, and 2 ms more, so the stop's wake lands there even
                // on a loaded machine.
                java.util.concurrent.atomic.AtomicBoolean stopping = new java.util.concurrent.atomic.AtomicBoolean();
                Periodic p = Periodic.start(io.ctx(), "task", HOUR, () -> {
                    long until = System.nanoTime() + BOUND.toNanos();
                    while (!stopping.get() && System.nanoTime() - until < 0) {
                        Thread.onSpinWait();
                    }
                    spin(2_000_000);
                });
                awaitRuns(p, 1);
                stopping.set(true);
                assertThat(p.stop(BOUND)).as("stop %d", i).isTrue();
                before += p.sleeper().wakesBeforeSleep();
            }
        } finally {
            for (Thread t : busy) {
                t.interrupt();
            }
        }
        // Some stops landed before the sleeper armed; the guard kept them.
        assertThat(before).isPositive();
    }

    @Test
    void aFailingWorkEndsTheTaskAndStopReportsIt() {
        try (IoThread io = IoThread.start("periodic-fail", AioOptions.DEFAULT)) {
            Periodic p = Periodic.start(io.ctx(), "task", HOUR, () -> {
                throw new IllegalStateException("sample failed");
            });
            awaitRuns(p, 1); // a stop before the first run would end the task without running it
            assertThatThrownBy(() -> p.stop(BOUND)).isInstanceOf(CompletionException.class)
                    .hasRootCauseMessage("sample failed");
        }
    }

    @Test
    void aPeriodMustBePositive() {
        try (IoThread io = IoThread.start("periodic-arg", AioOptions.DEFAULT)) {
            assertThatThrownBy(() -> Periodic.start(io.ctx(), "task", Duration.ZERO, () -> { }))
                    .hasMessageContaining("the period must be positive");
        }
    }

    private static void spin(long nanos) {
        long end = System.nanoTime() + nanos;
        while (System.nanoTime() - end < 0) {
            Thread.onSpinWait();
        }
    }
}
