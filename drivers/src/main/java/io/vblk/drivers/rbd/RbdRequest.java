package io.vblk.drivers.rbd;

import io.vblk.drivers.BlockIo;

/**
 * Home thread: the owning IoThread of its {@link RbdChannel}, except {@link #result} and
 * {@link #nextDone}, which the librbd callback thread writes before it hands the request back
 * (published by the channel's Treiber-stack CAS).
 *
 * <p>One in-flight librbd operation of a channel: pooled, reused, identified in the completion's
 * argument by its {@link #slot}.
 */
final class RbdRequest {
    final int slot;
    BlockIo io;
    /** The operation in flight (a {@link BlockIo} op, or the flush that follows a FUA write). */
    int phase;
    /** rbd_aio_get_return_value: bytes or 0, or -errno. */
    long result;
    RbdRequest nextDone;
    RbdRequest nextFree;

    RbdRequest(int slot) {
        this.slot = slot;
    }
}
