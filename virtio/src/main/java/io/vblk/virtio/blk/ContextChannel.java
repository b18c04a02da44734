package io.vblk.virtio.blk;

import io.vblk.aio.AioContext;
import io.vblk.drivers.BlockChannel;
import io.vblk.drivers.node.BlockNode;

/**
 * Home thread: {@link #ctx}'s. No locking.
 *
 * <p>The driver channel shared by every queue of one device that lives on the same context:
 * opened on the device's block node on first use, closed with the device.
 */
final class ContextChannel {
    final AioContext ctx;
    private final BlockNode node;
    private BlockChannel channel;

    ContextChannel(AioContext ctx, BlockNode node) {
        this.ctx = ctx;
        this.node = node;
    }

    BlockChannel get() {
        ctx.assertHome();
        if (channel == null) {
            channel = node.openChannel(ctx);
        }
        return channel;
    }

    /** The channel if opened, else null. Any thread: a racy read, for metrics. */
    BlockChannel peek() {
        return channel;
    }

    void close() {
        ctx.assertHome();
        if (channel != null) {
            node.closeChannel(channel);
            channel = null;
        }
    }
}
