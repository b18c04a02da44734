package io.vblk.virtio.blk;

/**
 * Any thread: constants.
 *
 * <p>The block device's configuration space, {@code struct virtio_blk_config} (virtio 1.2 section
 * 5.2.4), little-endian. vblk exposes it up to and including the secure-erase fields ({@link #SIZE}
 * bytes): the zoned fields that follow belong to a feature it does not offer.
 *
 * <pre>
 *  off  size field                       off  size field
 *    0   8   capacity (512-byte sectors)   32   1   writeback (0 writethrough, 1 writeback)
 *    8   4   size_max                      33   1   unused0
 *   12   4   seg_max                       34   2   num_queues
 *   16   2   geometry.cylinders            36   4   max_discard_sectors
 *   18   1   geometry.heads                40   4   max_discard_seg
 *   19   1   geometry.sectors              44   4   discard_sector_alignment
 *   20   4   blk_size                      48   4   max_write_zeroes_sectors
 *   24   1   topology.physical_block_exp   52   4   max_write_zeroes_seg
 *   25   1   topology.alignment_offset     56   1   write_zeroes_may_unmap
 *   26   2   topology.min_io_size          57   3   unused1
 *   28   4   topology.opt_io_size          60   4   max_secure_erase_sectors
 *                                          64   4   max_secure_erase_seg
 *                                          68   4   secure_erase_sector_alignment
 *                                          72       (end)
 * </pre>
 */
public final class BlkConfigLayout {
    public static final int CAPACITY = 0;
    public static final int SIZE_MAX = 8;
    public static final int SEG_MAX = 12;
    public static final int GEOMETRY_CYLINDERS = 16;
    public static final int GEOMETRY_HEADS = 18;
    public static final int GEOMETRY_SECTORS = 19;
    public static final int BLK_SIZE = 20;
    public static final int PHYSICAL_BLOCK_EXP = 24;
    public static final int ALIGNMENT_OFFSET = 25;
    public static final int MIN_IO_SIZE = 26;
    public static final int OPT_IO_SIZE = 28;
    /** The one device-writable field (5.2.5: with VIRTIO_BLK_F_CONFIG_WCE). */
    public static final int WRITEBACK = 32;
    public static final int UNUSED0 = 33;
    public static final int NUM_QUEUES = 34;
    public static final int MAX_DISCARD_SECTORS = 36;
    public static final int MAX_DISCARD_SEG = 40;
    public static final int DISCARD_SECTOR_ALIGNMENT = 44;
    public static final int MAX_WRITE_ZEROES_SECTORS = 48;
    public static final int MAX_WRITE_ZEROES_SEG = 52;
    public static final int WRITE_ZEROES_MAY_UNMAP = 56;
    public static final int UNUSED1 = 57;
    public static final int MAX_SECURE_ERASE_SECTORS = 60;
    public static final int MAX_SECURE_ERASE_SEG = 64;
    public static final int SECURE_ERASE_SECTOR_ALIGNMENT = 68;
    /** Bytes vblk exposes: through secure_erase_sector_alignment. */
    public static final int SIZE = 72;

    private BlkConfigLayout() {
    }
}
