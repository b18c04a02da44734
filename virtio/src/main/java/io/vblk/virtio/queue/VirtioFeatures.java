package io.vblk.virtio.queue;

/**
 * Any thread: constants and pure functions.
 *
 * <p>Device-independent feature bits (virtio 1.2 chapter 6, "Reserved Feature Bits") and helpers for
 * the 64-bit feature words. Device-specific bits live with their device (for the block device:
 * {@code io.vblk.virtio.blk.BlkFeatures}).
 */
public final class VirtioFeatures {
    /** 6.3 (legacy): notify the driver when the device runs out of available buffers. */
    public static final int NOTIFY_ON_EMPTY = 24;
    /** 6.3 (legacy): the device accepts arbitrary descriptor layouts (always true for 1.x devices). */
    public static final int ANY_LAYOUT = 27;
    /** 6: descriptors with VIRTQ_DESC_F_INDIRECT (2.7.5.3). */
    public static final int RING_INDIRECT_DESC = 28;
    /** 6: the used_event and avail_event fields (2.7.7, 2.7.10). */
    public static final int RING_EVENT_IDX = 29;
    /** 6: compliance with virtio 1.x (no legacy interface). */
    public static final int VERSION_1 = 32;
    /** 6: device access to memory is limited or translated (IOMMU). Not offered by vblk. */
    public static final int ACCESS_PLATFORM = 33;
    /** 6: packed virtqueue layout (2.8), {@link PackedQueue}. */
    public static final int RING_PACKED = 34;
    /** 6: buffers are used in the order they were made available (2.7.9). Not offered by vblk. */
    public static final int IN_ORDER = 35;

    private VirtioFeatures() {
    }

    /** The mask of one feature bit. */
    public static long bit(int feature) {
        if (feature < 0 || feature > 63) {
            throw new IllegalArgumentException("feature bit must be 0..63, got " + feature);
        }
        return 1L << feature;
    }

    public static boolean has(long features, int feature) {
        return (features & bit(feature)) != 0;
    }

    /** Lists the set bits of {@code features} as "28,29,32" (for messages). */
    public static String describe(long features) {
        StringBuilder sb = new StringBuilder();
        for (int b = 0; b < 64; b++) {
            if ((features & (1L << b)) != 0) {
                if (!sb.isEmpty()) {
                    sb.append(',');
                }
                sb.append(b);
            }
        }
        return sb.isEmpty() ? "none" : sb.toString();
    }
}
