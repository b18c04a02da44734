package io.vblk.aio.linuxaio;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioOptions;
import io.vblk.aio.NanoClock;
import io.vblk.aio.DeferCall;
import io.vblk.aio.Guard;
import io.vblk.aio.engine.IoRequest;
import io.vblk.aio.engine.SubmissionQueue;
import io.vblk.aio.engine.SubmitGuard;
import io.vblk.aio.sys.Errno;
import io.vblk.aio.sys.Sys;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

@Timeout(value = 30, unit = TimeUnit.SECONDS)
class LinuxAioTest {
    private static final int BLOCK = 4096;

    @TempDir
    Path dir;
    private AioContext ctx;
    private Arena arena;
    private int fd = -1;

    @BeforeEach
    void setUp() {
        ctx = AioContext.forCurrentThread("aio-test");
        arena = Arena.ofConfined();
    }

    @AfterEach
    void tearDown() {
        if (fd >= 0) {
            Sys.close(fd);
        }
        arena.close();
        ctx.close();
    }

    private int openFile(boolean direct, long size) {
        int flags = Sys.O_RDWR | Sys.O_CREAT | Sys.O_CLOEXEC | (direct ? Sys.O_DIRECT : 0);
        fd = Sys.open(dir.resolve("img").toString(), flags, 0600);
        assertThat(fd).as("open: %s", Errno.name(fd)).isGreaterThanOrEqualTo(0);
        assertThat(Sys.ftruncate(fd, size)).isZero();
        return fd;
    }

    /** One aligned buffer with a one-entry iovec pointing at it. */
    private record Buf(MemorySegment data, MemorySegment iov) {
    }

    private Buf buf(int len) {
        MemorySegment data = arena.allocate(len, BLOCK);
        MemorySegment iov = arena.allocate(16, 8);
        iov.set(ValueLayout.JAVA_LONG, 0, data.address());
        iov.set(ValueLayout.JAVA_LONG, 8, len);
        return new Buf(data, iov);
    }

    /** Counts completions per request, so a double completion shows. */
    private static final class Done implements IoRequest.Completion {
        int count;
        long lastResult;
        int doubles;

        @Override
        public void aioCompleted(IoRequest req, long result) {
            if (req.ownerWord != 0) {
                doubles++;
            }
            req.ownerWord = 1;
            count++;
            lastResult = result;
        }
    }

    @ParameterizedTest(name = "getevents fallback={0}")
    @ValueSource(booleans = {false, true})
    void directWritesThenReadsBatchedInOneSubmitPerSection(boolean fallback) {
        openFile(true, 1 << 20);
        SubmissionQueue aio = LinuxAio.of(ctx, 64, fallback);
        try {
            assertThat(LinuxAio.backendOf(aio).completionMode())
                    .isEqualTo(fallback ? LinuxAio.CompletionMode.GETEVENTS : LinuxAio.CompletionMode.RING);
            int n = 16;
            Buf[] bufs = new Buf[n];
            IoRequest[] reqs = new IoRequest[n];
            Done done = new Done();
            for (int i = 0; i < n; i++) {
                bufs[i] = buf(BLOCK);
                bufs[i].data.fill((byte) (i + 1));
                reqs[i] = new IoRequest();
            }
            DeferCall dc = ctx.deferCall();
            dc.begin();
            for (int i = 0; i < n; i++) {
                aio.submit(reqs[i].writev(fd, bufs[i].iov.address(), 1, (long) i * 2 * BLOCK, done), 32);
            }
            assertThat(aio.submitCalls()).isZero();
            assertThat(aio.queued()).isEqualTo(n);
            dc.end();
            assertThat(aio.submitCalls()).isEqualTo(1);
            LoopSteps.pollUntil(ctx, () -> done.count == n, "16 O_DIRECT writes");
            assertThat(done.lastResult).isEqualTo(BLOCK);
            assertThat(done.doubles).isZero();
            assertThat(aio.inFlight()).isZero();

            for (int i = 0; i < n; i++) {
                bufs[i].data.fill((byte) 0);
                reqs[i].ownerWord = 0;
            }
            Done rdone = new Done();
            dc.begin();
            for (int i = 0; i < n; i++) {
                aio.submit(reqs[i].readv(fd, bufs[i].iov.address(), 1, (long) i * 2 * BLOCK, rdone), 32);
            }
            dc.end();
            assertThat(aio.submitCalls()).isEqualTo(2);
            LoopSteps.pollUntil(ctx, () -> rdone.count == n, "16 O_DIRECT reads");
            for (int i = 0; i < n; i++) {
                assertThat(bufs[i].data.get(ValueLayout.JAVA_BYTE, BLOCK - 1)).isEqualTo((byte) (i + 1));
            }
            assertThat(aio.completedRequests()).isEqualTo(2L * n);
        } finally {
            aio.release();
        }
    }

    @Test
    void pageCacheRequestsCompleteInsideIoSubmit() {
        openFile(false, 1 << 20);
        SubmissionQueue aio = LinuxAio.of(ctx);
        try {
            Buf b = buf(BLOCK);
            b.data.fill((byte) 7);
            Done done = new Done();
            IoRequest r = new IoRequest();
            DeferCall dc = ctx.deferCall();
            dc.begin();
            aio.submit(r.writev(fd, b.iov.address(), 1, 0, done), 32);
            dc.end();
            // No poll: the buffered write finished inside io_submit and the engine's pass after
            // it completed the request in the same frame (seed 000's precondition).
            assertThat(done.count).isEqualTo(1);
            assertThat(done.lastResult).isEqualTo(BLOCK);
            r.ownerWord = 0;
            b.data.fill((byte) 0);
            dc.begin();
            aio.submit(r.readv(fd, b.iov.address(), 1, 0, done), 32);
            dc.end();
            assertThat(done.count).isEqualTo(2);
            assertThat(b.data.get(ValueLayout.JAVA_BYTE, 100)).isEqualTo((byte) 7);
            // The eventfd still fired for both; a poll finds nothing more to do.
            ctx.poll(false);
            assertThat(done.count).isEqualTo(2);
            assertThat(done.doubles).isZero();
        } finally {
            aio.release();
        }
    }

    @ParameterizedTest(name = "getevents fallback={0}")
    @ValueSource(booleans = {false, true})
    void nestedEventLoopInACallbackContinuesWhereTheOuterPassStopped(boolean fallback) {
        openFile(false, 1 << 20);
        SubmissionQueue aio = LinuxAio.of(ctx, 64, fallback);
        try {
            int n = 8;
            Buf b = buf(BLOCK);
            java.util.List<Integer> order = new java.util.ArrayList<>();
            int[] perReq = new int[n];
            boolean[] nested = {false};
            IoRequest.Completion c = (req, res) -> {
                int i = (int) req.ownerWord;
                perReq[i]++;
                order.add(i);
                if (i == 0) {
                    // A callback that runs the loop (a nested wait): the completion bottom half,
                    // scheduled when the pass began, completes the rest from inside this frame.
                    nested[0] = true;
                    ctx.poll(false);
                    nested[0] = false;
                    assertThat(order).as("the nested pass completed the others").hasSize(n);
                }
            };
            DeferCall dc = ctx.deferCall();
            dc.begin();
            for (int i = 0; i < n; i++) {
                IoRequest r = new IoRequest();
                r.ownerWord = i;
                aio.submit(r.readv(fd, b.iov.address(), 1, (long) i * BLOCK, c), 32);
            }
            dc.end();
            assertThat(order).containsExactly(0, 1, 2, 3, 4, 5, 6, 7);
            assertThat(perReq).containsOnly(1);
            assertThat(aio.inFlight()).isZero();
            assertThat(aio.completionPasses()).isGreaterThanOrEqualTo(2);
        } finally {
            aio.release();
        }
    }

    @Test
    void batchLimitSubmitsEarlyAndRingBoundsInFlight() {
        openFile(true, 1 << 22);
        SubmissionQueue aio = LinuxAio.of(ctx, 4, false);
        try {
            int n = 40;
            Buf b = buf(BLOCK);
            IoRequest[] reqs = new IoRequest[n];
            Done done = new Done();
            DeferCall dc = ctx.deferCall();
            dc.begin();
            int maxInFlight = 0;
            for (int i = 0; i < n; i++) {
                reqs[i] = new IoRequest().readv(fd, b.iov.address(), 1, (long) i * BLOCK, done);
                aio.submit(reqs[i], 3);
                maxInFlight = Math.max(maxInFlight, aio.inFlight());
                assertThat(aio.inFlight()).isLessThanOrEqualTo(4);
            }
            // Batches of 3 went down before the section ended.
            assertThat(aio.submitCalls()).isPositive();
            dc.end();
            assertThat(aio.inFlight() + done.count).isLessThanOrEqualTo(n);
            LoopSteps.pollUntil(ctx, () -> {
                assertThat(aio.inFlight()).isLessThanOrEqualTo(4);
                return done.count == n;
            }, "40 reads through a 4-slot ring");
            assertThat(done.doubles).isZero();
            assertThat(aio.queued()).isZero();
            assertThat(aio.blocked()).isFalse();
        } finally {
            aio.release();
        }
    }

    @ParameterizedTest(name = "getevents fallback={0}")
    @ValueSource(booleans = {false, true})
    void kernelEagainBlocksTheQueueUntilCompletionsFreeSlots(boolean fallback) {
        openFile(false, 1 << 20);
        // One batch may hold every request (aio-max-batch 1024), so they reach io_submit together.
        ctx.close();
        ctx = new AioContext("aio-test-eagain", Thread.currentThread(), NanoClock.SYSTEM,
                AioOptions.DEFAULT.withAioMaxBatch(1024));
        // The kernel context holds far fewer requests (io_setup(1): a few hundred at most) than the
        // engine lets in flight, so the kernel runs out of slots and answers EAGAIN.
        SubmissionQueue aio = LinuxAio.createUnshared(ctx, 1, 1024, fallback);
        try {
            int n = 1024;
            Buf b = buf(BLOCK);
            Done done = new Done();
            IoRequest[] reqs = new IoRequest[n];
            DeferCall dc = ctx.deferCall();
            dc.begin();
            for (int i = 0; i < n; i++) {
                reqs[i] = new IoRequest().readv(fd, b.iov.address(), 1, (long) (i % 256) * BLOCK, done);
                aio.submit(reqs[i], 1024);
            }
            dc.end();
            assertThat(aio.eagainCount()).isPositive();
            assertThat(aio.blocked()).isTrue();
            assertThat(aio.queued()).isPositive();
            int queuedAfterEagain = aio.queued();
            // Blocked: a new request only queues; no io_submit is attempted for it.
            long calls = aio.submitCalls();
            IoRequest extra = new IoRequest().readv(fd, b.iov.address(), 1, 0, done);
            aio.submit(extra, 1);
            assertThat(aio.submitCalls()).isEqualTo(calls);
            assertThat(aio.queued()).isEqualTo(queuedAfterEagain + 1);
            LoopSteps.pollUntil(ctx, () -> done.count == n + 1, "all requests after EAGAIN");
            assertThat(done.doubles).isZero();
            assertThat(aio.blocked()).isFalse();
            assertThat(aio.queued() + aio.inFlight()).isZero();
        } finally {
            aio.release();
        }
    }

    @Test
    void badFdFailsTheFirstAndTheRestGoThrough() {
        openFile(false, 1 << 20);
        SubmissionQueue aio = LinuxAio.of(ctx);
        try {
            Buf b = buf(BLOCK);
            Done good = new Done();
            Done bad = new Done();
            IoRequest r1 = new IoRequest().readv(fd, b.iov.address(), 1, 0, good);
            IoRequest r2 = new IoRequest().readv(987_654, b.iov.address(), 1, 0, bad);
            IoRequest r3 = new IoRequest().readv(fd, b.iov.address(), 1, BLOCK, good);
            DeferCall dc = ctx.deferCall();
            dc.begin();
            aio.submit(r1, 32);
            aio.submit(r2, 32);
            aio.submit(r3, 32);
            dc.end();
            LoopSteps.pollUntil(ctx, () -> good.count == 2 && bad.count == 1, "one failed, two done");
            assertThat(bad.lastResult).isEqualTo(-Errno.EBADF);
            assertThat(good.lastResult).isEqualTo(BLOCK);
            assertThat(aio.submitErrors()).isEqualTo(1);
            assertThat(good.doubles + bad.doubles).isZero();
        } finally {
            aio.release();
        }
    }

    @Test
    void flushAndFallocate() {
        openFile(false, 1 << 20);
        SubmissionQueue aio = LinuxAio.of(ctx);
        try {
            assertThat(LinuxAio.fdsyncSupported()).isTrue(); // kernel 4.18+
            Buf b = buf(BLOCK);
            b.data.fill((byte) 9);
            Done done = new Done();
            IoRequest w = new IoRequest().writev(fd, b.iov.address(), 1, 0, done);
            aio.submit(w, 32);
            assertThat(done.count).isEqualTo(1);
            IoRequest f = new IoRequest().fdsync(fd, done);
            aio.submit(f, 32);
            LoopSteps.pollUntil(ctx, () -> done.count == 2, "fdsync");
            assertThat(done.lastResult).isZero();
            IoRequest p = new IoRequest().fallocate(fd, Sys.FALLOC_FL_PUNCH_HOLE | Sys.FALLOC_FL_KEEP_SIZE,
                    0, BLOCK, done);
            aio.submit(p, 32);
            assertThat(aio.inFallback()).isEqualTo(1);
            LoopSteps.pollUntil(ctx, () -> done.count == 3, "punch hole in the worker pool");
            assertThat(done.lastResult).isZero();
            w.ownerWord = 0;
            aio.submit(w.readv(fd, b.iov.address(), 1, 0, done), 32);
            LoopSteps.pollUntil(ctx, () -> done.count == 4, "read back");
            assertThat(b.data.get(ValueLayout.JAVA_BYTE, 0)).isZero();
        } finally {
            aio.release();
        }
    }

    /** Closed loop: each completion submits the next read at once (seed 000's workload). */
    private static final class ClosedLoop implements IoRequest.Completion {
        final SubmissionQueue aio;
        final int fd;
        final long iov;
        final int total;
        final int stopAtDepth;
        int issued;
        int completed;
        int maxDepth;

        ClosedLoop(SubmissionQueue aio, int fd, long iov, int total, int stopAtDepth) {
            this.aio = aio;
            this.fd = fd;
            this.iov = iov;
            this.total = total;
            this.stopAtDepth = stopAtDepth;
        }

        void start(IoRequest r) {
            issued++;
            aio.submit(r.readv(fd, iov, 1, 0, this), 32);
        }

        @Override
        public void aioCompleted(IoRequest req, long result) {
            completed++;
            maxDepth = Math.max(maxDepth, aio.submitGuard().depth());
            if (issued < total && aio.submitGuard().depth() < stopAtDepth) {
                start(req);
            }
        }
    }

    @Test
    void closedLoopOnPageCacheIsCappedWithGuardOn() {
        openFile(false, 1 << 20);
        SubmissionQueue aio = LinuxAio.of(ctx);
        try {
            Buf b = buf(BLOCK);
            ClosedLoop loop = new ClosedLoop(aio, fd, b.iov.address(), 500, Integer.MAX_VALUE);
            DeferCall dc = ctx.deferCall();
            dc.begin();
            loop.start(new IoRequest());
            dc.end();
            LoopSteps.pollUntil(ctx, () -> loop.completed == 500, "500 chained reads");
            assertThat(aio.maxSubmitDepth()).isEqualTo(SubmitGuard.DEFAULT_CAP);
            assertThat(aio.submitCapHits()).isPositive();
            assertThat(loop.completed).isEqualTo(loop.issued);
            assertThat(aio.inFlight() + aio.queued()).isZero();
        } finally {
            aio.release();
        }
    }

    @Test
    void closedLoopOnPageCacheRecursesWithGuardOff() {
        openFile(false, 1 << 20);
        ctx.setGuard(Guard.SUBMIT_DEPTH, false);
        SubmissionQueue aio = LinuxAio.of(ctx);
        try {
            Buf b = buf(BLOCK);
            ClosedLoop loop = new ClosedLoop(aio, fd, b.iov.address(), 500, 60);
            DeferCall dc = ctx.deferCall();
            dc.begin();
            loop.start(new IoRequest());
            dc.end();
            // Everything happened in that one frame: 60 levels deep, then the loop stopped itself.
            assertThat(aio.maxSubmitDepth()).isEqualTo(60);
            assertThat(aio.submitCapHits()).isZero();
            assertThat(loop.completed).isEqualTo(loop.issued);
        } finally {
            aio.release();
        }
    }

    @Test
    void submitFromAnotherThreadIsRefused() throws Exception {
        openFile(false, 1 << 20);
        SubmissionQueue aio = LinuxAio.of(ctx);
        try {
            Buf b = buf(BLOCK);
            IoRequest r = new IoRequest().readv(fd, b.iov.address(), 1, 0, (q, res) -> { });
            CompletableFuture<Throwable> f = new CompletableFuture<>();
            Thread t = new Thread(() -> {
                try {
                    aio.submit(r, 32);
                    f.complete(null);
                } catch (Throwable e) {
                    f.complete(e);
                }
            }, "intruder");
            t.start();
            assertThat(f.get(5, TimeUnit.SECONDS)).isInstanceOf(IllegalStateException.class)
                    .hasMessageContaining("intruder");
        } finally {
            aio.release();
        }
    }

    @Test
    void releaseRefusesWhileInFlightAndSharesOneEnginePerContext() {
        openFile(true, 1 << 20);
        SubmissionQueue a = LinuxAio.of(ctx);
        SubmissionQueue b = LinuxAio.of(ctx);
        assertThat(b).isSameAs(a);
        b.release();
        Buf buf = buf(BLOCK);
        Done done = new Done();
        IoRequest r = new IoRequest().readv(fd, buf.iov.address(), 1, 0, done);
        DeferCall dc = ctx.deferCall();
        dc.begin();
        a.submit(r, 32);
        assertThatThrownBy(() -> r.readv(fd, 0, 1, 0, done)).isInstanceOf(IllegalStateException.class);
        assertThatThrownBy(() -> a.submit(r, 32)).hasMessageContaining("twice");
        assertThatThrownBy(a::release).hasMessageContaining("queued");
        dc.end();
        LoopSteps.pollUntil(ctx, () -> done.count == 1, "read");
        a.release();
        SubmissionQueue c = LinuxAio.of(ctx);
        assertThat(c).isNotSameAs(a);
        c.release();
    }
}
