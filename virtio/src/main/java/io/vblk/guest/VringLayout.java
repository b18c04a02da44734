package io.vblk.guest;

/**
 * Any thread: constants and pure functions. All fields are little-endian (2.7, "le16/le32/le64").
 *
 * <p>The split virtqueue in guest memory as the <em>driver</em> lays it out (virtio 1.x section 2.7).
 * The guest keeps its own copy of this layout on purpose: it is written from the spec
 * independently of the device's queue code, so a misreading of the spec on one side shows up as
 * a failing exchange instead of hiding in a shared constant.
 *
 * <pre>
 * Descriptor table: size entries, 16-byte aligned (2.7 "Descriptor Table ... 16")
 *   struct virtq_desc {              // 16 bytes
 *     le64 addr;                     // 0   guest-physical buffer address
 *     le32 len;                      // 8   buffer length
 *     le16 flags;                    // 12  NEXT=1 WRITE=2 INDIRECT=4
 *     le16 next;                     // 14  next descriptor when NEXT is set
 *   };
 *
 * Driver area (available ring), 2-byte aligned
 *   struct virtq_avail {             // 6 + 2*size bytes
 *     le16 flags;                    // 0   NO_INTERRUPT=1
 *     le16 idx;                      // 2   where the driver puts the next entry (free-running)
 *     le16 ring[size];               // 4   descriptor chain heads
 *     le16 used_event;               // 4+2*size  only with VIRTIO_F_EVENT_IDX
 *   };
 *
 * Device area (used ring), 4-byte aligned
 *   struct virtq_used {              // 6 + 8*size bytes
 *     le16 flags;                    // 0   NO_NOTIFY=1
 *     le16 idx;                      // 2   where the device puts the next entry (free-running)
 *     struct { le32 id; le32 len; } ring[size];   // 4 + 8*i
 *     le16 avail_event;              // 4+8*size  only with VIRTIO_F_EVENT_IDX
 *   };
 * </pre>
 */
public final class VringLayout {
    private VringLayout() {
    }

    /** 2.7: "Queue Size ... The maximum Queue Size value is 32768"; vblk's device offers at most 1024. */
    public static final int MAX_QUEUE_SIZE = 32768;

    // -- descriptor (2.7.5) --
    public static final int DESC_BYTES = 16;
    public static final int DESC_ADDR = 0;
    public static final int DESC_LEN = 8;
    public static final int DESC_FLAGS = 12;
    public static final int DESC_NEXT = 14;
    /** 2.7.5: "This marks a buffer as continuing via the next field." */
    public static final short VIRTQ_DESC_F_NEXT = 1;
    /** 2.7.5: "This marks a buffer as device write-only (otherwise device read-only)." */
    public static final short VIRTQ_DESC_F_WRITE = 2;
    /** 2.7.5: "This means the buffer contains a list of buffer descriptors." */
    public static final short VIRTQ_DESC_F_INDIRECT = 4;

    // -- available ring (2.7.6) --
    public static final int AVAIL_FLAGS = 0;
    public static final int AVAIL_IDX = 2;
    public static final int AVAIL_RING = 4;
    /** 2.7.6: the driver asks the device not to interrupt (a hint; ignored with EVENT_IDX). */
    public static final short VIRTQ_AVAIL_F_NO_INTERRUPT = 1;

    // -- used ring (2.7.8) --
    public static final int USED_FLAGS = 0;
    public static final int USED_IDX = 2;
    public static final int USED_RING = 4;
    public static final int USED_ELEM_BYTES = 8;
    public static final int USED_ELEM_ID = 0;
    public static final int USED_ELEM_LEN = 4;
    /** 2.7.8: the device asks the driver not to kick (a hint; ignored with EVENT_IDX). */
    public static final short VIRTQ_USED_F_NO_NOTIFY = 1;

    // -- alignment (2.7, table "Virtqueue Part / Alignment") --
    public static final int DESC_ALIGN = 16;
    public static final int AVAIL_ALIGN = 2;
    public static final int USED_ALIGN = 4;

    /** True for a size the spec allows for split queues: a power of two in 1..32768 (2.7). */
    public static boolean validSize(int size) {
        return size > 0 && size <= MAX_QUEUE_SIZE && Integer.bitCount(size) == 1;
    }

    public static long descTableBytes(int size) {
        return (long) DESC_BYTES * size;
    }

    /** Bytes of the driver area including {@code used_event} (present whether or not it is used). */
    public static long availBytes(int size) {
        return AVAIL_RING + 2L * size + 2;
    }

    /** Bytes of the device area including {@code avail_event}. */
    public static long usedBytes(int size) {
        return USED_RING + (long) USED_ELEM_BYTES * size + 2;
    }

    public static long descOffset(int index) {
        return (long) index * DESC_BYTES;
    }

    public static long availRingOffset(int size, int idx) {
        return AVAIL_RING + 2L * (idx & (size - 1));
    }

    /** Offset of {@code used_event} inside the driver area. */
    public static long usedEventOffset(int size) {
        return AVAIL_RING + 2L * size;
    }

    public static long usedElemOffset(int size, int idx) {
        return USED_RING + (long) USED_ELEM_BYTES * (idx & (size - 1));
    }

    /** Offset of {@code avail_event} inside the device area. */
    public static long availEventOffset(int size) {
        return USED_RING + (long) USED_ELEM_BYTES * size;
    }

    /**
     * 2.7.10 / 2.7.13: with VIRTIO_F_EVENT_IDX, a notification is needed when the index moved
     * from {@code oldIdx} to {@code newIdx} past {@code eventIdx}, all modulo 2^16. The same rule
     * serves both directions (avail_event for kicks, used_event for interrupts).
     */
    public static boolean needEvent(int eventIdx, int newIdx, int oldIdx) {
        return ((newIdx - eventIdx - 1) & 0xffff) < ((newIdx - oldIdx) & 0xffff);
    }

    public static long alignUp(long value, long align) {
        return (value + align - 1) & -align;
    }
}
