package io.vblk.drivers.nullblk;

import io.vblk.drivers.BlockIo;
import io.vblk.drivers.NativeMemory;

/**
 * Any thread: stateless; called on the home thread of the channel that owns the request.
 *
 * <p>What the null device does to a request: reads fill zeroes, or nothing.
 */
final class NullOps {
    private NullOps() {
    }

    /** Performs {@code io} and returns its result (bytes for READ/WRITE, else 0). */
    static long perform(BlockIo io, boolean readZeroes) {
        return switch (io.op) {
            case BlockIo.READ -> {
                if (readZeroes) {
                    NativeMemory.zero(io.iov);
                }
                yield io.iov.totalLength();
            }
            case BlockIo.WRITE -> io.iov.totalLength();
            default -> 0;
        };
    }
}
