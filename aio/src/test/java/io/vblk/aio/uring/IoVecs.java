package io.vblk.aio.uring;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Any thread: stateless helpers of the io_uring tests.
 *
 * <p>{@code struct iovec} arrays cut over a buffer, and the byte pattern the tests write and check.
 */
final class IoVecs {
    private IoVecs() {
    }

    /** An iovec array over the bytes from {@code addr}, cut into segments of the given sizes. */
    static MemorySegment cut(Arena arena, long addr, int... sizes) {
        MemorySegment iov = arena.allocate(16L * sizes.length, 8);
        long at = addr;
        for (int i = 0; i < sizes.length; i++) {
            iov.set(ValueLayout.JAVA_LONG, 16L * i, at);
            iov.set(ValueLayout.JAVA_LONG, 16L * i + 8, sizes[i]);
            at += sizes[i];
        }
        return iov;
    }

    /** Fills {@code data} with a pattern that differs per seed and per 512-byte sector. */
    static void fillPattern(MemorySegment data, int seed) {
        for (long i = 0; i < data.byteSize(); i++) {
            data.set(ValueLayout.JAVA_BYTE, i, (byte) (seed * 31 + i * 7 + (i >> 9)));
        }
    }
}
