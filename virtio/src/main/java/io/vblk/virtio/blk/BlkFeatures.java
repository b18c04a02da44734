package io.vblk.virtio.blk;

/**
 * Any thread: constants.
 *
 * <p>Feature bits of the block device (virtio 1.2 section 5.2.3). Device-independent bits
 * (VERSION_1, INDIRECT_DESC, EVENT_IDX) are in {@link io.vblk.virtio.queue.VirtioFeatures}.
 */
public final class BlkFeatures {
    /** 5.2.3: maximum size of any single segment is in size_max. Not offered by vblk. */
    public static final int SIZE_MAX = 1;
    /** 5.2.3: maximum number of segments in a request is in seg_max. */
    public static final int SEG_MAX = 2;
    /** 5.2.3: disk-style geometry in geometry. Not offered by vblk. */
    public static final int GEOMETRY = 4;
    /** 5.2.3: device is read-only. */
    public static final int RO = 5;
    /** 5.2.3: block size of disk is in blk_size. */
    public static final int BLK_SIZE = 6;
    /** 5.2.3: cache flush command support. */
    public static final int FLUSH = 9;
    /** 5.2.3: optimal I/O alignment information in topology. */
    public static final int TOPOLOGY = 10;
    /** 5.2.3: the driver can toggle writeback / writethrough through the writeback field. */
    public static final int CONFIG_WCE = 11;
    /** 5.2.3: more than one queue; the count is in num_queues. */
    public static final int MQ = 12;
    /** 5.2.3: discard command; limits in max_discard_sectors / max_discard_seg. */
    public static final int DISCARD = 13;
    /** 5.2.3: write zeroes command; limits in max_write_zeroes_sectors / max_write_zeroes_seg. */
    public static final int WRITE_ZEROES = 14;
    /** 5.2.3: storage lifetime information. */
    public static final int LIFETIME = 15;
    /** 5.2.3: secure erase command; limits in max_secure_erase_sectors / max_secure_erase_seg. */
    public static final int SECURE_ERASE = 16;

    private BlkFeatures() {
    }
}
