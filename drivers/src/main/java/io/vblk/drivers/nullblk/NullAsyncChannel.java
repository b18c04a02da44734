package io.vblk.drivers.nullblk;

import io.vblk.aio.AioContext;
import io.vblk.aio.Bh;
import io.vblk.aio.DeferCall;
import io.vblk.drivers.BlockIo;
import io.vblk.drivers.ChannelBase;

/**
 * The null device with asynchronous completion (QEMU's {@code null-aio}): requests complete from a
 * bottom half on the next loop iteration, a pass at a time; requests submitted by a completion
 * callback wait for the next pass.
 *
 * <p>Home thread: the owning IoThread. No locking.
 */
final class NullAsyncChannel extends ChannelBase {
    private final Bh bh;
    private final boolean readZeroes;
    private BlockIo head;
    private BlockIo tail;

    NullAsyncChannel(AioContext ctx, NullDriver driver) {
        super(ctx, driver);
        this.readZeroes = driver.readZeroes();
        this.bh = ctx.bh("null-async-completion", this::completeQueued);
    }

    @Override
    protected void start(BlockIo io) {
        io.driverNext = null;
        if (tail == null) {
            head = io;
        } else {
            tail.driverNext = io;
        }
        tail = io;
        bh.schedule();
    }

    private void completeQueued() {
        BlockIo list = head;
        head = null;
        tail = null;
        DeferCall dc = ctx.deferCall();
        dc.begin();
        try {
            while (list != null) {
                BlockIo io = list;
                list = io.driverNext;
                io.driverNext = null;
                complete(io, NullOps.perform(io, readZeroes));
            }
        } finally {
            dc.end();
        }
    }

    @Override
    protected void release() {
        bh.delete();
    }
}
