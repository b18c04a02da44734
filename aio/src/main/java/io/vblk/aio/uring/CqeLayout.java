package io.vblk.aio.uring;

/**
 * Any thread (offsets only).
 *
 * <p>{@code struct io_uring_cqe} (include/uapi/linux/io_uring.h), 16 bytes (without
 * IORING_SETUP_CQE32): one completion, as the kernel writes it into the CQ ring.
 *
 * <pre>
 *    0  u64  user_data   // the SQE's user_data; vblk puts the slot index here
 *    8  s32  res         // bytes transferred, 0, or -errno
 *   12  u32  flags       // IORING_CQE_F_* (none used by the file opcodes here)
 * </pre>
 */
public final class CqeLayout {
    public static final int BYTES = 16;
    public static final int USER_DATA = 0;
    public static final int RES = 8;
    public static final int FLAGS = 12;

    private CqeLayout() {
    }
}
