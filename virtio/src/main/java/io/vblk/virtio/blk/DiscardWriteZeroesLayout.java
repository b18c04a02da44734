package io.vblk.virtio.blk;

/**
 * Any thread: constants.
 *
 * <p>One segment of a DISCARD or WRITE_ZEROES request's data (virtio 1.2 section 5.2.6,
 * {@code struct virtio_blk_discard_write_zeroes}); the data is one or more of them.
 *
 * <pre>
 *  byte 0                8                 12                16
 *       +----------------+-----------------+-----------------+
 *       | sector le64    | num_sectors le32| flags le32      |
 *       +----------------+-----------------+-----------------+
 *  flags bit 0: unmap (WRITE_ZEROES only: the device may deallocate); bits 1..31 reserved
 * </pre>
 */
public final class DiscardWriteZeroesLayout {
    public static final int SECTOR = 0;
    public static final int NUM_SECTORS = 8;
    public static final int FLAGS = 12;
    public static final int BYTES = 16;
    /** 5.2.6: VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP. */
    public static final int FLAG_UNMAP = 1;

    private DiscardWriteZeroesLayout() {
    }
}
