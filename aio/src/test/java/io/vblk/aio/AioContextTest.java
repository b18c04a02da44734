package io.vblk.aio;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

@Timeout(value = 20, unit = TimeUnit.SECONDS)
class AioContextTest {
    private final ManualClock clock = new ManualClock();
    private final AioContext ctx = new AioContext("test", Thread.currentThread(), clock, AioOptions.DEFAULT);

    @AfterEach
    void close() {
        if (!ctx.isClosed()) {
            ctx.close();
        }
    }

    @Test
    void idlePollMakesNoProgress() {
        assertThat(ctx.poll(false)).isFalse();
    }

    @Test
    void bottomHalfRunsOnceHoweverOftenScheduled() {
        AtomicInteger runs = new AtomicInteger();
        Bh bh = ctx.bh("count", runs::incrementAndGet);
        bh.schedule();
        bh.schedule();
        assertThat(bh.isScheduled()).isTrue();
        assertThat(ctx.poll(false)).isTrue();
        assertThat(runs).hasValue(1);
        assertThat(ctx.poll(false)).isFalse();
        assertThat(runs).hasValue(1);
    }

    @Test
    void bottomHalvesRunInSchedulingOrderAndMayRescheduleThemselves() {
        List<String> order = new ArrayList<>();
        Bh[] self = new Bh[1];
        Bh a = ctx.bh("a", () -> order.add("a"));
        Bh b = ctx.bh("b", () -> order.add("b"));
        self[0] = ctx.bh("again", () -> {
            order.add("again");
            if (order.size() < 4) {
                self[0].schedule();
            }
        });
        a.schedule();
        b.schedule();
        self[0].schedule();
        assertThat(ctx.poll(false)).isTrue();
        assertThat(order).startsWith("a", "b", "again");
        while (ctx.poll(false)) {
            // drain
        }
        assertThat(order).containsExactly("a", "b", "again", "again");
    }

    @Test
    void cancelledBottomHalfDoesNotRun() {
        AtomicInteger runs = new AtomicInteger();
        Bh bh = ctx.bh("c", runs::incrementAndGet);
        bh.schedule();
        bh.cancel();
        assertThat(ctx.poll(false)).isFalse();
        assertThat(runs).hasValue(0);
        bh.schedule();
        assertThat(ctx.poll(false)).isTrue();
        assertThat(runs).hasValue(1);
    }

    @Test
    void bottomHalfScheduledFromAnotherThreadWakesBlockingPoll() throws Exception {
        AtomicInteger runs = new AtomicInteger();
        Bh bh = ctx.bh("remote", runs::incrementAndGet);
        Thread t = new Thread(bh::schedule);
        t.start();
        // Blocks in epoll_wait until the other thread's schedule() wakes it (or has already run).
        while (runs.get() == 0) {
            ctx.poll(true);
        }
        t.join();
        assertThat(runs).hasValue(1);
    }

    @Test
    void timersFireInDeadlineOrderOnTheInjectedClock() {
        List<String> fired = new ArrayList<>();
        Timer late = ctx.timer("late", () -> fired.add("late"));
        Timer early = ctx.timer("early", () -> fired.add("early"));
        late.armIn(2_000);
        early.armIn(1_000);
        assertThat(ctx.poll(false)).isFalse();
        clock.advance(1_000);
        assertThat(ctx.poll(false)).isTrue();
        assertThat(fired).containsExactly("early");
        clock.advance(5_000);
        assertThat(ctx.poll(false)).isTrue();
        assertThat(fired).containsExactly("early", "late");
        assertThat(late.isArmed()).isFalse();
    }

    @Test
    void rearmingMovesATimerAndCancelStopsIt() {
        AtomicInteger runs = new AtomicInteger();
        Timer t = ctx.timer("t", runs::incrementAndGet);
        t.armIn(100);
        t.armIn(10_000);
        clock.advance(200);
        assertThat(ctx.poll(false)).isFalse();
        t.cancel();
        clock.advance(20_000);
        assertThat(ctx.poll(false)).isFalse();
        assertThat(runs).hasValue(0);
    }

    @Test
    void manyTimersKeepHeapOrder() {
        List<Long> fired = new ArrayList<>();
        java.util.Random r = new java.util.Random(42);
        List<Timer> ts = new ArrayList<>();
        for (int i = 0; i < 200; i++) {
            long d = 1 + r.nextInt(10_000);
            Timer[] self = new Timer[1];
            self[0] = ctx.timer("t" + i, () -> fired.add(self[0].deadline()));
            self[0].armIn(d);
            ts.add(self[0]);
        }
        for (int i = 0; i < 50; i++) {
            ts.get(r.nextInt(ts.size())).cancel();
        }
        clock.advance(20_000);
        ctx.poll(false);
        assertThat(fired).isSorted().hasSizeBetween(150, 200);
    }

    @Test
    void fdHandlerRunsWhenEventfdIsSignalled() throws Exception {
        try (TestEventFd efd = new TestEventFd()) {
            AtomicInteger seen = new AtomicInteger();
            FdHandler h = ctx.addFdHandler("efd", efd.fd(), fd -> seen.addAndGet((int) efd.drain()));
            assertThat(ctx.poll(false)).isFalse();
            efd.signal();
            efd.signal();
            assertThat(ctx.poll(false)).isTrue();
            assertThat(seen).hasValue(2);
            assertThat(ctx.poll(false)).isFalse();
            h.remove();
            efd.signal();
            assertThat(ctx.poll(false)).isFalse();
        }
    }

    @Test
    void pausedHandlerIsNotDispatchedAndItsEndRechecksOnce() throws Exception {
        try (TestEventFd kick = new TestEventFd(); TestEventFd other = new TestEventFd()) {
            AtomicInteger kicks = new AtomicInteger();
            AtomicInteger others = new AtomicInteger();
            FdHandler h = ctx.addFdHandler("kick", kick.fd(), fd -> kicks.addAndGet((int) kick.drain()));
            ctx.addFdHandler("completion", other.fd(), fd -> others.addAndGet((int) other.drain()));
            h.drainedBegin();
            assertThat(h.paused()).isTrue();
            kick.signal();
            other.signal();
            ctx.poll(false);
            assertThat(kicks).as("a paused handler is not dispatched").hasValue(0);
            assertThat(others).as("other handlers of the context keep running").hasValue(1);
            h.drainedEnd();
            // The end runs the handler once: the kick that came meanwhile is seen.
            assertThat(kicks).hasValue(1);
            assertThat(ctx.drainedSections()).isEqualTo(1);
            assertThat(ctx.drainRechecks()).isEqualTo(1);
            kick.signal();
            ctx.poll(false);
            assertThat(kicks).hasValue(2);
        }
    }

    @Test
    void pauseDoesNotNestAndEndNeedsABegin() throws Exception {
        try (TestEventFd kick = new TestEventFd()) {
            FdHandler h = ctx.addFdHandler("kick", kick.fd(), fd -> kick.drain());
            assertThatThrownBy(h::drainedEnd).isInstanceOf(IllegalStateException.class);
            h.drainedBegin();
            assertThatThrownBy(h::drainedBegin).isInstanceOf(IllegalStateException.class);
            h.drainedEnd();
            assertThat(h.paused()).isFalse();
        }
    }

    @Test
    void closeNamesAScheduledBottomHalf() {
        Bh bh = ctx.bh("flush-metadata", () -> { });
        bh.schedule();
        assertThatThrownBy(ctx::close).hasMessageContaining("flush-metadata");
        bh.cancel();
        ctx.close();
        assertThat(ctx.isClosed()).isTrue();
    }

    @Test
    void homeThreadAssertionNamesBothThreads() throws Exception {
        CompletableFuture<Throwable> f = new CompletableFuture<>();
        Thread t = new Thread(() -> {
            try {
                ctx.assertHome();
                f.complete(null);
            } catch (Throwable e) {
                f.complete(e);
            }
        }, "intruder");
        t.start();
        Throwable e = f.get(5, TimeUnit.SECONDS);
        assertThat(e).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("intruder").hasMessageContaining(Thread.currentThread().getName());
    }

    @Test
    void blockingWaitIsRefusedOnAHomeThread() {
        CompletableFuture<String> never = new CompletableFuture<>();
        assertThatThrownBy(() -> AioContext.await(never, Duration.ofSeconds(30)))
                .isInstanceOf(IllegalStateException.class).hasMessageContaining("seed 004");
    }

    @Test
    void callOnRunsOnTheHomeThreadAndAwaitWorksElsewhere() throws Exception {
        ctx.close(); // this thread is a home thread no more, so it may wait
        try (IoThread io = IoThread.start("io-test", AioOptions.DEFAULT)) {
            String name = AioContext.await(io.ctx().callOn(() -> Thread.currentThread().getName()),
                    Duration.ofSeconds(5));
            assertThat(name).isEqualTo("io-test");
            AioContext seen = AioContext.await(io.ctx().callOn(AioContext::current), Duration.ofSeconds(5));
            assertThat(seen).isSameAs(io.ctx());
        }
    }

    @Test
    void awaitTimesOutBounded() throws Exception {
        CompletableFuture<Throwable> f = new CompletableFuture<>();
        Thread t = new Thread(() -> {
            try {
                AioContext.await(new CompletableFuture<>(), Duration.ofMillis(50));
                f.complete(null);
            } catch (Throwable e) {
                f.complete(e);
            }
        });
        t.start();
        assertThat(f.get(5, TimeUnit.SECONDS)).isInstanceOf(CompletionException.class)
                .hasRootCauseInstanceOf(java.util.concurrent.TimeoutException.class);
    }

    @Test
    void adaptivePollingWindowGrowsWhenEventsComeSoonAndShrinksWhenLate() {
        ctx.close();
        AioContext p = new AioContext("poller", Thread.currentThread(), clock, new AioOptions(64_000, 2, 4, 0));
        try {
            p.adjustPollWindow(1_000, false);
            assertThat(p.pollWindowNanos()).as("no poll handler: polling stays off").isZero();
            p.addPollHandler("ring", () -> false);
            // Events that come soon after the loop blocked: each wait is short, the window grows
            // from its 4 us start by poll-grow (2) up to poll-max-ns.
            // The wait counts from the window's start (QEMU's block_ns): a 4 us window then 1 us asleep.
            p.adjustPollWindow(1_000, false);
            assertThat(p.pollWindowNanos()).isEqualTo(4_000);
            p.adjustPollWindow(5_000, false);
            assertThat(p.pollWindowNanos()).isEqualTo(8_000);
            for (int i = 0; i < 10; i++) {
                p.adjustPollWindow(60_000, false);
            }
            assertThat(p.pollWindowNanos()).isEqualTo(64_000);
            // A wait longer than poll-max-ns: polling would not have caught it; shrink by poll-shrink (4).
            p.adjustPollWindow(1_000_000, false);
            assertThat(p.pollWindowNanos()).isEqualTo(16_000);
            p.adjustPollWindow(1_000_000, false);
            assertThat(p.pollWindowNanos()).isEqualTo(4_000);
            p.adjustPollWindow(1_000_000, false);
            assertThat(p.pollWindowNanos()).as("below the start value it switches off").isZero();
        } finally {
            p.close();
        }
    }

    @Test
    void busyPollingFindsWorkWithoutBlocking() throws Exception {
        ctx.close();
        try (IoThread io = IoThread.start("poller", new AioOptions(1_000_000, 2, 2, 0))) {
            AioContext c = io.ctx();
            java.util.concurrent.atomic.AtomicBoolean work = new java.util.concurrent.atomic.AtomicBoolean();
            java.util.concurrent.CountDownLatch found = new java.util.concurrent.CountDownLatch(50);
            AioContext.await(c.callOn(() -> c.addPollHandler("flag", () -> {
                if (work.compareAndSet(true, false)) {
                    found.countDown();
                    return true;
                }
                return false;
            })), Duration.ofSeconds(5));
            // Work that appears with no fd event and no bottom half: only the poll handler sees it.
            // It is found while the window is open; once the window closes the loop blocks, so a
            // bottom half nudges it into the next window.
            Bh nudge = c.bh("nudge", () -> { });
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            while (found.getCount() > 0 && System.nanoTime() < deadline) {
                work.set(true);
                // Keep nudging while the work is unclaimed: a wake-up slower than poll-max-ns (a
                // loaded machine) shrinks the window, and short waits grow it back.
                while (work.get() && System.nanoTime() < deadline) {
                    nudge.schedule();
                    long t = System.nanoTime() + 100_000;
                    while (work.get() && System.nanoTime() < t) {
                        Thread.onSpinWait();
                    }
                }
            }
            assertThat(found.getCount()).isZero();
            assertThat(AioContext.await(c.callOn(c::pollHits), Duration.ofSeconds(5))).isPositive();
        }
    }
}
