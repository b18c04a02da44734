package io.vblk.aio.uring;

/**
 * Any thread (offsets only).
 *
 * <p>{@code struct io_uring_params} (include/uapi/linux/io_uring.h), 120 bytes: passed to
 * {@code io_uring_setup(2)} with the wanted flags, copied back by the kernel with the ring sizes,
 * the features it offers and the offsets of the ring fields inside the mmapped areas
 * ({@link RingOffsetsLayout}).
 *
 * <pre>
 *    0  u32  sq_entries       // out: SQ size (entries rounded up to a power of two)
 *    4  u32  cq_entries       // out: CQ size (2 * sq_entries unless IORING_SETUP_CQSIZE)
 *    8  u32  flags            // in: IORING_SETUP_*
 *   12  u32  sq_thread_cpu    // SQPOLL only (unused here)
 *   16  u32  sq_thread_idle   // SQPOLL only (unused here)
 *   20  u32  features         // out: IORING_FEAT_*
 *   24  u32  wq_fd            // IORING_SETUP_ATTACH_WQ only
 *   28  u32  resv[3]          // must be 0
 *   40  struct io_sqring_offsets sq_off   // out, 40 bytes (RingOffsetsLayout)
 *   80  struct io_cqring_offsets cq_off   // out, 40 bytes (RingOffsetsLayout)
 * </pre>
 */
public final class UringParamsLayout {
    public static final int BYTES = 120;
    public static final int SQ_ENTRIES = 0;
    public static final int CQ_ENTRIES = 4;
    public static final int FLAGS = 8;
    public static final int SQ_THREAD_CPU = 12;
    public static final int SQ_THREAD_IDLE = 16;
    public static final int FEATURES = 20;
    public static final int WQ_FD = 24;
    public static final int SQ_OFF = 40;
    public static final int CQ_OFF = 80;

    // io_uring_setup() flags (io_uring.h "io_uring_setup() flags"; kernel version that added each).
    /** Clamp SQ/CQ sizes to the kernel maximum instead of failing (5.6). */
    public static final int IORING_SETUP_CLAMP = 1 << 4;
    /** Start disabled: io_uring_enter fails with -EBADFD until IORING_REGISTER_ENABLE_RINGS (5.10). */
    public static final int IORING_SETUP_R_DISABLED = 1 << 6;
    /** Go on submitting after an SQE fails to prepare; the failed one still posts its CQE (5.18). */
    public static final int IORING_SETUP_SUBMIT_ALL = 1 << 7;
    /** Only one task submits (the creator): lets the kernel skip some locking (6.0). */
    public static final int IORING_SETUP_SINGLE_ISSUER = 1 << 12;

    // io_uring_params->features (io_uring.h "io_uring_params->features flags").
    /** SQ and CQ rings share one mmap at IORING_OFF_SQ_RING (5.4). */
    public static final int IORING_FEAT_SINGLE_MMAP = 1;
    /** CQEs that do not fit the CQ are kept by the kernel, never dropped (5.5). */
    public static final int IORING_FEAT_NODROP = 1 << 1;
    /** SQE contents are consumed at submit: the SQE memory may be reused once enter returns (5.5). */
    public static final int IORING_FEAT_SUBMIT_STABLE = 1 << 2;

    private UringParamsLayout() {
    }
}
