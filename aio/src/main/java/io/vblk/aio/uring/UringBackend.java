package io.vblk.aio.uring;

import io.vblk.aio.AioContext;
import io.vblk.aio.Bh;
import io.vblk.aio.engine.EngineBackend;
import io.vblk.aio.engine.IoEngine;
import io.vblk.aio.engine.IoRequest;
import io.vblk.aio.engine.SubmissionQueue;
import io.vblk.aio.sys.Errno;

/**
 * Home thread: the owning IoThread. No locking; the {@link SubmissionQueue} in front of it and the
 * {@link IoUring} under it assert the home thread at every entry point.
 *
 * <p>The io_uring backend of one {@link AioContext} ({@code aio=io_uring}), as QEMU's
 * {@code block/io_uring.c}: one {@link IoUring} whose slots hold the {@link IoRequest}s themselves
 * (no side object per request), one {@code io_uring_enter} per queue submit, completions read
 * from the CQ ring in user space. Queueing, batching, the blocked state and the seed-000 guard are
 * the queue's; short reads and CQEs with -EAGAIN are resubmitted inside the ring.
 *
 * <p>The cycle, in {@link EngineBackend}'s terms:
 * <pre>
 *   submit(first, n): k = ring.prepareList(first, n)   // SQEs written, slots hold the requests
 *                     ring.submit()                     // one io_uring_enter; page-cache I/O
 *                                                       // completes inside it (seed 000)
 *                     back = ring.withdraw(k)           // what the kernel did not consume
 *                     return k - back, or -EAGAIN       // (-EBUSY/-EAGAIN from enter, SQ full)
 *   reap(queue):      ring.reap()                       // CQ head is the cursor, published
 *                                                       // before each queue.completed
 *   ring fd readable: queue.completionEvent()           // not external: runs while drained
 * </pre>
 * Requests the kernel finished inside {@code submit} stay in the CQ until the queue's {@code reap}
 * right after it, so they are handed back inside the queue's seed-000 guard.
 *
 * <p>Wake-up: {@link IoUring.Wake#RING_FD} by default, the ring fd itself in the loop's epoll set
 * as QEMU does. The kernel signals an eventfd also for completions already reaped right after
 * submit, which costs a wake-up and an eventfd read; the level-triggered ring fd is readable only
 * while CQEs wait. tools' {@code UringBenchmark} (batches of 32 plus one loop turn, 2026-12-04,
 * load 2.6): CPU ns per request, NOP 168 (RING_FD) against 244 (EVENTFD), 4 KiB page-cache read
 * 388 against 576. Registered files are left off: they made no measurable difference.
 */
public final class UringBackend implements EngineBackend {
    /** SQ entries of the context's ring (QEMU's MAX_ENTRIES); the CQ, and so the capacity, is twice that. */
    public static final int DEFAULT_ENTRIES = IoUring.DEFAULT_ENTRIES;

    private static final Object KEY = new Object();

    /** Reads the queue's pending list for {@link IoUring#prepareList}: one stateless instance. */
    private static final IoUring.RequestReader<IoRequest> READER = new IoUring.RequestReader<>() {
        @Override
        public IoRequest next(IoRequest req) {
            return req.nextQueued();
        }

        @Override
        public boolean prepare(IoUring ring, IoRequest r) {
            return switch (r.op()) {
                case IoRequest.READV -> ring.prepareReadv(r.fd(), r.iovAddress(), r.iovCount(), r.offset(), r);
                case IoRequest.WRITEV -> ring.prepareWritev(r.fd(), r.iovAddress(), r.iovCount(), r.offset(), r);
                case IoRequest.FDSYNC -> ring.prepareFsync(r.fd(), true, r); // IORING_FSYNC_DATASYNC
                case IoRequest.FALLOCATE -> ring.prepareFallocate(r.fd(), r.mode(), r.offset(), r.length(), r);
                default -> throw new IllegalArgumentException("io_uring: unknown op " + r.op() + " in " + r);
            };
        }
    };

    /** io_uring has no generic ioctl: BLKSECDISCARD goes to the context's worker pool. */
    @Override
    public boolean supports(int op) {
        return op != IoRequest.SECURE_DISCARD;
    }

    @Override
    public io.vblk.aio.engine.IoEngine openFallback() {
        return io.vblk.aio.threadpool.WorkerPool.of(ctx);
    }

    private final AioContext ctx;
    private final IoUring ring;
    /** Pushes SQEs the kernel refused (enter said EAGAIN/EBUSY) when no completion is left to do it. */
    private final Bh retry;
    private EngineBackend.Queue queue;

    private UringBackend(AioContext ctx, int entries, IoUring.Wake wake) {
        this.ctx = ctx;
        // The CQ tail is readable from user space: the loop's busy poll reaps it (poll handler).
        this.ring = IoUring.open(ctx, entries, this::uringCompleted, this::completionReady, true, wake);
        this.retry = ctx.bh("io_uring-retry", this::retrySubmit);
    }

    /**
     * This context's io_uring engine, created on first use with {@link #DEFAULT_ENTRIES} and the
     * ring-fd wake-up; takes a reference that {@link SubmissionQueue#release()} drops (the last one
     * closes the ring). Home thread; IllegalStateException naming the errno when the kernel gives
     * no io_uring (disabled by {@code kernel.io_uring_disabled}, a seccomp filter, an old kernel).
     */
    public static SubmissionQueue of(AioContext ctx) {
        return of(ctx, DEFAULT_ENTRIES, IoUring.Wake.RING_FD);
    }

    /** As {@link #of(AioContext)}, choosing ring size and wake-up when this call creates the engine. Home thread. */
    public static SubmissionQueue of(AioContext ctx, int entries, IoUring.Wake wake) {
        ctx.assertHome();
        return SubmissionQueue.shared(ctx, KEY, c -> new UringBackend(c, entries, wake));
    }

    /** A private engine (not the context's shared one), e.g. a small ring for tests. Release it. Home thread. */
    public static SubmissionQueue createUnshared(AioContext ctx, int entries, IoUring.Wake wake) {
        ctx.assertHome();
        return new SubmissionQueue(ctx, new UringBackend(ctx, entries, wake));
    }

    /** This context's io_uring engine if one exists, else null; takes no reference (metrics). Home thread. */
    public static SubmissionQueue peek(AioContext ctx) {
        return SubmissionQueue.peekShared(ctx, KEY);
    }

    /** The io_uring backend behind {@code engine}, or null when it has another backend. */
    public static UringBackend backendOf(IoEngine engine) {
        return engine instanceof SubmissionQueue q && q.backend() instanceof UringBackend u ? u : null;
    }

    /**
     * Null when this kernel sets up an io_uring, else why not (the errno). Opens and closes one
     * one-entry ring; any thread. For start-up checks that must name the option.
     */
    public static String unavailableReason() {
        try {
            UringQueues.create(1, IoUring.SETUP_FLAGS).close();
            return null;
        } catch (IllegalStateException e) {
            return e.getMessage();
        }
    }

    // ---------------------------------------------------------------- EngineBackend

    @Override
    public String kind() {
        return "io_uring";
    }

    @Override
    public void attach(EngineBackend.Queue q) {
        this.queue = q;
    }

    /** One slot per CQ entry: the ring's own bound on requests in flight. */
    @Override
    public int capacity() {
        return ring.cqEntries();
    }

    /**
     * Prepares the first {@code n} queued requests (fewer when the SQ fills), pushes them in one
     * io_uring_enter, and takes back what the kernel did not consume, so the queue offers those
     * again: -EBUSY and -EAGAIN from enter become -EAGAIN for the queue, which blocks until a
     * completion frees room. Another enter error fails every request still in the SQ through the
     * next reap (a ring-wide failure: a bad ring fd, a fault), so they count as taken.
     */
    @Override
    public int submit(IoRequest first, int n) {
        int k = ring.prepareList(first, n, READER);
        int r = ring.submit(); // also when k is 0: resubmissions waiting for SQ room go first
        if (r < 0 && r != -Errno.EAGAIN && r != -Errno.EBUSY) {
            return k > 0 ? k : r;
        }
        int taken = k - ring.withdraw(k);
        return taken > 0 ? taken : -Errno.EAGAIN;
    }

    /**
     * The ring's reap: its CQ head is the cursor, published before each hand-back. Resubmissions
     * (short reads, CQE -EAGAIN) go down at its end; if the kernel refused them (enter said
     * EAGAIN/EBUSY) and nothing the ring holds is in the kernel, no completion would push them
     * again: the retry bottom half does, from the loop.
     */
    @Override
    public void reap(EngineBackend.Queue q) {
        ring.reap();
        if (ring.pendingSqes() > 0) {
            retry.schedule();
        }
    }

    private void retrySubmit() {
        ring.submit();
        queue.completionEvent();
    }

    private void uringCompleted(Object request, long result) {
        queue.completed((IoRequest) request, result);
    }

    /** The ring fd (or eventfd) handler: completions are waiting. */
    private void completionReady() {
        queue.completionEvent();
    }

    @Override
    public void close() {
        retry.delete();
        ring.close();
    }

    // ---------------------------------------------------------------- facts

    /** The ring (its size, wake-up mode, in-flight count). */
    public IoUring ring() {
        return ring;
    }

    /** What the ring did: enter calls, SQEs, CQEs, EAGAINs, short-read resubmissions. */
    public UringCounters counters() {
        return ring.counters();
    }

    @Override
    public String toString() {
        return "UringBackend[" + ring + "]";
    }
}
