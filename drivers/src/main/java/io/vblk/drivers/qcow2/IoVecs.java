package io.vblk.drivers.qcow2;

import io.vblk.drivers.IoVec;
import io.vblk.drivers.NativeMemory;

/**
 * Any thread; the caller owns the buffers.
 *
 * <p>Byte ranges of a guest request's {@link IoVec}: appended to a child request's iovec (no copy),
 * zeroed, or gathered into a bounce buffer when they cannot be described in one request.
 */
final class IoVecs {
    private IoVecs() {
    }

    /** Appends bytes {@code [from, from+len)} of {@code src} to {@code dst}; false when they do not fit. */
    static boolean slice(IoVec src, long from, long len, IoVec dst) {
        long p = 0;
        for (int i = 0, n = src.count(); i < n && len > 0; i++) {
            long l = src.length(i);
            if (p + l > from) {
                long skip = Math.max(0, from - p);
                long take = Math.min(l - skip, len);
                if (!dst.add(src.base(i) + skip, take)) {
                    return false;
                }
                len -= take;
                from += take;
            }
            p += l;
        }
        return len == 0;
    }

    /** Appends {@code len} bytes of zeroes (the shared zero block, repeated) to {@code dst}. */
    static boolean zeroes(long len, IoVec dst) {
        long z = NativeMemory.zeroBlock().address();
        long block = NativeMemory.zeroBlock().byteSize();
        while (len > 0) {
            long take = Math.min(block, len);
            if (!dst.add(z, take)) {
                return false;
            }
            len -= take;
        }
        return true;
    }

    /** Zeroes bytes {@code [from, from+len)} of the buffers {@code iov} describes. */
    static void zero(IoVec iov, long from, long len) {
        long p = 0;
        for (int i = 0, n = iov.count(); i < n && len > 0; i++) {
            long l = iov.length(i);
            if (p + l > from) {
                long skip = Math.max(0, from - p);
                long take = Math.min(l - skip, len);
                NativeMemory.zero(iov.base(i) + skip, take);
                len -= take;
                from += take;
            }
            p += l;
        }
    }

    /** Copies bytes {@code [from, from+len)} of {@code iov} to {@code dst}. */
    static void gather(IoVec iov, long from, long len, long dst) {
        long p = 0;
        for (int i = 0, n = iov.count(); i < n && len > 0; i++) {
            long l = iov.length(i);
            if (p + l > from) {
                long skip = Math.max(0, from - p);
                long take = Math.min(l - skip, len);
                NativeMemory.copy(iov.base(i) + skip, dst, take);
                dst += take;
                len -= take;
                from += take;
            }
            p += l;
        }
    }
}
