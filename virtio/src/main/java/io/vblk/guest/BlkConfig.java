package io.vblk.guest;

import static io.vblk.guest.BlkWireLayout.*;

/**
 * Any thread: immutable.
 *
 * <p>A virtio-blk configuration space as the guest read it (5.2.4). Fields whose feature was not
 * negotiated are still reported as read; callers look at the feature bits first.
 */
public record BlkConfig(long capacitySectors, int sizeMax, int segMax, int cylinders, int heads, int sectors,
                        int blkSize, int physicalBlockExp, int alignmentOffset, int minIoSize, long optIoSize,
                        int writeback, int numQueues, long maxDiscardSectors, int maxDiscardSeg,
                        long discardSectorAlignment, long maxWriteZeroesSectors, int maxWriteZeroesSeg,
                        boolean writeZeroesMayUnmap) {

    /** Parses {@code raw}, at least {@link BlkWireLayout#CFG_BYTES_READ} bytes read from offset 0. */
    public static BlkConfig parse(byte[] raw) {
        return new BlkConfig(
                le64(raw, CFG_CAPACITY),
                le32(raw, CFG_SIZE_MAX),
                le32(raw, CFG_SEG_MAX),
                le16(raw, CFG_GEOMETRY_CYLINDERS),
                raw[CFG_GEOMETRY_HEADS] & 0xff,
                raw[CFG_GEOMETRY_SECTORS] & 0xff,
                le32(raw, CFG_BLK_SIZE),
                raw[CFG_PHYSICAL_BLOCK_EXP] & 0xff,
                raw[CFG_ALIGNMENT_OFFSET] & 0xff,
                le16(raw, CFG_MIN_IO_SIZE),
                Integer.toUnsignedLong(le32(raw, CFG_OPT_IO_SIZE)),
                raw[CFG_WRITEBACK] & 0xff,
                le16(raw, CFG_NUM_QUEUES),
                Integer.toUnsignedLong(le32(raw, CFG_MAX_DISCARD_SECTORS)),
                le32(raw, CFG_MAX_DISCARD_SEG),
                Integer.toUnsignedLong(le32(raw, CFG_DISCARD_SECTOR_ALIGNMENT)),
                Integer.toUnsignedLong(le32(raw, CFG_MAX_WRITE_ZEROES_SECTORS)),
                le32(raw, CFG_MAX_WRITE_ZEROES_SEG),
                raw[CFG_WRITE_ZEROES_MAY_UNMAP] != 0);
    }

    /** Capacity in bytes. */
    public long capacityBytes() {
        return capacitySectors << SECTOR_SHIFT;
    }

    static int le16(byte[] b, int off) {
        return (b[off] & 0xff) | (b[off + 1] & 0xff) << 8;
    }

    static int le32(byte[] b, int off) {
        return (b[off] & 0xff) | (b[off + 1] & 0xff) << 8 | (b[off + 2] & 0xff) << 16 | (b[off + 3] & 0xff) << 24;
    }

    static long le64(byte[] b, int off) {
        return Integer.toUnsignedLong(le32(b, off)) | (long) le32(b, off + 4) << 32;
    }
}
