package io.vblk.guest;

import io.vblk.virtio.queue.QueueLayout;

import java.lang.foreign.MemorySegment;

/**
 * Home thread: the guest vCPU thread that drives the queue (set-up runs before that thread starts).
 * No locking.
 *
 * <p>The driver side of one virtqueue, whatever its layout: what {@link GuestBlkQueue} posts
 * requests on and reaps them from. {@link GuestVring} is the split ring (virtio 1.2 section 2.7),
 * {@link GuestPackedVring} the packed one (2.8). Chains are built buffer by buffer, committed with a
 * token, made visible by {@link #publish()}, and come back through {@link #reap} with that token.
 */
public sealed interface GuestRing permits GuestVring, GuestPackedVring {
    /** Who hears about each returned chain. */
    @FunctionalInterface
    interface UsedConsumer {
        /**
         * @param token the token given to {@link #commitChain}
         * @param len   bytes the device says it wrote into the chain's writable buffers
         */
        void used(int token, int len);
    }

    /** Lays out a ring of {@code size} entries in {@code ram}: packed or split. */
    static GuestRing allocate(GuestRam ram, int size, boolean packed) {
        return packed ? GuestPackedVring.allocate(ram, size) : GuestVring.allocate(ram, size);
    }

    /** Where the ring lives and where the device starts, for the transport's configure-queue call. */
    QueueLayout layout();

    int size();

    boolean packed();

    /** Forgets every chain and index, as after a device reset. */
    void reset();

    /** Whether VIRTIO_F_EVENT_IDX was negotiated. */
    void setEventIdx(boolean on);

    void beginChain();

    /** A chain in an indirect table at {@code tableGpa} (host view {@code table}, {@code capacity} entries). */
    void beginIndirectChain(long tableGpa, MemorySegment table, int capacity);

    void addBuffer(long gpa, int len, boolean deviceWritable);

    /** Commits the chain (not yet visible: {@link #publish()}); returns its head or buffer id. */
    int commitChain(int token);

    void abortChain();

    /** Makes every committed chain visible to the device (release order). */
    void publish();

    /** After {@link #publish()}: whether the device wants a kick for the chains since the last call. */
    boolean kickNeeded();

    /** Returns every used chain, handing its token to {@code consumer}; returns how many. */
    int reap(UsedConsumer consumer);

    boolean hasUsed();

    /** Asks for a notification at the next used chain; false when used chains are already waiting. */
    boolean enableInterrupts();

    void disableInterrupts();

    /** Chains committed and not yet returned. */
    int inFlight();

    int freeDescriptors();
}
