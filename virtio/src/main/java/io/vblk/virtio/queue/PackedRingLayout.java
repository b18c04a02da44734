package io.vblk.virtio.queue;

import java.lang.foreign.MemorySegment;

import static io.vblk.virtio.queue.LittleEndian.U16;
import static io.vblk.virtio.queue.LittleEndian.U32;
import static io.vblk.virtio.queue.LittleEndian.U64;

/**
 * Any thread: constants and accessors on a segment the caller owns.
 *
 * <p>The packed virtqueue in guest memory (virtio 1.2 section 2.8): a descriptor ring of Queue Size
 * {@code struct pvirtq_desc} (16-byte aligned), and two 4-byte event suppression structures
 * {@code struct pvirtq_event_suppress} (4-byte aligned): the driver's (Driver Area, read by the
 * device: used-buffer notifications) and the device's (Device Area, written by the device:
 * available-buffer notifications).
 *
 * <pre>
 *  descriptor  byte 0               8           12      14      16
 *                   +---------------+-----------+-------+-------+
 *                   | addr (le64)   | len (le32)| id    | flags |
 *                   +---------------+-----------+-------+-------+
 *  flags: NEXT = 1, WRITE = 2, INDIRECT = 4, AVAIL = 1 &lt;&lt; 7, USED = 1 &lt;&lt; 15
 *  available: AVAIL == driver wrap counter and USED != it; used: AVAIL == USED == device wrap counter
 *
 *  event suppression  byte 0                          2                    4
 *                          +--------------------------+--------------------+
 *                          | off_wrap: offset (15 bits)| flags (2 bits):   |
 *                          |   + wrap counter (bit 15)| 0 ENABLE 1 DISABLE|
 *                          |                           | 2 DESC (EVENT_IDX)|
 *                          +--------------------------+--------------------+
 * </pre>
 */
public final class PackedRingLayout {
    /** 2.8: {@code sizeof(struct pvirtq_desc)}. */
    public static final int DESC_BYTES = 16;
    public static final int ADDR = 0;
    public static final int LEN = 8;
    public static final int ID = 12;
    public static final int FLAGS = 14;
    /** 2.8.10.1: descriptor ring 16-byte aligned; both event suppression structures 4-byte aligned, 4 bytes. */
    public static final int RING_ALIGN = 16;
    public static final int EVENT_ALIGN = 4;
    public static final int EVENT_BYTES = 4;
    public static final int EVENT_OFF_WRAP = 0;
    public static final int EVENT_FLAGS = 2;

    /** 2.8.6 VIRTQ_DESC_F_NEXT. */
    public static final int F_NEXT = 1;
    /** 2.8.3 VIRTQ_DESC_F_WRITE. */
    public static final int F_WRITE = 2;
    /** 2.8.7 VIRTQ_DESC_F_INDIRECT. */
    public static final int F_INDIRECT = 4;
    /** 2.8.1 VIRTQ_DESC_F_AVAIL. */
    public static final int F_AVAIL = 1 << 7;
    /** 2.8.1 VIRTQ_DESC_F_USED. */
    public static final int F_USED = 1 << 15;

    /** 2.8.10 RING_EVENT_FLAGS_ENABLE / DISABLE / DESC (DESC only with VIRTIO_F_RING_EVENT_IDX). */
    public static final int EVENT_ENABLE = 0;
    public static final int EVENT_DISABLE = 1;
    public static final int EVENT_DESC = 2;
    public static final int EVENT_FLAGS_MASK = 3;

    /** vhost-user.rst "Vring descriptor indices for packed virtqueues": bit 15 is the wrap counter. */
    public static final int WRAP_BIT = 1 << 15;
    public static final int INDEX_MASK = WRAP_BIT - 1;

    private PackedRingLayout() {
    }

    public static long ringBytes(int queueSize) {
        return (long) queueSize * DESC_BYTES;
    }

    public static long offset(int index) {
        return (long) index * DESC_BYTES;
    }

    public static long addr(MemorySegment ring, long base, int index) {
        return ring.get(U64, base + offset(index) + ADDR);
    }

    /** Bytes 8..15 (len, id, flags) in one load: decode with {@link #lenOf}, {@link #idOf}, {@link #flagsOf}. */
    public static long tail(MemorySegment ring, long base, int index) {
        return ring.get(U64, base + offset(index) + LEN);
    }

    public static long lenOf(long tail) {
        return tail & 0xffff_ffffL;
    }

    public static int idOf(long tail) {
        return (int) (tail >>> 32) & 0xffff;
    }

    public static int flagsOf(long tail) {
        return (int) (tail >>> 48);
    }

    public static int flags(MemorySegment ring, int index) {
        return Short.toUnsignedInt(ring.get(U16, offset(index) + FLAGS));
    }

    /** 2.8.1: available for a reader whose wrap counter is {@code wrap}: AVAIL matches it, USED does not. */
    public static boolean isAvail(int flags, boolean wrap) {
        boolean a = (flags & F_AVAIL) != 0;
        boolean u = (flags & F_USED) != 0;
        return a == wrap && u != wrap;
    }

    /** 2.8.1: used, for a reader whose wrap counter is {@code wrap}: AVAIL and USED both match it. */
    public static boolean isUsed(int flags, boolean wrap) {
        boolean a = (flags & F_AVAIL) != 0;
        boolean u = (flags & F_USED) != 0;
        return a == wrap && u == wrap;
    }

    /** The AVAIL and USED bits of a used descriptor written with wrap counter {@code wrap}. */
    public static int usedFlags(boolean wrap) {
        return wrap ? F_AVAIL | F_USED : 0;
    }

    /** Writes the id and length of a used descriptor (flags are stored separately, last). */
    public static void writeUsed(MemorySegment ring, int index, int id, long len) {
        ring.set(U32, offset(index) + LEN, (int) len);
        ring.set(U16, offset(index) + ID, (short) id);
    }

    /** One descriptor as a driver writes it (guest-side code and tests; flags included). */
    public static void write(MemorySegment ring, long base, int index, long addr, int len, int id, int flags) {
        long o = base + offset(index);
        ring.set(U64, o + ADDR, addr);
        ring.set(U32, o + LEN, len);
        ring.set(U16, o + ID, (short) id);
        ring.set(U16, o + FLAGS, (short) flags);
    }

    /**
     * 2.8.10 with EVENT_IDX: whether the event ({@code offWrap}: offset | wrap << 15) falls among
     * the ring positions {@code [old, now)} just passed. Positions are free-running counts of
     * descriptors; {@code nowIdx} / {@code nowWrap} is the ring slot and wrap counter at
     * {@code now}. The event names a slot and a wrap; it is placed at the free-running position
     * nearest {@code now} (within one ring length either way, since neither side runs more than a
     * ring ahead of the other), then compared — free of 16-bit wrap-around, whatever
     * {@code now - old} is.
     */
    public static boolean needEvent(int offWrap, long old, long now, int nowIdx, boolean nowWrap, int size) {
        long cycle = 2L * size;
        long evPos = (offWrap & INDEX_MASK) + ((offWrap & WRAP_BIT) != 0 ? 0 : size);
        long curPos = nowIdx + (nowWrap ? 0 : size);
        long delta = Math.floorMod(evPos - curPos, cycle);
        if (delta > size) {
            delta -= cycle;
        }
        long event = now + delta;
        return event >= old && event < now;
    }
}
