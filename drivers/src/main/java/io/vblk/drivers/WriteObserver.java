package io.vblk.drivers;

/**
 * Home thread: the IoThread of the channel that reports (any of a node's channels, so in effect
 * any thread); implementations must be lock-free and allocation-free.
 *
 * <p>Hears each write-like request (WRITE, WRITE_ZEROES, DISCARD) a channel completes, before its
 * submitter does: the one hook through which a node's dirty bitmaps see every request that went
 * through the node ({@link io.vblk.drivers.node.BlockNode#addDirtyBitmap}). Marking at completion,
 * not at submission, is what makes a copy safe: the data has landed before the bit is set, so a
 * copy that cleared the bit before reading either saw the data or sees the bit again.
 */
@FunctionalInterface
public interface WriteObserver {
    /** {@code [offset, offset + length)} may have changed. */
    void written(long offset, long length);
}
