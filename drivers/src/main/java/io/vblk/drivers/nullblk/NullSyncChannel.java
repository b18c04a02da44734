package io.vblk.drivers.nullblk;

import io.vblk.aio.AioContext;
import io.vblk.aio.Bh;
import io.vblk.aio.DeferCall;
import io.vblk.aio.linuxaio.SubmitGuard;
import io.vblk.drivers.BlockIo;
import io.vblk.drivers.ChannelBase;

/**
 * Home thread: the owning IoThread. No locking.
 *
 * <p>The null device with synchronous completion, built like the Linux AIO engine: requests queue,
 * the queue is submitted at the end of the defer-call section (or at once when a batch is full),
 * "submission" performs every queued request at once (as io_submit does for page-cache hits), and
 * the completions are processed in the same frame inside a defer-call section.
 *
 * <p>That is seed 000's cycle, verbatim:
 * <pre>
 *   submitBatch -> processCompletions (section begins) -> callback submits -> defer(SUBMIT_FN)
 *               -> section ends -> deferredSubmit -> submitBatch ...
 * </pre>
 * bounded by a {@link SubmitGuard}; a capped submit leaves the queue to the completion bottom half.
 */
public final class NullSyncChannel extends ChannelBase {
    private static final DeferCall.Fn<NullSyncChannel> SUBMIT_FN = NullSyncChannel::deferredSubmit;

    private final int maxBatch;
    private final boolean readZeroes;
    private final SubmitGuard guard;
    private final Bh completionBh;
    private BlockIo pendingHead;
    private BlockIo pendingTail;
    private int inQueue;
    /** Performed, not yet completed; the cursor a nested pass continues from. */
    private BlockIo doneHead;
    private BlockIo doneTail;
    private boolean resumeByBh;
    private long submitCalls;

    NullSyncChannel(AioContext ctx, NullDriver driver) {
        super(ctx, driver);
        this.readZeroes = driver.readZeroes();
        int b = ctx.options().aioMaxBatch();
        this.maxBatch = Math.min(b == 0 ? driver.maxBatch() : b, driver.maxBatch());
        this.guard = new SubmitGuard(ctx);
        this.completionBh = ctx.bh("null-sync-completion", this::completionBh);
    }

    @Override
    protected void start(BlockIo io) {
        io.driverNext = null;
        if (pendingTail == null) {
            pendingHead = io;
        } else {
            pendingTail.driverNext = io;
        }
        pendingTail = io;
        if (++inQueue >= maxBatch) {
            submitBatch();
        } else {
            ctx.deferCall().defer(SUBMIT_FN, this);
        }
    }

    private static void deferredSubmit(NullSyncChannel c) {
        if (c.pendingHead != null && !c.isClosed()) {
            c.submitBatch();
        }
    }

    /** The "io_submit": performs everything queued, then completes it in this frame. */
    private void submitBatch() {
        if (!guard.enter()) {
            resumeByBh = true;
            completionBh.schedule();
            return;
        }
        try {
            submitCalls++;
            BlockIo list = pendingHead;
            pendingHead = null;
            pendingTail = null;
            inQueue = 0;
            while (list != null) {
                BlockIo io = list;
                list = io.driverNext;
                io.driverNext = null;
                io.driverWord = NullOps.perform(io, readZeroes);
                if (doneTail == null) {
                    doneHead = io;
                } else {
                    doneTail.driverNext = io;
                }
                doneTail = io;
            }
            processCompletions();
        } finally {
            guard.exit();
        }
    }

    private void processCompletions() {
        DeferCall dc = ctx.deferCall();
        dc.begin();
        completionBh.schedule(); // safety net for nested loops and capped submits
        try {
            while (doneHead != null) {
                BlockIo io = doneHead;
                doneHead = io.driverNext;
                if (doneHead == null) {
                    doneTail = null;
                }
                io.driverNext = null;
                complete(io, io.driverWord);
            }
        } finally {
            if (!resumeByBh) {
                completionBh.cancel();
            }
            dc.end();
        }
    }

    private void completionBh() {
        resumeByBh = false;
        processCompletions();
        if (pendingHead != null) {
            submitBatch();
        }
    }

    /** The seed-000 depth guard of this channel (max depth, cap hits). */
    public SubmitGuard submitGuard() {
        return guard;
    }

    /** Batches "submitted" (the io_submit analogue). */
    public long submitCalls() {
        return submitCalls;
    }

    @Override
    protected void release() {
        completionBh.delete();
    }
}
