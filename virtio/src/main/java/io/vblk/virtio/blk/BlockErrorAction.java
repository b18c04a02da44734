package io.vblk.virtio.blk;

/**
 * Any thread (immutable).
 *
 * <p>What the device did about one failed request: QEMU's {@code BlockErrorAction}, the
 * {@code action} field of {@code BLOCK_IO_ERROR}.
 */
public enum BlockErrorAction {
    /** Completed as a success. */
    IGNORE,
    /** Completed with VIRTIO_BLK_S_IOERR. */
    REPORT,
    /** Held; the device stopped taking requests until it is resumed. */
    STOP;

    /** The QAPI spelling: ignore, report, stop. */
    public String spelling() {
        return name().toLowerCase(java.util.Locale.ROOT);
    }
}
