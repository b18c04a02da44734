package io.vblk.drivers;

/**
 * Home thread: the IoThread of the channel that asks (any of a node's channels, so in effect any
 * thread); {@link #admit} must be lock-free and must not allocate when it admits.
 *
 * <p>A filter in a node's write path, QEMU's copy-before-write idea: each write-like request
 * (WRITE, WRITE_ZEROES, DISCARD) a channel has validated is shown to the gate before it starts.
 * The gate either admits it (it starts at once) or keeps it: then the gate owes one
 * {@link BlockChannel#startGated} call, on the channel's IoThread, once what the request would
 * overwrite is safe (a backup has copied the old data). A kept request counts as in flight on its
 * channel until it completes, so a drain of the node waits for it.
 */
@FunctionalInterface
public interface WriteGate {
    /** True: start {@code io} now. False: the gate keeps it and starts it later on {@code ch}. */
    boolean admit(BlockChannel ch, BlockIo io);
}
