package io.vblk.drivers;

import io.vblk.aio.AioContext;

/**
 * Home thread: the owning IoThread of {@link #context()}. No locking.
 *
 * <p>A driver's per-context submission path: one per (driver, AioContext). Every request submitted
 * completes exactly once through its {@link IoCompletion}, even when submission itself fails
 * (STYLE rule 11).
 */
public interface BlockChannel extends AutoCloseable {
    AioContext context();

    /** Queues or performs {@code io}; completion may happen before this returns. */
    void submit(BlockIo io);

    /** Requests submitted and not yet completed. */
    int inFlight();

    /** Runs {@code whenIdle} on the home thread once nothing is in flight (at once if idle). */
    void drain(Runnable whenIdle);

    /**
     * Reports every write-like request this channel completes to {@code o} (null: none), as
     * {@link WriteObserver} describes; returns false when the channel cannot (then the node's
     * dirty tracking does not cover it and a job that needs it refuses to start). Home thread.
     */
    default boolean observeWrites(WriteObserver o) {
        return false;
    }

    /**
     * Shows every validated write-like request to {@code g} (null: none) before it starts, as
     * {@link WriteGate} describes; returns false when the channel cannot (a job that needs it then
     * refuses to start). Home thread.
     */
    default boolean gateWrites(WriteGate g) {
        return false;
    }

    /** Starts a request the {@link WriteGate} kept. Home thread. */
    default void startGated(BlockIo io) {
        throw new UnsupportedOperationException("channel without a write gate: " + this);
    }

    /** Releases the channel; it must be idle. */
    @Override
    void close();
}
