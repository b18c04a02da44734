package io.vblk.virtio.queue;

import io.vblk.virtio.memory.DirtyLog;
import io.vblk.virtio.memory.GuestMemory;

import java.lang.foreign.MemorySegment;

import static io.vblk.virtio.queue.LittleEndian.U8;

/**
 * Home thread: the owning IoThread of the queue it is popped from. No locking.
 *
 * <p>One popped descriptor chain, flattened into host buffers: first every device-readable buffer,
 * then every device-writable one (2.7.4.2 guarantees that order; the queue enforces it). A buffer
 * that crosses from one guest memory region into an adjacent one becomes two segments. The object
 * is reused for every pop: {@link VirtQueue#pop} overwrites it and nothing is allocated.
 *
 * <p>Offsets passed to the read and write helpers count bytes of the device-readable part (for
 * {@code read*}) or of the device-writable part (for {@code write*}), whatever the descriptor
 * boundaries are: 2.7.4.1 says "The device MUST NOT make assumptions about the particular
 * arrangement of descriptors".
 */
public final class DescriptorChain {
    /** Host buffers one chain may map to: IOV_MAX on Linux (limits.h), as QEMU's VIRTQUEUE_MAX_SIZE. */
    public static final int MAX_SEGMENTS = 1024;

    private final long[] host = new long[MAX_SEGMENTS];
    private final long[] length = new long[MAX_SEGMENTS];
    private final int[] region = new int[MAX_SEGMENTS];
    private final long[] regionOffset = new long[MAX_SEGMENTS];
    private GuestMemory memory;
    /** The queue's migration dirty log: the device's writes through this chain are marked; or null. */
    private DirtyLog dirty;
    private int head = -1;
    private int count;
    private int readable;
    private long readableBytes;
    private long writableBytes;

    /** The id to push back: the split ring's head descriptor index, the packed ring's buffer id. */
    public int head() {
        return head;
    }

    /** All segments, readable first. */
    public int segments() {
        return count;
    }

    /** Segments {@code [0, readableSegments())} are device-readable, the rest device-writable. */
    public int readableSegments() {
        return readable;
    }

    public int writableSegments() {
        return count - readable;
    }

    public long readableBytes() {
        return readableBytes;
    }

    public long writableBytes() {
        return writableBytes;
    }

    /** Host address of segment {@code i}. */
    public long address(int i) {
        return host[check(i)];
    }

    public long length(int i) {
        return length[check(i)];
    }

    /** The guest memory region segment holding segment {@code i} (bounds-checked access). */
    public MemorySegment memoryOf(int i) {
        return seg(check(i));
    }

    /** Offset of segment {@code i} in {@link #memoryOf(int)}. */
    public long offsetOf(int i) {
        return regionOffset[check(i)];
    }

    // ---- device reads of the readable part (headers) ----

    /** One byte at {@code offset} of the readable part. */
    public int readU8(long offset) {
        if (offset < 0 || offset >= readableBytes) {
            throw new IndexOutOfBoundsException("readable offset " + offset + " of " + readableBytes);
        }
        int i = 0;
        long off = offset;
        while (off >= length[i]) {
            off -= length[i];
            i++;
        }
        return Byte.toUnsignedInt(seg(i).get(U8, regionOffset[i] + off));
    }

    /** Little-endian 32-bit value at {@code offset} of the readable part. */
    public int readLe32(long offset) {
        int v = 0;
        for (int b = 3; b >= 0; b--) {
            v = (v << 8) | readU8(offset + b);
        }
        return v;
    }

    /** Little-endian 64-bit value at {@code offset} of the readable part. */
    public long readLe64(long offset) {
        return (Integer.toUnsignedLong(readLe32(offset))) | ((long) readLe32(offset + 4) << 32);
    }

    // ---- device writes to the writable part (status, data from the device) ----

    /** Writes one byte at {@code offset} of the writable part. */
    public void writeU8(long offset, int value) {
        if (offset < 0 || offset >= writableBytes) {
            throw new IndexOutOfBoundsException("writable offset " + offset + " of " + writableBytes);
        }
        int i = readable;
        long off = offset;
        while (off >= length[i]) {
            off -= length[i];
            i++;
        }
        seg(i).set(U8, regionOffset[i] + off, (byte) value);
        if (dirty != null) {
            dirty.markGpa(memory.region(region[i]).gpa() + regionOffset[i] + off, 1);
        }
    }

    /** Writes {@code len} bytes of {@code src} at {@code offset} of the writable part. */
    public void writeBytes(long offset, byte[] src, int srcOffset, int len) {
        for (int k = 0; k < len; k++) {
            writeU8(offset + k, src[srcOffset + k]);
        }
    }

    @Override
    public String toString() {
        return "DescriptorChain[head=" + head + " readable=" + readable + "/" + readableBytes + "B writable="
                + (count - readable) + "/" + writableBytes + "B]";
    }

    // ---- filled by SplitQueue and PackedQueue ----

    /** The id to push back (a packed ring learns it from the chain's last descriptor, 2.8.6). */
    void setHead(int head) {
        this.head = head;
    }

    void reset(GuestMemory memory, int head, DirtyLog dirty) {
        this.memory = memory;
        this.dirty = dirty;
        this.head = head;
        this.count = 0;
        this.readable = 0;
        this.readableBytes = 0;
        this.writableBytes = 0;
    }

    /** Appends one host buffer; false when {@link #MAX_SEGMENTS} are in use. */
    boolean add(int regionIndex, long offsetInRegion, long hostAddress, long len, boolean writable) {
        if (count == MAX_SEGMENTS) {
            return false;
        }
        host[count] = hostAddress;
        length[count] = len;
        region[count] = regionIndex;
        regionOffset[count] = offsetInRegion;
        count++;
        if (writable) {
            writableBytes += len;
        } else {
            readable++;
            readableBytes += len;
        }
        return true;
    }

    long totalBytes() {
        return readableBytes + writableBytes;
    }

    private MemorySegment seg(int i) {
        return memory.region(region[i]).host();
    }

    private int check(int i) {
        if (i < 0 || i >= count) {
            throw new IndexOutOfBoundsException("segment " + i + " of " + count);
        }
        return i;
    }
}
