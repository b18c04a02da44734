package io.vblk.virtio.queue;

/**
 * Any thread: constants.
 *
 * <p>The ways a driver can break the split-virtqueue rules. Each one puts the device into
 * DEVICE_NEEDS_RESET (virtio 1.2 section 2.1.2: "The device SHOULD set DEVICE_NEEDS_RESET when it
 * enters an error state that a reset is needed"); the name is what logs, metrics and tests see.
 */
public enum QueueViolation {
    /** 2.6 / 2.7: Queue Size is a power of 2 (and vblk takes at most {@link SplitQueue#MAX_SIZE}). */
    BAD_QUEUE_SIZE("2.7", "queue size is not a power of two within the device maximum"),
    /** 2.7 alignment table: descriptor table 16, driver area 2, device area 4 bytes. */
    RING_MISALIGNED("2.7", "ring address is not aligned as the spec requires"),
    /** 2.7: the rings must lie in guest memory. */
    RING_OUTSIDE_MEMORY("2.7", "ring lies outside guest memory"),
    /** 2.7.6.1: the driver never exposes more than Queue Size buffers (avail idx only moves forward). */
    AVAIL_INDEX_JUMP("2.7.6.1", "available index moved more than the queue size ahead"),
    /** 2.7.6: a ring entry is the head index of a chain in the table. */
    HEAD_OUT_OF_RANGE("2.7.6", "available ring names a head descriptor outside the table"),
    /** 2.7.5: {@code next} indexes the same table. */
    NEXT_OUT_OF_RANGE("2.7.5", "descriptor next index outside its table"),
    /** 2.7.5.2: loops are forbidden; 2.7.5.3.1: no chain longer than Queue Size. */
    CHAIN_LOOP("2.7.5.2", "descriptor chain loops or is longer than the queue size"),
    /** 2.7.5.2: a chain carries at most 2^32 bytes in total. */
    CHAIN_TOO_LARGE("2.7.5.2", "descriptor chain carries more than 2^32 bytes"),
    /** vblk limit: one chain maps to at most {@link DescriptorChain#MAX_SEGMENTS} host buffers (IOV_MAX). */
    TOO_MANY_SEGMENTS("2.7.5", "descriptor chain maps to more host buffers than the device takes"),
    /** 2.7.5: addr/len name guest-physical memory. */
    ADDRESS_OUT_OF_RANGE("2.7.5", "buffer address outside guest memory"),
    /** 2.7.4.2: device-writable descriptors come after every device-readable one. */
    READABLE_AFTER_WRITABLE("2.7.4.2", "device-readable descriptor after a device-writable one"),
    /** 2.7.5.3.1: INDIRECT only when VIRTIO_F_INDIRECT_DESC was negotiated. */
    INDIRECT_NOT_NEGOTIATED("2.7.5.3.1", "indirect descriptor without VIRTIO_F_INDIRECT_DESC"),
    /** 2.7.5.3.1: no INDIRECT flag inside an indirect table. */
    NESTED_INDIRECT("2.7.5.3.1", "indirect descriptor inside an indirect table"),
    /** 2.7.5.3.1: INDIRECT and NEXT are never both set. */
    INDIRECT_WITH_NEXT("2.7.5.3.1", "descriptor has both INDIRECT and NEXT"),
    /** 2.7.5.3: the table holds len / 16 descriptors, so len is a non-zero multiple of 16. */
    BAD_INDIRECT_LENGTH("2.7.5.3", "indirect table length is zero, not a multiple of 16 or too large"),
    /** vhost-user.rst "Inflight I/O tracking": the record names heads outside the queue or more than it holds. */
    INFLIGHT_RECORD_INVALID("2.7", "inflight record does not fit the rings"),
    /** 2.8.6: each in-flight buffer has its own id (the device skips forward by that buffer's descriptor count). */
    BUFFER_ID_IN_USE("2.8.6", "buffer id made available again while still in flight"),
    /** vhost-user.rst SET_VRING_BASE: the resume index lies inside the ring. */
    BAD_RESUME_INDEX("2.8.1", "resume index outside the ring");

    private final String section;
    private final String description;

    QueueViolation(String section, String description) {
        this.section = section;
        this.description = description;
    }

    /**
     * The section of the packed-ring chapter (2.8) holding the same rule, for a violation seen
     * on a packed ring; the split-ring section where the packed chapter has no counterpart.
     */
    public String packedSection() {
        return switch (this) {
            case BAD_QUEUE_SIZE -> "2.8";
            case RING_MISALIGNED, RING_OUTSIDE_MEMORY -> "2.8.10.1";
            case HEAD_OUT_OF_RANGE, NEXT_OUT_OF_RANGE, CHAIN_LOOP, BUFFER_ID_IN_USE -> "2.8.6";
            case CHAIN_TOO_LARGE, TOO_MANY_SEGMENTS, ADDRESS_OUT_OF_RANGE -> "2.8.4";
            case READABLE_AFTER_WRITABLE -> "2.8";
            case INDIRECT_NOT_NEGOTIATED, NESTED_INDIRECT, INDIRECT_WITH_NEXT, BAD_INDIRECT_LENGTH -> "2.8.7";
            default -> section;
        };
    }

    /** The virtio 1.2 section whose rule was broken. */
    public String section() {
        return section;
    }

    public String description() {
        return description;
    }
}
