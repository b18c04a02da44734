package io.vblk.aio.linuxaio;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioOptions;
import io.vblk.aio.DeferCall;
import io.vblk.aio.NanoClock;
import io.vblk.aio.Timer;
import io.vblk.aio.engine.CountingCompletion;
import io.vblk.aio.engine.IoRequest;
import io.vblk.aio.engine.SubmissionQueue;
import io.vblk.aio.sys.Errno;
import io.vblk.aio.sys.FileIo;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The completion ring as a busy-poll source (QEMU's qemu_laio_poll_cb): peeking does not consume,
 * and a busy-poll window completes an O_DIRECT read before the loop would read the eventfd.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class LinuxAioPollTest {
    private static final int BLOCK = 4096;

    @TempDir
    Path dir;
    private AioContext ctx;
    private Arena arena;
    private int fd = -1;

    @BeforeEach
    void setUp() {
        // poll-max-ns far above any wait here, so the window never shrinks during the test.
        ctx = new AioContext("aio-poll", Thread.currentThread(), NanoClock.SYSTEM,
                AioOptions.polling(TimeUnit.SECONDS.toNanos(30)));
        arena = Arena.ofConfined();
        int flags = FileIo.O_RDWR | FileIo.O_CREAT | FileIo.O_CLOEXEC | FileIo.O_DIRECT;
        fd = FileIo.open(dir.resolve("img").toString(), flags, 0600);
        assertThat(fd).as("open: %s", Errno.name(fd)).isGreaterThanOrEqualTo(0);
        assertThat(FileIo.ftruncate(fd, 1 << 20)).isZero();
    }

    @AfterEach
    void tearDown() {
        FileIo.close(fd);
        arena.close();
        ctx.close();
    }

    /**
     * Blocking steps on a 1 ms timer: a wait shorter than poll-max-ns opens the window (4 us). On a
     * loaded machine the timer may expire before the loop gets to block; then the step runs it
     * without waiting and adjusts nothing, so arm again (bounded).
     */
    private void openPollWindow() {
        boolean[] fired = {false};
        Timer t = ctx.timer("open-window", () -> fired[0] = true);
        for (int attempt = 0; attempt < 50 && ctx.pollWindowNanos() == 0; attempt++) {
            fired[0] = false;
            t.armIn(TimeUnit.MILLISECONDS.toNanos(1));
            LoopSteps.pollUntil(ctx, () -> fired[0], "the 1 ms timer");
        }
        assertThat(ctx.pollWindowNanos()).isPositive();
    }

    /**
     * Writes block 0, so that a read of it goes to the disk instead of completing inside io_submit,
     * as a read of a hole can.
     */
    private MemorySegment writeBlock0(SubmissionQueue aio) {
        MemorySegment data = arena.allocate(BLOCK, BLOCK);
        data.fill((byte) 5);
        MemorySegment iov = arena.allocate(16, 8);
        iov.set(ValueLayout.JAVA_LONG, 0, data.address());
        iov.set(ValueLayout.JAVA_LONG, 8, BLOCK);
        CountingCompletion written = new CountingCompletion();
        DeferCall dc = ctx.deferCall();
        dc.begin();
        aio.submit(new IoRequest().writev(fd, iov.address(), 1, 0, written), 32);
        dc.end();
        LoopSteps.pollUntil(ctx, () -> written.count == 1, "the write of block 0");
        return iov;
    }

    private void submitRead(SubmissionQueue aio, MemorySegment iov, CountingCompletion done) {
        DeferCall dc = ctx.deferCall();
        dc.begin();
        aio.submit(new IoRequest().readv(fd, iov.address(), 1, 0, done), 32);
        dc.end();
    }

    @Test
    void ringPeekSeesACompletionWithoutConsumingItAndTheBusyPollCompletesIt() {
        SubmissionQueue aio = LinuxAio.of(ctx, 64, false);
        try {
            LinuxAio la = LinuxAio.backendOf(aio);
            assertThat(la.completionMode()).isEqualTo(LinuxAio.CompletionMode.RING);
            MemorySegment iov = writeBlock0(aio);
            CountingCompletion done = null;
            // A read that is no longer in flight right after its submit section (completed or failed
            // at once, seen on a loaded machine) cannot show the peek: try again, a bounded number of times.
            StringBuilder attempts = new StringBuilder();
            for (int attempt = 0; attempt < 5 && !la.completionsReady(); attempt++) {
                openPollWindow();
                done = new CountingCompletion();
                submitRead(aio, iov, done);
                if (aio.inFlight() == 0) {
                    attempts.append(" attempt ").append(attempt).append(": done ").append(done.count)
                            .append(" result ").append(done.lastResult);
                    continue;
                }
                // Bounded generously: an O_DIRECT read on a shared virtual disk under other load can be slow.
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
                while (!la.completionsReady() && System.nanoTime() - deadline < 0) {
                    Thread.onSpinWait();
                }
            }
            assertThat(la.completionsReady()).as("the kernel published the completion in the ring;%s", attempts).isTrue();
            assertThat(la.completionsReady()).as("peeking consumes nothing").isTrue();
            assertThat(done.count).isZero();
            long ringEvents = la.ringEvents();

            long hits = ctx.pollHits();
            assertThat(ctx.poll(true)).isTrue();
            assertThat(done.count).as("completed in the busy-poll window").isEqualTo(1);
            assertThat(done.lastResult).isEqualTo(BLOCK);
            assertThat(ctx.pollHits()).isEqualTo(hits + 1);
            assertThat(la.ringEvents()).isEqualTo(ringEvents + 1);
            assertThat(la.completionsReady()).isFalse();

            // The eventfd still counts the completion; its wake-up finds the ring empty.
            ctx.poll(false);
            assertThat(done.count).isEqualTo(1);
            assertThat(done.doubles).isZero();
            assertThat(aio.inFlight()).isZero();
        } finally {
            aio.release();
        }
    }

    @Test
    void getEventsFallbackRegistersNoPollHookAndCompletesThroughTheEventfd() {
        SubmissionQueue aio = LinuxAio.of(ctx, 64, true);
        try {
            LinuxAio la = LinuxAio.backendOf(aio);
            MemorySegment iov = writeBlock0(aio);
            CountingCompletion done = new CountingCompletion();
            submitRead(aio, iov, done);
            assertThat(la.completionsReady()).isFalse();
            LoopSteps.pollUntil(ctx, () -> done.count == 1, "the read through the eventfd");
            assertThat(ctx.pollHits()).isZero();
            assertThat(la.geteventsCalls()).isPositive();
        } finally {
            aio.release();
        }
    }
}
