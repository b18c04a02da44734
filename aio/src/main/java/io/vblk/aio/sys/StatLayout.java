package io.vblk.aio.sys;

/**
 * Any thread.
 *
 * <p>The fields of {@code struct stat} that {@link io.vblk.aio.sys system-call facade} reads, x86_64 layout (asm/stat.h,
 * {@code struct stat} for 64-bit: 144 bytes).
 *
 * <pre>
 *    0  st_dev      u64        48  st_size     s64
 *    8  st_ino      u64        56  st_blksize  s64
 *   16  st_nlink    u64        64  st_blocks   s64
 *   24  st_mode     u32        72  st_atime..  (3 x 16: sec, nsec)
 *   28  st_uid      u32       120  reserved    3 x s64
 *   32  st_gid      u32
 *   36  (pad)       u32
 *   40  st_rdev     u64
 * </pre>
 */
public final class StatLayout {
    public static final int BYTES = 144;
    public static final int ST_MODE = 24;
    public static final int ST_SIZE = 48;
    public static final int ST_BLKSIZE = 56;

    /** {@code S_IFMT} and the file types (sys/stat.h). */
    public static final int S_IFMT = 0170000;
    public static final int S_IFREG = 0100000;
    public static final int S_IFBLK = 0060000;

    private StatLayout() {
    }
}
