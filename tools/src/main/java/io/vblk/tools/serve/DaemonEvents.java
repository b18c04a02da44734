package io.vblk.tools.serve;

import io.vblk.virtio.blk.BlockEvents;
import io.vblk.virtio.blk.BlockIoError;

import java.util.function.Consumer;

/**
 * Any thread: the listener is set once, before or while devices run (a volatile read per event).
 *
 * <p>The daemon's block events: every device's error policy reports here; each event is logged
 * ({@link BlockEvents#LOG}) and handed to the monitor, once one listens (QMP's BLOCK_IO_ERROR).
 */
public final class DaemonEvents implements BlockEvents {
    private volatile Consumer<BlockIoError> listener = e -> { };

    /** Sends every later event to {@code l} as well. */
    public void listen(Consumer<BlockIoError> l) {
        listener = l;
    }

    @Override
    public void blockIoError(BlockIoError e) {
        BlockEvents.LOG.blockIoError(e);
        listener.accept(e);
    }
}
