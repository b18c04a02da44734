package io.vblk.virtio.queue;

import java.lang.foreign.MemorySegment;

import static io.vblk.virtio.queue.LittleEndian.U16;

/**
 * Any thread: constants and accessors on a segment the caller owns.
 *
 * <p>The driver area of a split virtqueue, {@code struct virtq_avail} (virtio 1.2 section 2.7.6),
 * 2-byte aligned, {@code 6 + 2 * size} bytes (2.7, size table). Written by the driver, read by
 * the device.
 *
 * <pre>
 *  byte  0       2       4                         4+2*size    6+2*size
 *        +-------+-------+----------+-----+--------+-----------+
 *        | flags | idx   | ring[0]  | ... | ring[n-1] used_event|
 *        | le16  | le16  | le16 head index of a chain| le16      |
 *        +-------+-------+----------+-----+--------+-----------+
 *  flags: NO_INTERRUPT = 1 (2.7.7: without EVENT_IDX, "do not notify me")
 *  used_event: only with VIRTIO_F_EVENT_IDX (2.7.7)
 * </pre>
 */
public final class AvailRingLayout {
    public static final int FLAGS = 0;
    public static final int IDX = 2;
    public static final int RING = 4;
    /** 2.7: the driver area is 2-byte aligned. */
    public static final int ALIGN = 2;
    /** 2.7.7: VIRTQ_AVAIL_F_NO_INTERRUPT. */
    public static final int F_NO_INTERRUPT = 1;

    private AvailRingLayout() {
    }

    /** 2.7: 6 + 2 * Queue Size. */
    public static long bytes(int queueSize) {
        return 6L + 2L * queueSize;
    }

    public static long ringOffset(int slot) {
        return RING + 2L * slot;
    }

    public static long usedEventOffset(int queueSize) {
        return RING + 2L * queueSize;
    }

    public static int flags(MemorySegment avail) {
        return Short.toUnsignedInt(avail.get(U16, FLAGS));
    }

    public static int idx(MemorySegment avail) {
        return Short.toUnsignedInt(avail.get(U16, IDX));
    }

    public static int ring(MemorySegment avail, int slot) {
        return Short.toUnsignedInt(avail.get(U16, ringOffset(slot)));
    }

    public static int usedEvent(MemorySegment avail, int queueSize) {
        return Short.toUnsignedInt(avail.get(U16, usedEventOffset(queueSize)));
    }
}
