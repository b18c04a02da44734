package io.vblk.drivers;

import io.vblk.aio.AioContext;

/**
 * Any thread for the accessors; {@link #openChannel} on the context's home thread.
 *
 * <p>An open block device image (a file, a block device, the null device, a fault injector around
 * another driver). The image-wide facts are fixed at open and readable from any thread; I/O goes
 * through a {@link BlockChannel} opened per {@link AioContext}. The size changes only through
 * {@link #resize}, which {@link io.vblk.drivers.node.BlockNode#resize} calls inside a drained section.
 */
public interface BlockDriver extends AutoCloseable {
    /** Short name used in logs and metrics ("file", "null", "fault"). */
    String kind();

    /** Size in bytes (volatile: {@link #resize} may change it). */
    long length();

    /**
     * Changes the image's size to {@code newLength} bytes (QEMU's {@code bdrv_co_truncate}) and
     * returns the size it has now. Blocks in system calls (ftruncate): called on a worker thread,
     * never on a loop, while the node is drained, so no request is in flight. Throws
     * {@link IllegalArgumentException} with QEMU's message when the driver cannot take the size,
     * {@link UnsupportedOperationException} when it cannot be resized at all.
     */
    long resize(long newLength);

    /** Required alignment of offsets, lengths and buffer addresses (1 when none). */
    int alignment();

    boolean readOnly();

    /** True when DISCARD is served (otherwise it completes with -EOPNOTSUPP). */
    boolean supportsDiscard();

    /** True when WRITE_ZEROES is served natively or by fallback. */
    boolean supportsWriteZeroes();

    /**
     * True when SECURE_ERASE is served (otherwise it completes with -EOPNOTSUPP). A driver that says
     * yes documents what its erase guarantees; none can promise more than its storage does.
     */
    default boolean supportsSecureErase() {
        return false;
    }

    /**
     * The storage's wear estimate (virtio-blk GET_LIFETIME), read when called: a control-path call
     * that may read files. {@link DeviceLifetime#UNDEFINED} unless the driver knows better.
     */
    default DeviceLifetime lifetime() {
        return DeviceLifetime.UNDEFINED;
    }

    /** Largest number of requests it prefers in one submission batch. */
    default int maxBatch() {
        return 32;
    }

    /**
     * Allocation status from {@code offset} (QEMU's {@code bdrv_block_status}, NBD's
     * {@code base:allocation}): the number of bytes, at most {@code length}, that share one status —
     * positive for data, negative for a hole that reads as zeroes. Quick (no waiting on I/O), from
     * any thread. By default everything is data, which is always a correct answer.
     */
    default long blockStatus(long offset, long length) {
        return length;
    }

    /** Opens the per-context submission path; call on {@code ctx}'s home thread. */
    BlockChannel openChannel(AioContext ctx);

    /** Closes the image; every channel must be closed first. */
    @Override
    void close();
}
