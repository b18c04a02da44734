package io.vblk.tools.metrics;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioOptions;
import io.vblk.aio.Bh;
import io.vblk.aio.DeferCall;
import io.vblk.aio.FdHandler;
import io.vblk.aio.Guard;
import io.vblk.aio.NanoClock;
import io.vblk.aio.Sleeper;
import io.vblk.aio.TestEventFd;
import io.vblk.aio.Timer;
import io.vblk.aio.engine.IoRequest;
import io.vblk.aio.engine.SubmissionQueue;
import io.vblk.aio.engine.SubmitGuard;
import io.vblk.aio.linuxaio.LinuxAio;
import io.vblk.aio.linuxaio.LoopSteps;
import io.vblk.aio.metrics.LatencyHistogram;
import io.vblk.aio.metrics.Meter;
import io.vblk.drivers.BlockChannel;
import io.vblk.drivers.BlockIo;
import io.vblk.drivers.IoCompletion;
import io.vblk.drivers.nullblk.NullDriver;
import io.vblk.drivers.nullblk.NullChannel;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * One test per meter group: each meter is bound to a real component, the event it counts is made
 * to happen, and the meter's value (read as a scrape reads it) moves by what happened.
 */
@Timeout(value = 30, unit = TimeUnit.SECONDS)
class ComponentMetersTest {
    @TempDir
    Path dir;
    private AioContext ctx;
    private VblkMetrics metrics;

    @BeforeEach
    void setUp() {
        metrics = new VblkMetrics();
    }

    @AfterEach
    void tearDown() {
        metrics.close();
        if (ctx != null) {
            ctx.close();
        }
    }

    private double v(Meter m, String... tags) {
        return metrics.value(m, tags);
    }

    @Test
    void eventLoopMeters() throws Exception {
        ctx = new AioContext("loop-t", Thread.currentThread(), NanoClock.SYSTEM, AioOptions.polling(50_000_000));
        metrics.bindLoop(ctx);
        String t = "loop-t";
        assertThat(v(Meter.LOOP_BH_RUNS, t)).isZero();

        double it0 = v(Meter.LOOP_ITERATIONS, t);
        Bh bh = ctx.bh("t.bh", () -> { });
        bh.schedule();
        assertThat(ctx.poll(false)).isTrue();
        assertThat(v(Meter.LOOP_BH_RUNS, t)).isEqualTo(1);
        assertThat(v(Meter.LOOP_ITERATIONS, t)).isEqualTo(it0 + 1);

        // A blocking poll that a 5 ms timer ends: timer run, blocked time. On a loaded machine the
        // timer may expire before the loop gets to block; then the poll runs it without blocking,
        // so arm again (bounded) until one poll really blocked.
        Timer timer = ctx.timer("t.timer", () -> { });
        for (int attempt = 0; attempt < 50 && v(Meter.LOOP_BLOCKED, t) == 0; attempt++) {
            timer.armIn(TimeUnit.MILLISECONDS.toNanos(5));
            LoopSteps.pollUntil(ctx, () -> !timer.isArmed(), "timer fired");
        }
        assertThat(v(Meter.LOOP_TIMER_RUNS, t)).isGreaterThanOrEqualTo(1);
        assertThat(v(Meter.LOOP_BLOCKED, t)).isGreaterThan(0).isLessThan(10);

        // Adaptive polling: with a poll handler, a block shorter than the maximum opens the
        // window; the next blocking poll spins and the handler's work counts as a hit.
        boolean[] work = {false};
        ctx.addPollHandler("t.poll", () -> {
            boolean w = work[0];
            work[0] = false;
            return w;
        });
        for (int attempt = 0; attempt < 50 && ctx.pollWindowNanos() == 0; attempt++) {
            timer.armIn(TimeUnit.MILLISECONDS.toNanos(2)); // as above: bounded re-arming under load
            LoopSteps.pollUntil(ctx, () -> !timer.isArmed(), "short timer fired");
        }
        assertThat(v(Meter.LOOP_POLL_WINDOW, t)).isEqualTo(ctx.pollWindowNanos() / 1e9).isPositive();
        work[0] = true;
        assertThat(ctx.poll(true)).isTrue();
        assertThat(v(Meter.LOOP_POLL_HITS, t)).isEqualTo(1);
        assertThat(v(Meter.LOOP_SPIN, t)).isPositive();
        // No more work: the next window spins to its end (a miss) before the loop blocks; a timer
        // due inside the window (a loaded machine) cuts it short without a miss, so arm again.
        for (int attempt = 0; attempt < 50 && v(Meter.LOOP_POLL_MISSES, t) == 0; attempt++) {
            timer.armIn(TimeUnit.MILLISECONDS.toNanos(2));
            LoopSteps.pollUntil(ctx, () -> !timer.isArmed(), "timer after an empty window");
        }
        assertThat(v(Meter.LOOP_POLL_MISSES, t)).isEqualTo(ctx.pollMisses()).isPositive();

        // Drained sections (seed 003): a device queue pauses its kick handler once per section;
        // the end re-runs it once.
        try (TestEventFd kick = new TestEventFd()) {
            int[] runs = {0};
            FdHandler h = ctx.addFdHandler("t.kick", kick.fd(), fd -> {
                runs[0]++;
                kick.drain();
            });
            h.drainedBegin();
            kick.signal();
            ctx.poll(false);
            assertThat(runs[0]).isZero();
            h.drainedEnd();
            assertThat(v(Meter.GUARD_DRAINED_SECTIONS, t)).isEqualTo(1);
            assertThat(v(Meter.GUARD_DRAIN_RECHECKS, t)).isEqualTo(1);
            assertThat(runs[0]).isEqualTo(1);
            h.remove();
        }
        bh.delete();
    }

    @Test
    void linuxAioMetersOnTheRing() {
        ctx = AioContext.forCurrentThread("aio-t");
        SubmissionQueue aio = LinuxAio.of(ctx);
        try (AioFixture f = new AioFixture(dir.resolve("img"), true, 1 << 20)) {
            Binding b = metrics.bindLinuxAio(aio);
            String t = "aio-t";
            // 8 writes in one section: queued until the section ends, then one io_submit of 8.
            DeferCall dc = ctx.deferCall();
            dc.begin();
            for (int i = 0; i < 8; i++) {
                aio.submit(new IoRequest().writev(f.fd, f.iov(), 1, (long) i * AioFixture.BLOCK, f.done), 0);
            }
            assertThat(v(Meter.AIO_QUEUED, t)).isEqualTo(8);
            dc.end();
            assertThat(v(Meter.AIO_QUEUED, t)).isZero();
            assertThat(v(Meter.AIO_IO_SUBMIT_CALLS, t)).isEqualTo(1);
            assertThat(v(Meter.AIO_SUBMITTED, t)).isEqualTo(8);
            assertThat(v(Meter.AIO_IN_FLIGHT, t)).isEqualTo(aio.inFlight()).isEqualTo(8 - f.completed);
            LatencyHistogram.Snapshot batches = metrics.histogramSnapshot(Meter.AIO_SUBMIT_BATCH, t);
            assertThat(batches.count()).isEqualTo(1);
            assertThat(batches.quantile(1.0)).isEqualTo(8);
            LoopSteps.pollUntil(ctx, () -> f.completed == 8, "8 writes");
            assertThat(v(Meter.AIO_COMPLETED, t)).isEqualTo(8);
            assertThat(v(Meter.AIO_IN_FLIGHT, t)).isZero();
            assertThat(LinuxAio.backendOf(aio).completionMode()).isEqualTo(LinuxAio.CompletionMode.RING);
            assertThat(v(Meter.AIO_RING_EVENTS, t)).isEqualTo(8);
            assertThat(v(Meter.AIO_GETEVENTS_CALLS, t)).isZero();
            assertThat(v(Meter.AIO_COMPLETION_PASSES, t)).isGreaterThanOrEqualTo(1);
            assertThat(v(Meter.AIO_SUBMIT_ERRORS, t)).isZero();

            // A request on a bad fd: io_submit fails it (EBADF), counted as a submit error.
            f.completed = 0;
            DeferCall d2 = ctx.deferCall();
            d2.begin();
            aio.submit(new IoRequest().writev(-1, f.iov(), 1, 0, f.done), 0);
            d2.end();
            assertThat(f.completed).isEqualTo(1);
            assertThat(v(Meter.AIO_SUBMIT_ERRORS, t)).isEqualTo(1);
            assertThat(v(Meter.AIO_COMPLETED, t)).isEqualTo(9);
            b.close();
            assertThat(v(Meter.AIO_COMPLETED, t)).isNaN();
        } finally {
            aio.release();
        }
    }

    @Test
    void linuxAioMetersWithTheGeteventsFallback() {
        ctx = AioContext.forCurrentThread("aio-g");
        SubmissionQueue aio = LinuxAio.of(ctx, 64, true);
        try (AioFixture f = new AioFixture(dir.resolve("img"), true, 1 << 20)) {
            metrics.bindLinuxAio(aio);
            f.writeBatch(aio, 4);
            LoopSteps.pollUntil(ctx, () -> f.completed == 4, "4 writes");
            assertThat(v(Meter.AIO_GETEVENTS_CALLS, "aio-g")).isPositive();
            assertThat(v(Meter.AIO_RING_EVENTS, "aio-g")).isZero();
        } finally {
            aio.release();
        }
    }

    /** Seed 000's cycle on page-cache reads: the cap stops it, the completion bottom half resumes. */
    @Test
    void submitDepthGuardMeters() {
        ctx = AioContext.forCurrentThread("aio-c");
        SubmissionQueue aio = LinuxAio.of(ctx);
        try (AioFixture f = new AioFixture(dir.resolve("img"), false, 1 << 20)) {
            metrics.bindLinuxAio(aio);
            long iov = f.iov();
            int[] issued = {0};
            IoRequest.Completion[] again = new IoRequest.Completion[1];
            again[0] = (req, res) -> {
                f.completed++;
                if (issued[0] < 300) {
                    issued[0]++;
                    aio.submit(req.readv(f.fd, iov, 1, 0, again[0]), 32);
                }
            };
            DeferCall dc = ctx.deferCall();
            dc.begin();
            issued[0]++;
            aio.submit(new IoRequest().readv(f.fd, iov, 1, 0, again[0]), 32);
            dc.end();
            LoopSteps.pollUntil(ctx, () -> f.completed == 300, "300 chained reads");
            assertThat(v(Meter.GUARD_SUBMIT_MAX_DEPTH, "aio-c", "linux-aio")).isEqualTo(SubmitGuard.DEFAULT_CAP);
            assertThat(v(Meter.GUARD_SUBMIT_CAP_HITS, "aio-c", "linux-aio")).isEqualTo(aio.submitCapHits()).isPositive();
            assertThat(v(Meter.AIO_COMPLETION_BH_RUNS, "aio-c")).isPositive();
        } finally {
            aio.release();
        }
    }

    /**
     * The synchronous null driver's channel: in flight and completed, and its own seed-000 guard:
     * a completion that submits the next request recurses through the defer-call section until
     * the cap, then the completion bottom half resumes.
     */
    @Test
    void nullSyncChannelMetersAndItsDepthGuard() {
        ctx = AioContext.forCurrentThread("null-t");
        NullDriver drv = new NullDriver(1 << 20, NullDriver.Completion.SYNC);
        BlockChannel ch = drv.openChannel(ctx);
        assertThat(ch).isInstanceOf(NullChannel.class);
        assertThat(((NullChannel) ch).engine().kind()).isEqualTo("null-sync");
        try (Arena arena = Arena.ofConfined()) {
            metrics.bindChannel(ch, "disk0", "null");
            BlockIo io = new BlockIo(arena, 1);
            MemorySegment buf = arena.allocate(4096, 4096);
            int[] done = {0};
            IoCompletion[] again = new IoCompletion[1];
            again[0] = (r, res) -> {
                done[0]++;
                if (done[0] < 200) {
                    r.rw(BlockIo.READ, 0, again[0]).iov.add(buf.address(), 4096);
                    ch.submit(r);
                }
            };
            DeferCall dc = ctx.deferCall();
            dc.begin();
            io.rw(BlockIo.READ, 0, again[0]).iov.add(buf.address(), 4096);
            ch.submit(io);
            assertThat(v(Meter.CHANNEL_IN_FLIGHT, "disk0", "null-t", "null")).isEqualTo(ch.inFlight()).isEqualTo(1);
            dc.end();
            LoopSteps.pollUntil(ctx, () -> done[0] == 200, "200 chained null reads");
            assertThat(v(Meter.CHANNEL_COMPLETED, "disk0", "null-t", "null")).isEqualTo(200);
            assertThat(v(Meter.CHANNEL_IN_FLIGHT, "disk0", "null-t", "null")).isZero();
            assertThat(v(Meter.GUARD_SUBMIT_MAX_DEPTH, "null-t", "null-sync")).isEqualTo(SubmitGuard.DEFAULT_CAP);
            assertThat(v(Meter.GUARD_SUBMIT_CAP_HITS, "null-t", "null-sync")).isPositive();
        } finally {
            metrics.close();
            ch.close();
            drv.close();
        }
    }

    /** Seed 001: a wake that comes before the sleeper armed ends its next sleep at once, counted. */
    @Test
    void wakeOrderGuardMeter() {
        ctx = AioContext.forCurrentThread("sleep-t");
        assertThat(ctx.guard(Guard.WAKE_ORDER)).isTrue();
        int[] woke = {0};
        Sleeper s = new Sleeper(ctx, "scrubber", () -> woke[0]++);
        metrics.bindSleeper(s, "scrubber", ctx);
        assertThat(v(Meter.GUARD_WAKES_BEFORE_SLEEP, "sleep-t", "scrubber")).isZero();
        s.wake();
        s.sleep(TimeUnit.SECONDS.toNanos(60));
        LoopSteps.pollUntil(ctx, () -> woke[0] == 1, "early wake");
        assertThat(v(Meter.GUARD_WAKES_BEFORE_SLEEP, "sleep-t", "scrubber")).isEqualTo(1);
    }

    /**
     * Seed 002: a completion pass asked for from a foreign thread never reaps there; it is handed
     * over to the home context, counted, and the request completes on its home thread.
     */
    @Test
    void foreignCompletionHandOverMeter() throws Exception {
        ctx = AioContext.forCurrentThread("home-t");
        metrics.bindLoop(ctx);
        SubmissionQueue aio = LinuxAio.of(ctx);
        try (AioFixture f = new AioFixture(dir.resolve("img"), true, 1 << 20)) {
            Thread[] ranOn = new Thread[1];
            IoRequest.Completion cb = (r, res) -> {
                ranOn[0] = Thread.currentThread();
                f.completed++;
            };
            DeferCall dc = ctx.deferCall();
            dc.begin();
            aio.submit(new IoRequest().writev(f.fd, f.iov(), 1, 0, cb), 0);
            dc.end();
            assertThat(v(Meter.GUARD_FOREIGN_COMPLETIONS, "home-t")).isZero();
            Thread foreign = Thread.ofPlatform().name("foreign").start(aio::requestCompletions);
            foreign.join(10_000);
            assertThat(foreign.isAlive()).isFalse();
            assertThat(v(Meter.GUARD_FOREIGN_COMPLETIONS, "home-t")).isEqualTo(1);
            LoopSteps.pollUntil(ctx, () -> f.completed == 1, "the handed-over write");
            assertThat(ranOn[0]).isSameAs(Thread.currentThread());
            // On the home thread the same call reaps in place: nothing is handed over.
            aio.requestCompletions();
            assertThat(v(Meter.GUARD_FOREIGN_COMPLETIONS, "home-t")).isEqualTo(1);
        } finally {
            aio.release();
        }
    }

    /**
     * Seed 004: a nested wait on a listener that is a main-loop source (guard off) never sees it
     * dispatched and times out, counted; a listener on the AioContext (guard on) is dispatched.
     */
    @Test
    void nestedWaitMeters() throws Exception {
        ctx = AioContext.forCurrentThread("wait-t");
        metrics.bindLoop(ctx);
        try (TestEventFd off = new TestEventFd(); TestEventFd on = new TestEventFd()) {
            boolean[] accepted = {false, false};
            ctx.setGuard(Guard.NO_BLOCKING_WAIT, false);
            FdHandler l0 = ctx.addListener("t.listen-off", off.fd(), fd -> {
                accepted[0] = true;
                off.drain();
            });
            ctx.setGuard(Guard.NO_BLOCKING_WAIT, true);
            FdHandler l1 = ctx.addListener("t.listen-on", on.fd(), fd -> {
                accepted[1] = true;
                on.drain();
            });
            off.signal();
            on.signal();
            assertThat(v(Meter.GUARD_NESTED_WAITS, "wait-t")).isZero();
            assertThat(ctx.waitWhile(() -> !accepted[0], java.time.Duration.ofMillis(100))).isFalse();
            assertThat(v(Meter.GUARD_NESTED_WAITS, "wait-t")).isEqualTo(1);
            assertThat(v(Meter.GUARD_NESTED_WAIT_TIMEOUTS, "wait-t")).isEqualTo(1);
            assertThat(ctx.waitWhile(() -> !accepted[1], java.time.Duration.ofSeconds(10))).isTrue();
            assertThat(v(Meter.GUARD_NESTED_WAITS, "wait-t")).isEqualTo(2);
            assertThat(v(Meter.GUARD_NESTED_WAIT_TIMEOUTS, "wait-t")).isEqualTo(1);
            // The loop's own poll (not nested) dispatches the main-loop source.
            LoopSteps.pollUntil(ctx, () -> accepted[0], "main-loop listener");
            l0.remove();
            l1.remove();
        }
    }
}
