package io.vblk.virtio.blk;

import io.vblk.aio.AioContext;
import io.vblk.drivers.BlockChannel;
import io.vblk.drivers.BlockDriver;

/**
 * Home thread: {@link #ctx}'s. No locking.
 *
 * <p>The driver channel shared by every queue of one device that lives on the same context:
 * opened on first use, closed with the device.
 */
final class ContextChannel {
    final AioContext ctx;
    private final BlockDriver driver;
    private BlockChannel channel;

    ContextChannel(AioContext ctx, BlockDriver driver) {
        this.ctx = ctx;
        this.driver = driver;
    }

    BlockChannel get() {
        ctx.assertHome();
        if (channel == null) {
            channel = driver.openChannel(ctx);
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
            channel.close();
            channel = null;
        }
    }
}
