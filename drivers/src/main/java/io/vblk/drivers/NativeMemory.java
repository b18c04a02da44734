package io.vblk.drivers;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * Any thread; the caller guarantees the addresses are mapped for the duration of the call.
 *
 * <p>Allocation-free copies and fills between raw native addresses (guest memory, bounce buffers)
 * and {@link IoVec}s, through one segment spanning the whole address space: the static
 * {@link MemorySegment#copy(MemorySegment, long, MemorySegment, long, long)} on it creates no
 * object per call.
 */
@SuppressWarnings("restricted") // the all-memory segment; native access is enabled for vblk
public final class NativeMemory {
    /** Every address; only ever used with addresses the caller owns. */
    public static final MemorySegment ALL = MemorySegment.NULL.reinterpret(Long.MAX_VALUE);
    private static final int ZERO_BYTES = 64 * 1024;
    private static final MemorySegment ZEROES = Arena.global().allocate(ZERO_BYTES, 4096);

    private NativeMemory() {
    }

    /** A read-only-by-convention, page-aligned block of {@value #ZERO_BYTES} zero bytes. */
    public static MemorySegment zeroBlock() {
        return ZEROES;
    }

    public static void zero(long addr, long len) {
        while (len > 0) {
            long n = Math.min(len, ZERO_BYTES);
            MemorySegment.copy(ZEROES, 0, ALL, addr, n);
            addr += n;
            len -= n;
        }
    }

    public static void copy(long src, long dst, long len) {
        MemorySegment.copy(ALL, src, ALL, dst, len);
    }

    /** Zeroes every byte {@code iov} covers. */
    public static void zero(IoVec iov) {
        for (int i = 0, n = iov.count(); i < n; i++) {
            zero(iov.base(i), iov.length(i));
        }
    }

    /** Zeroes bytes {@code [from, end)} of the buffer {@code iov} describes. */
    public static void zeroFrom(IoVec iov, long from) {
        long pos = 0;
        for (int i = 0, n = iov.count(); i < n; i++) {
            long len = iov.length(i);
            long segEnd = pos + len;
            if (segEnd > from) {
                long skip = Math.max(0, from - pos);
                zero(iov.base(i) + skip, len - skip);
            }
            pos = segEnd;
        }
    }

    /** Copies {@code iov}'s bytes, in order, to {@code dst}. */
    public static void gather(IoVec iov, long dst) {
        for (int i = 0, n = iov.count(); i < n; i++) {
            long len = iov.length(i);
            copy(iov.base(i), dst, len);
            dst += len;
        }
    }

    /** Copies bytes from {@code src} into {@code iov}'s buffers, in order, up to {@code limit} bytes. */
    public static void scatter(long src, IoVec iov, long limit) {
        for (int i = 0, n = iov.count(); i < n && limit > 0; i++) {
            long len = Math.min(iov.length(i), limit);
            copy(src, iov.base(i), len);
            src += len;
            limit -= len;
        }
    }
}
