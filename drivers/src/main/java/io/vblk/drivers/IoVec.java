package io.vblk.drivers;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Home thread: the owning IoThread. No locking.
 *
 * <p>A reusable, off-heap array of {@code struct iovec} that points into guest (or other native)
 * memory. It is handed to {@code preadv}/{@code pwritev} and to AIO's {@code IOCB_CMD_PREADV} as it
 * is, so guest data is never copied.
 *
 * <pre>
 *   struct iovec {            // 16 bytes, LP64
 *     void  *iov_base;        // offset 0
 *     size_t iov_len;         // offset 8
 *   };
 * </pre>
 */
public final class IoVec {
    /** Size of one {@code struct iovec} on LP64 Linux. */
    public static final int IOVEC_BYTES = 16;

    private final MemorySegment entries;
    private final int capacity;
    private int count;
    private long totalLength;

    /** Allocates room for {@code capacity} entries in {@code arena}; set-up time only. */
    public IoVec(Arena arena, int capacity) {
        if (capacity <= 0 || capacity > 1024) {
            // 1024 is IOV_MAX on Linux (limits.h / UIO_MAXIOV).
            throw new IllegalArgumentException("iovec capacity must be 1..1024, got " + capacity);
        }
        this.capacity = capacity;
        this.entries = arena.allocate((long) capacity * IOVEC_BYTES, 8);
    }

    /** Forgets every entry; the storage is kept. */
    public void clear() {
        count = 0;
        totalLength = 0;
    }

    /** Appends one buffer; returns false when full. */
    public boolean add(long address, long length) {
        if (count == capacity) {
            return false;
        }
        long off = (long) count * IOVEC_BYTES;
        entries.set(ValueLayout.JAVA_LONG, off, address);
        entries.set(ValueLayout.JAVA_LONG, off + 8, length);
        count++;
        totalLength += length;
        return true;
    }

    /** Appends every entry of {@code other}; returns false (adding nothing) when they do not fit. */
    public boolean addAll(IoVec other) {
        if (count + other.count > capacity) {
            return false;
        }
        MemorySegment.copy(other.entries, 0, entries, (long) count * IOVEC_BYTES,
                (long) other.count * IOVEC_BYTES);
        count += other.count;
        totalLength += other.totalLength;
        return true;
    }

    public int count() {
        return count;
    }

    public int capacity() {
        return capacity;
    }

    /** Sum of all entry lengths in bytes. */
    public long totalLength() {
        return totalLength;
    }

    public long base(int i) {
        return entries.get(ValueLayout.JAVA_LONG, checkIndex(i) * (long) IOVEC_BYTES);
    }

    public long length(int i) {
        return entries.get(ValueLayout.JAVA_LONG, checkIndex(i) * (long) IOVEC_BYTES + 8);
    }

    /** Native address of entry 0, for system calls. */
    public long address() {
        return entries.address();
    }

    /** The raw entry storage (capacity entries). */
    public MemorySegment segment() {
        return entries;
    }

    private int checkIndex(int i) {
        if (i < 0 || i >= count) {
            throw new IndexOutOfBoundsException("iovec index " + i + " of " + count);
        }
        return i;
    }
}
