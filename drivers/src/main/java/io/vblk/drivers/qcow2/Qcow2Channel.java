package io.vblk.drivers.qcow2;

import io.vblk.aio.AioContext;
import io.vblk.drivers.BlockIo;
import io.vblk.drivers.ChannelBase;

/**
 * Home thread: the owning IoThread. No locking.
 *
 * <p>A qcow2 image's submission path on one context: validation and the one completion path come
 * from {@link ChannelBase}; each request is handed to a pooled {@link Qcow2Req} of the context's
 * {@link Qcow2Home}, which every channel of the image on this context shares.
 */
final class Qcow2Channel extends ChannelBase {
    private final Qcow2Driver qd;
    private final Qcow2Home home;

    Qcow2Channel(AioContext ctx, Qcow2Driver d, Qcow2Home home) {
        super(ctx, d);
        this.qd = d;
        this.home = home;
    }

    @Override
    protected void start(BlockIo io) {
        home.take(this, io);
    }

    /** The request finished; its one completion. */
    void done(BlockIo io, long result) {
        complete(io, result);
    }

    @Override
    protected void release() {
        qd.channelClosed(home);
    }
}
