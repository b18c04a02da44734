package io.vblk.aio.sys;

/**
 * Any thread.
 *
 * <p>The fields of {@code struct statx} (include/uapi/linux/stat.h, 256 bytes) that {@link io.vblk.aio.sys system-call facade}
 * reads: the direct-I/O alignment a file needs (Linux 6.1+, STATX_DIOALIGN).
 *
 * <pre>
 *    0  u32 stx_mask              // which fields the kernel filled
 *    4  u32 stx_blksize
 *    8  u64 stx_attributes
 *   16  u32 stx_nlink, 20 u32 stx_uid, 24 u32 stx_gid, 28 u16 stx_mode, 30 u16 spare
 *   32  u64 stx_ino, 40 u64 stx_size, 48 u64 stx_blocks, 56 u64 stx_attributes_mask
 *   64  4 x struct statx_timestamp (16 bytes each: atime, btime, ctime, mtime)
 *  128  u32 rdev_major, rdev_minor, dev_major, dev_minor
 *  144  u64 stx_mnt_id
 *  152  u32 stx_dio_mem_align     // buffer address alignment for O_DIRECT (0: not supported)
 *  156  u32 stx_dio_offset_align  // file offset and length alignment for O_DIRECT
 *  160  ... (spare to 256)
 * </pre>
 */
public final class StatxLayout {
    public static final int BYTES = 256;
    public static final int STX_MASK = 0;
    public static final int STX_DIO_MEM_ALIGN = 152;
    public static final int STX_DIO_OFFSET_ALIGN = 156;

    /** stx_mask / request bit for the two dio fields. */
    public static final int STATX_DIOALIGN = 0x00002000;
    /** {@code AT_EMPTY_PATH}: statx on the fd itself. */
    public static final int AT_EMPTY_PATH = 0x1000;

    private StatxLayout() {
    }
}
