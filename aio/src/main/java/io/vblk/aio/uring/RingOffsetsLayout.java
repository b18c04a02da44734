package io.vblk.aio.uring;

/**
 * Any thread (offsets only).
 *
 * <p>{@code struct io_sqring_offsets} and {@code struct io_cqring_offsets}
 * (include/uapi/linux/io_uring.h), 40 bytes each, found at {@link UringParamsLayout#SQ_OFF} and
 * {@link UringParamsLayout#CQ_OFF}. Each field is the byte offset of that ring field inside the
 * ring's mmapped area (io_uring_setup(2): "the offsets ... are filled in by the kernel").
 *
 * <pre>
 *          io_sqring_offsets                 io_cqring_offsets
 *    0  u32  head          (kernel writes)    head          (we write)
 *    4  u32  tail          (we write)         tail          (kernel writes)
 *    8  u32  ring_mask                        ring_mask
 *   12  u32  ring_entries                     ring_entries
 *   16  u32  flags         (IORING_SQ_*)      overflow      (CQEs dropped; 0 with FEAT_NODROP)
 *   20  u32  dropped       (invalid SQEs)     cqes          (the io_uring_cqe array, CqeLayout)
 *   24  u32  array         (u32 SQE indexes)  flags         (IORING_CQ_*)
 *   28  u32  resv1                            resv1
 *   32  u64  user_addr     (NO_MMAP only)     user_addr     (NO_MMAP only)
 * </pre>
 */
public final class RingOffsetsLayout {
    public static final int BYTES = 40;
    public static final int HEAD = 0;
    public static final int TAIL = 4;
    public static final int RING_MASK = 8;
    public static final int RING_ENTRIES = 12;
    /** SQ: flags; CQ: overflow. */
    public static final int SQ_FLAGS = 16;
    public static final int CQ_OVERFLOW = 16;
    /** SQ: dropped; CQ: cqes. */
    public static final int SQ_DROPPED = 20;
    public static final int CQ_CQES = 20;
    /** SQ: array; CQ: flags. */
    public static final int SQ_ARRAY = 24;
    public static final int CQ_FLAGS = 24;

    /** mmap(2) offsets that select the area (io_uring.h "Magic offsets for the application to mmap"). */
    public static final long IORING_OFF_SQ_RING = 0L;
    public static final long IORING_OFF_CQ_RING = 0x8000000L;
    public static final long IORING_OFF_SQES = 0x10000000L;

    private RingOffsetsLayout() {
    }
}
