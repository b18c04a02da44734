package io.vblk.aio.engine;

import io.vblk.aio.AioContext;
import io.vblk.aio.Guard;

/**
 * Home thread: the owning IoThread. No locking.
 *
 * <p>The seed-000 guard: a depth counter on a submission queue whose submit can come back into
 * itself. The cycle it bounds, for any engine that completes requests synchronously:
 *
 * <pre>
 *   submit (io_submit, or a synchronous driver's batch)
 *     -> completions processed in the same frame      // deferCall().begin()
 *          -> completion callback queues new I/O
 *               -> deferCall().defer(submitFn, q)     // queued in the open section
 *     -> deferCall().end()                            // nesting back to 0
 *          -> submitFn -> submit                      // one frame deeper, and again ...
 * </pre>
 *
 * When submissions complete asynchronously the cycle ends after one extra frame; when they
 * complete synchronously (page-cache hits without O_DIRECT, the null driver) it is unbounded. With
 * {@link Guard#SUBMIT_DEPTH} on, {@link #enter()} refuses past {@link #cap()} levels and the
 * queue's owner returns without submitting, leaving the work to its completion bottom half, which
 * it schedules before returning.
 */
public final class SubmitGuard {
    /** Depth cap, as QEMU's IOQ_SUBMIT_MAX_DEPTH (seed 000). */
    public static final int DEFAULT_CAP = 8;

    private final AioContext ctx;
    private final int cap;
    private int depth;
    private int maxDepth;
    private long capHits;

    public SubmitGuard(AioContext ctx, int cap) {
        if (cap < 1) {
            throw new IllegalArgumentException("submit depth cap must be >= 1, got " + cap);
        }
        this.ctx = ctx;
        this.cap = cap;
    }

    public SubmitGuard(AioContext ctx) {
        this(ctx, DEFAULT_CAP);
    }

    /**
     * Enters one submit level; false (counted as a cap hit) when the guard is on and the cap is
     * reached: the caller must not submit and must not call {@link #exit()}.
     */
    public boolean enter() {
        if (depth >= cap && ctx.guard(Guard.SUBMIT_DEPTH)) {
            capHits++;
            return false;
        }
        if (++depth > maxDepth) {
            maxDepth = depth;
        }
        return true;
    }

    public void exit() {
        depth--;
    }

    public int cap() {
        return cap;
    }

    /** Current nesting of submit. */
    public int depth() {
        return depth;
    }

    /** Deepest nesting seen since creation or {@link #resetMaxDepth()}. */
    public int maxDepth() {
        return maxDepth;
    }

    /** Times {@link #enter()} refused. */
    public long capHits() {
        return capHits;
    }

    public void resetMaxDepth() {
        maxDepth = depth;
    }
}
