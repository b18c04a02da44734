package io.vblk.drivers.nullblk;

import io.vblk.aio.AioContext;
import io.vblk.aio.Bh;
import io.vblk.aio.engine.EngineBackend;
import io.vblk.aio.engine.IoRequest;
import io.vblk.aio.engine.SubmissionQueue;

/**
 * Home thread: the owning IoThread. No locking.
 *
 * <p>The null device as an engine backend behind the one {@link SubmissionQueue}, as QEMU's
 * {@code null-co} / {@code null-aio}:
 * <ul>
 *   <li>synchronous: {@link #submit} performs every request it is given (as io_submit does for
 *       page-cache hits) and the queue's completion pass right after it completes them in the same
 *       frame. That is seed 000's cycle, verbatim — submit → completions → callback submits →
 *       section end → submit — bounded by the queue's depth guard;</li>
 *   <li>asynchronous: {@link #submit} only takes the requests; a bottom half on the next loop
 *       iteration performs and completes them, a pass at a time, so requests submitted by a
 *       completion callback wait for the next pass.</li>
 * </ul>
 */
final class NullEngine implements EngineBackend {
    private final boolean async;
    private final boolean readZeroes;
    private final Bh bh;
    private EngineBackend.Queue queue;
    /** Performed (sync) or due (async), not yet handed back: the reap cursor. */
    private IoRequest doneHead;
    private IoRequest doneTail;
    /** Async: taken, due at the next loop iteration. */
    private IoRequest waitHead;
    private IoRequest waitTail;

    NullEngine(AioContext ctx, boolean async, boolean readZeroes) {
        this.async = async;
        this.readZeroes = readZeroes;
        this.bh = async ? ctx.bh("null-async-due", this::due) : null;
    }

    @Override
    public String kind() {
        return async ? "null-async" : "null-sync";
    }

    @Override
    public void attach(EngineBackend.Queue q) {
        this.queue = q;
    }

    @Override
    public int capacity() {
        return Integer.MAX_VALUE;
    }

    /** The driver's max-batch decides (the queue applies the context's aio-max-batch too). */
    @Override
    public int defaultMaxBatch() {
        return Integer.MAX_VALUE;
    }

    @Override
    public int submit(IoRequest first, int n) {
        IoRequest r = first;
        for (int i = 0; i < n; i++, r = r.nextQueued()) {
            if (async) {
                if (waitTail == null) {
                    waitHead = r;
                } else {
                    waitTail.backendLink(r);
                }
                waitTail = r;
            } else {
                r.backendResult(perform(r));
                appendDone(r);
            }
        }
        if (async) {
            bh.schedule();
        }
        return n;
    }

    private void appendDone(IoRequest r) {
        if (doneTail == null) {
            doneHead = r;
        } else {
            doneTail.backendLink(r);
        }
        doneTail = r;
    }

    /** Async bottom half: what was taken before this loop iteration is due now. */
    private void due() {
        if (waitHead != null) {
            if (doneTail == null) {
                doneHead = waitHead;
            } else {
                doneTail.backendLink(waitHead);
            }
            doneTail = waitTail;
            waitHead = null;
            waitTail = null;
        }
        queue.completionEvent();
    }

    @Override
    public void reap(EngineBackend.Queue q) {
        while (doneHead != null) {
            IoRequest r = doneHead;
            doneHead = r.backendLink(); // before the callback: a nested pass continues after r
            if (doneHead == null) {
                doneTail = null;
            }
            r.backendLink(null);
            q.completed(r, async ? perform(r) : r.backendResult());
        }
    }

    private long perform(IoRequest r) {
        return NullOps.perform(((NullRequest) r).io, readZeroes);
    }

    @Override
    public void close() {
        if (bh != null) {
            bh.delete();
        }
    }
}
