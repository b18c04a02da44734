package io.vblk.virtio.queue;

import io.vblk.virtio.memory.GuestMemory;

/**
 * Home thread: the owning IoThread of the device queue. No locking.
 *
 * <p>The device side of one virtqueue, whatever its layout: the one ring abstraction the device
 * and vhost-user use. {@link SplitQueue} implements the split layout (virtio 1.2 section 2.7),
 * {@link PackedQueue} the packed one (2.8); {@link #forFeatures} picks by VIRTIO_F_RING_PACKED. The
 * device pops chains, pushes them back by the id {@link DescriptorChain#head()} gave, and asks
 * whether to notify, without knowing which layout it runs on.
 *
 * <p>Every method is allocation-free once started. A driver that breaks a ring rule makes
 * {@link #pop} return false and leaves the queue {@link #broken() broken} with a named
 * {@link QueueViolation}; the owner puts its device into NEEDS_RESET.
 */
public sealed interface VirtQueue permits SplitQueue, PackedQueue {
    /** Largest queue size vblk accepts (QEMU's VIRTQUEUE_MAX_SIZE), for either layout. */
    int MAX_SIZE = 1024;

    /** True when the negotiated {@code features} select the packed layout (VIRTIO_F_RING_PACKED, bit 34). */
    static boolean packed(long features) {
        return VirtioFeatures.has(features, VirtioFeatures.RING_PACKED);
    }

    /** The ring of {@code split} or {@code packed} the negotiated {@code features} select. */
    static VirtQueue forFeatures(long features, SplitQueue split, PackedQueue packed) {
        return packed(features) ? packed : split;
    }

    String name();

    /**
     * Attaches the rings {@code layout} describes and resumes at {@code layout.nextAvailIdx()}
     * (for a packed ring, the vhost-user encoding with the wrap counter in bit 15). Returns false,
     * with {@link #violation()} set, when the layout breaks a rule of the spec.
     */
    boolean start(QueueLayout layout, GuestMemory memory, long features, int maxSize);

    /** Detaches from the rings; {@link #nextAvailIdx()} stays readable for the transport. */
    void stop();

    boolean started();

    int size();

    /**
     * Where the device resumes, as the transport reports it (vhost-user GET_VRING_BASE): the split
     * ring's 16-bit avail index; the packed ring's avail index with its wrap counter in bit 15 and
     * the used index with its wrap counter in bits 16..31.
     */
    int nextAvailIdx();

    /** Chains popped and not yet pushed back. */
    int inFlight();

    boolean broken();

    QueueViolation violation();

    /** "queue q0: CHAIN_LOOP (virtio 1.2 2.7.5.2): ...", or null while not broken. */
    String brokenReason();

    /** True when a chain is waiting (reads the driver's ring with acquire). */
    boolean hasAvailable();

    /** Chains known to be waiting as of the last ring read, without a new read (a meter; 0 when unknown). */
    int availableSeen();

    /** Pops the next available chain into {@code chain}; false when none or when the driver broke a rule. */
    boolean pop(DescriptorChain chain);

    /** Gives chain {@code head} (as {@link DescriptorChain#head()} named it) back with {@code len} bytes written. */
    void push(int head, long len);

    /** Whether the driver wants a used-buffer notification now; call once per batch of pushes. */
    boolean needsNotify();

    /** Asks the driver not to kick (the device processes or polls anyway). */
    void disableNotification();

    boolean notificationsDisabled();

    /**
     * Asks the driver to kick for the next buffer, then re-reads the ring; true when buffers
     * arrived meanwhile, which the caller must process.
     */
    boolean enableNotification();
}
