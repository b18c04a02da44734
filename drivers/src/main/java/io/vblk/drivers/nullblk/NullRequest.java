package io.vblk.drivers.nullblk;

import io.vblk.aio.engine.IoRequest;
import io.vblk.drivers.BlockIo;

/**
 * Home thread: the owning IoThread of its {@link NullChannel}. No locking.
 *
 * <p>The null device's engine request: the {@link IoRequest} the {@link NullEngine} completes,
 * carrying the block request it performs. Pooled by its channel.
 */
final class NullRequest extends IoRequest {
    BlockIo io;
    /** Link in the channel's free list. */
    NullRequest nextFree;
}
