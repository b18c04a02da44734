package io.vblk.drivers.nullblk;

import io.vblk.aio.AioContext;
import io.vblk.aio.engine.IoRequest;
import io.vblk.aio.engine.SubmissionQueue;
import io.vblk.drivers.BlockIo;
import io.vblk.drivers.ChannelBase;

/**
 * Home thread: the owning IoThread. No locking.
 *
 * <p>The null device's submission path on one context: each {@link BlockIo} becomes a pooled
 * {@link NullRequest} submitted to this channel's own {@link SubmissionQueue} in front of a
 * {@link NullEngine} (synchronous or asynchronous completion) — the same queue, batching and
 * seed-000 depth guard as every other engine.
 */
public final class NullChannel extends ChannelBase {
    private final SubmissionQueue queue;
    private final int maxBatch;
    private final IoRequest.Completion engineDone = this::engineDone;
    private NullRequest free;

    NullChannel(AioContext ctx, NullDriver driver) {
        super(ctx, driver);
        this.maxBatch = driver.maxBatch();
        this.queue = new SubmissionQueue(ctx,
                new NullEngine(ctx, driver.completion() == NullDriver.Completion.ASYNC, driver.readZeroes()));
    }

    @Override
    protected void start(BlockIo io) {
        NullRequest r = free;
        if (r == null) {
            r = new NullRequest(); // only while the pool grows to the workload
        } else {
            free = r.nextFree;
            r.nextFree = null;
        }
        r.io = io;
        switch (io.op) {
            case BlockIo.READ -> r.readv(-1, io.iov.address(), io.iov.count(), io.offset, engineDone);
            case BlockIo.WRITE -> r.writev(-1, io.iov.address(), io.iov.count(), io.offset, engineDone);
            case BlockIo.FLUSH -> r.fdsync(-1, engineDone);
            default -> r.fallocate(-1, 0, io.offset, io.length, engineDone); // DISCARD, WRITE_ZEROES
        }
        queue.submit(r, maxBatch);
    }

    private void engineDone(IoRequest req, long result) {
        NullRequest r = (NullRequest) req;
        BlockIo io = r.io;
        r.io = null;
        r.nextFree = free;
        free = r;
        complete(io, result);
    }

    /** The engine this channel submits to: its depth guard (max depth, cap hits) and counters. */
    @Override
    public SubmissionQueue engine() {
        return queue;
    }

    @Override
    protected void release() {
        queue.release();
    }
}
