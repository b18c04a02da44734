package io.vblk.aio.engine;

import io.vblk.aio.AioContext;
import io.vblk.aio.Bh;
import io.vblk.aio.DeferCall;
import io.vblk.aio.metrics.LatencyHistogram;
import io.vblk.aio.sys.Errno;

import java.util.function.Function;

/**
 * Home thread: the owning IoThread. No locking. Every entry point asserts it (seed 002:
 * completions processed from two threads make counters go backwards and requests complete twice).
 *
 * <p>The one submission queue of every I/O engine (QEMU's {@code LaioQueue} and
 * {@code ioq_submit}), in front of an {@link EngineBackend}:
 * <ul>
 *   <li>a pending list whose submission is deferred to the end of the current defer-call section
 *       (plug/unplug), so every request queued in one pass goes down in one backend submit — or at
 *       once when a batch is full (the context's {@code aio-max-batch}, the driver's limit and the
 *       backend's free capacity);</li>
 *   <li>a blocked state after EAGAIN (or a full backend): new requests only queue, and the queue is
 *       retried when a completion frees room;</li>
 *   <li>"fail the first, retry the rest" when a submit fails with another error;</li>
 *   <li>the seed-000 depth cap ({@link SubmitGuard}) with the completion bottom half draining what
 *       a capped submit left;</li>
 *   <li>the completion pass, inside a defer-call section, so the guest notifications and
 *       submissions the callbacks cause are batched to its end.</li>
 * </ul>
 *
 * <p>Nothing is allocated per request: requests are linked through their own fields.
 */
public final class SubmissionQueue implements IoEngine, EngineBackend.Queue {
    /** Batch size when neither the context nor the driver says (QEMU's DEFAULT_MAX_BATCH). */
    public static final int DEFAULT_MAX_BATCH = 32;

    private static final DeferCall.Fn<SubmissionQueue> SUBMIT_FN = SubmissionQueue::deferredSubmit;

    /** A context's shared engine of one kind. */
    private static final class Holder {
        SubmissionQueue queue;
    }

    private final AioContext ctx;
    private final EngineBackend backend;
    private final int capacity;
    private final int defaultMaxBatch;
    /** Bit {@code 1 << op} set for each op the backend runs (asked once: the hot path reads a field). */
    private final int supportedOps;
    private final SubmitGuard depthGuard;
    private final Bh completionBh;
    private Holder holder;
    private IoEngine fallback;
    private int refs = 1;
    private boolean released;

    private IoRequest pendingHead;
    private IoRequest pendingTail;
    private int inQueue;
    private int inFlight;
    private boolean blocked;
    /** A capped submit left work for the completion bottom half; a pass must not cancel it. */
    private boolean resumeByBh;

    private long submitCalls;
    private long submitted;
    private long completed;
    private long submitErrors;
    private long eagains;
    private long completionPasses;
    private long completionBhRuns;
    /** Requests offered per backend submit call. */
    private final LatencyHistogram batchSizes = new LatencyHistogram();

    /**
     * A private queue (not the context's shared one) in front of {@code backend}, holding one
     * reference. Home thread.
     */
    public SubmissionQueue(AioContext ctx, EngineBackend backend) {
        ctx.assertHome();
        this.ctx = ctx;
        this.backend = backend;
        this.capacity = backend.capacity();
        if (capacity < 1) {
            throw new IllegalArgumentException(backend.kind() + ": capacity must be >= 1, got " + capacity);
        }
        this.defaultMaxBatch = backend.defaultMaxBatch();
        int ops = 0;
        for (int op = IoRequest.READV; op <= IoRequest.LAST_OP; op++) {
            ops |= backend.supports(op) ? 1 << op : 0;
        }
        this.supportedOps = ops;
        this.depthGuard = new SubmitGuard(ctx);
        this.completionBh = ctx.bh(backend.kind() + "-completion", this::completionBh);
        backend.attach(this);
    }

    /**
     * The context's engine stored under {@code key}, created with {@code factory} on first use;
     * takes a reference that {@link #release()} drops (the last one closes the backend). Home thread.
     */
    public static SubmissionQueue shared(AioContext ctx, Object key, Function<AioContext, EngineBackend> factory) {
        ctx.assertHome();
        Holder h = ctx.attachment(key, c -> new Holder());
        if (h.queue == null) {
            SubmissionQueue q = new SubmissionQueue(ctx, factory.apply(ctx));
            q.holder = h;
            h.queue = q;
        } else {
            h.queue.refs++;
        }
        return h.queue;
    }

    /** The context's engine stored under {@code key}, or null; takes no reference. Home thread. */
    public static SubmissionQueue peekShared(AioContext ctx, Object key) {
        ctx.assertHome();
        return ctx.attachment(key, c -> new Holder()).queue;
    }

    // ---------------------------------------------------------------- submission

    @Override
    public void submit(IoRequest req, int devMaxBatch) {
        ctx.assertHome();
        req.checkSubmittable();
        if (released) {
            throw new IllegalStateException(backend.kind() + " engine of " + ctx.name() + " is released");
        }
        if ((supportedOps & (1 << req.op())) == 0) {
            if (fallback == null) {
                fallback = backend.openFallback();
            }
            fallback.submit(req, devMaxBatch);
            return;
        }
        req.state = IoRequest.QUEUED;
        if (pendingTail == null) {
            pendingHead = req;
        } else {
            pendingTail.next = req;
        }
        pendingTail = req;
        inQueue++;
        if (!blocked) {
            if (inQueue >= maxBatch(devMaxBatch)) {
                ioqSubmit();
            } else {
                ctx.deferCall().defer(SUBMIT_FN, this);
            }
        }
    }

    /** min(context aio-max-batch or the backend's default, driver's, free capacity), at least 1. */
    private int maxBatch(int devMaxBatch) {
        int b = ctx.options().aioMaxBatch();
        if (b == 0) {
            b = defaultMaxBatch;
        }
        if (devMaxBatch > 0) {
            b = Math.min(b, devMaxBatch);
        }
        return Math.max(1, Math.min(b, capacity - inFlight));
    }

    private static void deferredSubmit(SubmissionQueue q) {
        if (!q.blocked && q.pendingHead != null && !q.released) {
            q.ioqSubmit();
        }
    }

    /**
     * Submits everything pending that fits in the backend, in as few calls as it allows, then
     * processes whatever completed meanwhile.
     *
     * <p>Seed 000's cycle runs through here: the backend completes requests before its submit
     * returns (io_submit on the page cache, the synchronous null device, io_uring with inline
     * completions) → {@link #processCompletions()} (a defer-call section) → a completion callback
     * submits the next request, which defers {@link #deferredSubmit} → the section's end runs it →
     * ioqSubmit, one frame deeper. The {@link SubmitGuard} stops it at {@link SubmitGuard#DEFAULT_CAP}
     * levels: the capped call returns without submitting and schedules the completion bottom half,
     * which resumes from the event loop. No request is lost; one loop round-trip of latency is
     * paid, and only when the cap is hit.
     */
    private void ioqSubmit() {
        if (!depthGuard.enter()) {
            resumeByBh = true;
            completionBh.schedule();
            return;
        }
        IoRequest failed = null;
        IoRequest failedTail = null;
        try {
            while (pendingHead != null && inFlight < capacity) {
                int len = Math.min(inQueue, capacity - inFlight);
                int ret = backend.submit(pendingHead, len);
                submitCalls++;
                batchSizes.record(len);
                if (ret == 0 || ret == -Errno.EAGAIN) {
                    eagains++;
                    break;
                }
                if (ret < 0) {
                    // Fail the first, retry the rest (QEMU ioq_submit): the kernel reports the
                    // error of the first request it could not take; the others may be fine.
                    submitErrors++;
                    IoRequest first = popPending();
                    first.backendResult(ret);
                    if (failedTail == null) {
                        failed = first;
                    } else {
                        failedTail.next = first;
                    }
                    failedTail = first;
                    continue;
                }
                if (ret > len) {
                    throw new IllegalStateException(backend.kind() + " took " + ret + " of " + len + " requests");
                }
                IoRequest r = pendingHead;
                for (int i = 0; i < ret; i++) {
                    IoRequest n = r.next;
                    r.state = IoRequest.IN_FLIGHT;
                    r.next = null;
                    r = n;
                }
                pendingHead = r;
                if (r == null) {
                    pendingTail = null;
                }
                inQueue -= ret;
                inFlight += ret;
                submitted += ret;
                // A short count means the backend stopped at a request it refused; the next call
                // reports that request's error (failed above) or EAGAIN (blocked), so go on.
            }
            blocked = inQueue > 0;
            if (blocked && inFlight == 0) {
                // Nothing in flight will complete to unblock us; retry from the loop.
                completionBh.schedule();
            }
            if (failed != null) {
                completeFailed(failed);
            }
            if (inFlight > 0) {
                long before = completed;
                processCompletions();
                if (blocked && completed != before) {
                    // Requests that finished inside this submit freed room while we are blocked,
                    // and no completion event may follow for them (io_uring's ring fd is readable
                    // only while CQEs wait, and they were just reaped): retry from the loop.
                    completionBh.schedule();
                }
            }
        } finally {
            depthGuard.exit();
        }
    }

    private IoRequest popPending() {
        IoRequest r = pendingHead;
        pendingHead = r.next;
        if (pendingHead == null) {
            pendingTail = null;
        }
        r.next = null;
        inQueue--;
        return r;
    }

    private void completeFailed(IoRequest list) {
        DeferCall dc = ctx.deferCall();
        dc.begin();
        try {
            while (list != null) {
                IoRequest r = list;
                list = r.next;
                completed++;
                r.complete(r.backendResult());
            }
        } finally {
            dc.end();
        }
    }

    // ---------------------------------------------------------------- completion

    /** {@inheritDoc} Called by the backend during {@link EngineBackend#reap}. */
    @Override
    public void completed(IoRequest r, long result) {
        if (r.state != IoRequest.IN_FLIGHT) {
            throw new IllegalStateException(backend.kind() + " on " + ctx.name() + " handed back a request"
                    + " that is not in flight: " + r);
        }
        inFlight--; // one by one: a nested pass sees exact counts
        completed++;
        r.complete(result);
    }

    /** {@inheritDoc} Home thread. */
    @Override
    public void completionEvent() {
        ctx.assertHome();
        if (released) {
            return;
        }
        processCompletions();
        if (pendingHead != null) {
            ioqSubmit();
        }
    }

    /**
     * A completion pass asked for from any thread: seed 002's guard. On the home thread it is
     * {@link #completionEvent()}. Another thread (a drain polling from the main loop, a library's
     * callback thread) never touches the engine: it counts the attempt
     * ({@link AioContext#countForeignCompletion()}, meter {@code vblk.guard.foreign.completions})
     * and schedules the completion bottom half, which reaps on the home thread; the caller waits
     * on its own terms to be kicked by what completes. With {@link io.vblk.aio.Guard#HOME_THREAD}
     * off (reproducers only) it calls {@link #completionEvent()} from the foreign thread, as
     * QEMU's main loop did before the fix: two threads then walk one completion ring. Any thread.
     */
    public void requestCompletions() {
        if (ctx.inHomeThread() || !ctx.guard(io.vblk.aio.Guard.HOME_THREAD)) {
            completionEvent();
            return;
        }
        if (released) {
            // Nothing left to reap. Read without ordering: a caller racing the release is refused by
            // the deleted bottom half's schedule (IllegalStateException) instead.
            return;
        }
        ctx.countForeignCompletion();
        completionBh.schedule();
    }

    private void completionBh() {
        completionBhRuns++;
        resumeByBh = false;
        completionEvent();
    }

    /**
     * Completes everything the backend has finished, inside a defer-call section so the guest
     * notifications (and the submissions) the callbacks cause are batched to its end. The
     * completion bottom half is scheduled first, so a nested event loop run from a callback still
     * sees the remaining completions; it is cancelled at the end unless a capped submit needs it.
     */
    private void processCompletions() {
        DeferCall dc = ctx.deferCall();
        dc.begin();
        completionBh.schedule();
        completionPasses++;
        try {
            backend.reap(this);
        } finally {
            if (!resumeByBh) {
                completionBh.cancel();
            }
            dc.end();
        }
    }

    // ---------------------------------------------------------------- lifecycle and facts

    @Override
    public void release() {
        ctx.assertHome();
        if (refs <= 0) {
            throw new IllegalStateException(backend.kind() + " engine of " + ctx.name()
                    + " released more often than taken");
        }
        if (--refs > 0) {
            return;
        }
        if (inFlight > 0 || inQueue > 0 || (fallback != null && fallback.inFlight() + fallback.queued() > 0)) {
            refs++;
            throw new IllegalStateException(backend.kind() + " engine of " + ctx.name() + " released with "
                    + inFlight + " in flight and " + inQueue + " queued; drain first");
        }
        released = true;
        if (holder != null) {
            holder.queue = null;
        }
        completionBh.delete();
        backend.close();
        if (fallback != null) {
            fallback.release();
            fallback = null;
        }
    }

    @Override
    public AioContext context() {
        return ctx;
    }

    @Override
    public String kind() {
        return backend.kind();
    }

    /** The backend behind this queue (for its own facts: ring mode, worker counts). */
    public EngineBackend backend() {
        return backend;
    }

    /** Requests the backend holds in flight at most. */
    public int capacity() {
        return capacity;
    }

    @Override
    public int inFlight() {
        return inFlight;
    }

    @Override
    public int queued() {
        return inQueue;
    }

    /** Requests at the fallback engine (Linux AIO: fallocate, fdatasync without IOCB_CMD_FDSYNC). */
    public int inFallback() {
        return fallback == null ? 0 : fallback.inFlight() + fallback.queued();
    }

    /** True after EAGAIN or a full backend, until a completion frees room. */
    public boolean blocked() {
        return blocked;
    }

    public SubmitGuard submitGuard() {
        return depthGuard;
    }

    /** Times the seed-000 depth cap stopped a submit. */
    public long submitCapHits() {
        return depthGuard.capHits();
    }

    /** Deepest submit nesting seen. */
    public int maxSubmitDepth() {
        return depthGuard.maxDepth();
    }

    /** Backend submit calls (io_submit for Linux AIO). */
    public long submitCalls() {
        return submitCalls;
    }

    public long submittedRequests() {
        return submitted;
    }

    public long completedRequests() {
        return completed;
    }

    /** Submit calls that failed with something else than EAGAIN (their first request failed). */
    public long submitErrors() {
        return submitErrors;
    }

    /** Submit calls answered with EAGAIN (or nothing taken). */
    public long eagainCount() {
        return eagains;
    }

    public long completionPasses() {
        return completionPasses;
    }

    /** Runs of the completion bottom half. */
    public long completionBhRuns() {
        return completionBhRuns;
    }

    /** Requests offered to each submit call; snapshots from any thread. */
    public LatencyHistogram batchSizes() {
        return batchSizes;
    }

    @Override
    public String toString() {
        return "SubmissionQueue[" + backend.kind() + " " + ctx.name() + " inFlight=" + inFlight + " queued="
                + inQueue + (blocked ? " blocked" : "") + " " + backend + "]";
    }
}
