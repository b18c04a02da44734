package io.vblk.virtio.queue;

import java.lang.foreign.MemorySegment;

import static io.vblk.virtio.queue.LittleEndian.U16;
import static io.vblk.virtio.queue.LittleEndian.U32;

/**
 * Any thread: constants and accessors on a segment the caller owns.
 *
 * <p>The device area of a split virtqueue, {@code struct virtq_used} (virtio 1.2 section 2.7.8),
 * 4-byte aligned, {@code 6 + 8 * size} bytes (2.7, size table). Written by the device, read by
 * the driver.
 *
 * <pre>
 *  byte  0       2       4                                  4+8*size     6+8*size
 *        +-------+-------+-----------------+-----+----------+------------+
 *        | flags | idx   | ring[0]         | ... | ring[n-1]| avail_event|
 *        | le16  | le16  | id le32, len le32 (8 bytes each)  | le16       |
 *        +-------+-------+-----------------+-----+----------+------------+
 *  flags: NO_NOTIFY = 1 (2.7.10: without EVENT_IDX, "do not kick me")
 *  ring[i].id: head index of the used chain; ring[i].len: bytes written into it
 *  avail_event: only with VIRTIO_F_EVENT_IDX (2.7.10)
 * </pre>
 */
public final class UsedRingLayout {
    public static final int FLAGS = 0;
    public static final int IDX = 2;
    public static final int RING = 4;
    /** {@code sizeof(struct virtq_used_elem)}. */
    public static final int ELEM_BYTES = 8;
    public static final int ELEM_ID = 0;
    public static final int ELEM_LEN = 4;
    /** 2.7: the device area is 4-byte aligned. */
    public static final int ALIGN = 4;
    /** 2.7.10: VIRTQ_USED_F_NO_NOTIFY. */
    public static final int F_NO_NOTIFY = 1;

    private UsedRingLayout() {
    }

    /** 2.7: 6 + 8 * Queue Size. */
    public static long bytes(int queueSize) {
        return 6L + 8L * queueSize;
    }

    public static long elemOffset(int slot) {
        return RING + (long) ELEM_BYTES * slot;
    }

    public static long availEventOffset(int queueSize) {
        return RING + (long) ELEM_BYTES * queueSize;
    }

    public static int flags(MemorySegment used) {
        return Short.toUnsignedInt(used.get(U16, FLAGS));
    }

    public static int idx(MemorySegment used) {
        return Short.toUnsignedInt(used.get(U16, IDX));
    }

    public static int elemId(MemorySegment used, int slot) {
        return used.get(U32, elemOffset(slot) + ELEM_ID);
    }

    public static int elemLen(MemorySegment used, int slot) {
        return used.get(U32, elemOffset(slot) + ELEM_LEN);
    }

    public static int availEvent(MemorySegment used, int queueSize) {
        return Short.toUnsignedInt(used.get(U16, availEventOffset(queueSize)));
    }
}
