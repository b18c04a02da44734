package io.vblk.virtio.queue;

import java.lang.foreign.MemorySegment;

import static io.vblk.virtio.queue.LittleEndian.U16;
import static io.vblk.virtio.queue.LittleEndian.U32;
import static io.vblk.virtio.queue.LittleEndian.U64;

/**
 * Any thread: constants and accessors on a segment the caller owns.
 *
 * <p>One split-virtqueue descriptor, {@code struct virtq_desc} (virtio 1.2 section 2.7.5). The
 * descriptor table holds Queue Size of them, 16-byte aligned (2.7, alignment table); an indirect
 * table (2.7.5.3) holds {@code len / 16}.
 *
 * <pre>
 *  byte  0               8           12      14      16
 *        +---------------+-----------+-------+-------+
 *        | addr (le64)   | len (le32)| flags | next  |
 *        | guest-physical|  bytes    | le16  | le16  |
 *        +---------------+-----------+-------+-------+
 *  flags: NEXT = 1 (chain continues at next), WRITE = 2 (device-writable),
 *         INDIRECT = 4 (addr/len name a table of descriptors)
 * </pre>
 */
public final class DescriptorLayout {
    /** 2.7.5: {@code sizeof(struct virtq_desc)}. */
    public static final int BYTES = 16;
    public static final int ADDR = 0;
    public static final int LEN = 8;
    public static final int FLAGS = 12;
    public static final int NEXT = 14;
    /** 2.7: the descriptor table is 16-byte aligned. */
    public static final int TABLE_ALIGN = 16;

    /** 2.7.5: VIRTQ_DESC_F_NEXT, the buffer continues via {@code next}. */
    public static final int F_NEXT = 1;
    /** 2.7.5: VIRTQ_DESC_F_WRITE, the buffer is device write-only. */
    public static final int F_WRITE = 2;
    /** 2.7.5: VIRTQ_DESC_F_INDIRECT, the buffer holds a table of descriptors. */
    public static final int F_INDIRECT = 4;

    private DescriptorLayout() {
    }

    /** Byte offset of descriptor {@code index} from the table start. */
    public static long offset(int index) {
        return (long) index * BYTES;
    }

    /** Size of a table of {@code queueSize} descriptors (2.7: 16 * Queue Size). */
    public static long tableBytes(int queueSize) {
        return (long) queueSize * BYTES;
    }

    public static long addr(MemorySegment table, long base, int index) {
        return table.get(U64, base + offset(index) + ADDR);
    }

    /** The length as an unsigned 32-bit value. */
    public static long len(MemorySegment table, long base, int index) {
        return Integer.toUnsignedLong(table.get(U32, base + offset(index) + LEN));
    }

    public static int flags(MemorySegment table, long base, int index) {
        return Short.toUnsignedInt(table.get(U16, base + offset(index) + FLAGS));
    }

    public static int next(MemorySegment table, long base, int index) {
        return Short.toUnsignedInt(table.get(U16, base + offset(index) + NEXT));
    }

    /**
     * The last eight bytes of a descriptor (len, flags, next) in one little-endian load, for the
     * device's walk: one bounds check instead of three. Decode with {@link #lenOf},
     * {@link #flagsOf} and {@link #nextOf}.
     */
    public static long tail(MemorySegment table, long base, int index) {
        return table.get(U64, base + offset(index) + LEN);
    }

    /** Bytes 8..11 of the descriptor: len, unsigned. */
    public static long lenOf(long tail) {
        return tail & 0xffff_ffffL;
    }

    /** Bytes 12..13: flags. */
    public static int flagsOf(long tail) {
        return (int) (tail >>> 32) & 0xffff;
    }

    /** Bytes 14..15: next. */
    public static int nextOf(long tail) {
        return (int) (tail >>> 48);
    }

    /** Writes one descriptor (used by guest-side code and tests; a device never writes the table, 2.7.5.1). */
    public static void write(MemorySegment table, long base, int index, long addr, int len, int flags, int next) {
        long o = base + offset(index);
        table.set(U64, o + ADDR, addr);
        table.set(U32, o + LEN, len);
        table.set(U16, o + FLAGS, (short) flags);
        table.set(U16, o + NEXT, (short) next);
    }
}
