package io.vblk.virtio.blk;

import io.vblk.aio.AioContext;
import io.vblk.drivers.BlockChannel;
import io.vblk.drivers.node.BlockNode;

/**
 * Home thread: {@link #ctx}'s. No locking.
 *
 * <p>The driver channel shared by every queue of one device that lives on the same context:
 * opened on the device's block node on first use, closed with the device, moved to another node
 * by a job's pivot ({@link #moveTo}).
 */
final class ContextChannel {
    final AioContext ctx;
    private BlockNode node;
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

    /**
     * The device moved to node {@code to} (a mirror's pivot, inside drained sections of both
     * nodes): the channel is re-opened there and returned (null when none was open); the old one
     * closes once idle — at once, since the drain left nothing in flight, unless seed 003's guard
     * is off and the queues kept submitting.
     */
    BlockChannel moveTo(BlockNode to) {
        ctx.assertHome();
        BlockNode from = node;
        node = to;
        BlockChannel old = channel;
        if (old == null) {
            return null;
        }
        channel = to.openChannel(ctx);
        old.drain(() -> from.closeChannel(old));
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
