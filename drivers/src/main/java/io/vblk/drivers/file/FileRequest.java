package io.vblk.drivers.file;

import io.vblk.aio.engine.IoRequest;
import io.vblk.drivers.BlockIo;
import io.vblk.drivers.IoVec;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Home thread: the owning IoThread of its channel. No locking.
 *
 * <p>The file driver's engine request: the {@link IoRequest} each step is submitted as, plus the
 * state of a multi-step operation (bounce, read-modify-write, FUA, zero writes) and a bounce buffer
 * kept for reuse — one object, so an engine completion needs no lookup. Pooled by its
 * {@link FileBlockChannel}; nothing here is allocated per request once the pool and the bounce
 * buffers have grown to the workload.
 */
final class FileRequest extends IoRequest {
    static final int READ = 1;          // read straight into the guest buffers
    static final int READ_BOUNCE = 2;   // read the aligned window into the bounce buffer
    static final int WRITE = 3;         // write (guest buffers, bounce or zero iovec)
    static final int RMW_READ = 4;      // read the aligned window before patching it
    static final int FUA_SYNC = 5;      // fdatasync after a FUA write
    static final int FLUSH = 6;
    static final int DISCARD = 7;
    static final int ZERO_RANGE = 8;    // fallocate for WRITE_ZEROES
    static final int SECURE_DISCARD = 9; // BLKSECDISCARD for SECURE_ERASE on a block device
    static final int ERASE_SYNC = 10;   // fdatasync after the zero writes of SECURE_ERASE on a file

    /** Zero-write chunk: 16 segments of the shared 64 KiB zero block. */
    static final int ZERO_SEGMENTS = 16;

    /** One {@code struct iovec} describing the bounce buffer window. */
    final MemorySegment bounceIov;
    BlockIo io;
    int phase;
    /** Write-class request that must run alone (a misaligned O_DIRECT write). */
    boolean exclusive;
    boolean writeClass;
    /** Result the current step must return to count as complete. */
    long expect;
    /** Current write: source buffers, device offset and length. */
    IoVec src;
    long wOff;
    long wLen;
    /** Aligned window of a bounce or read-modify-write step. */
    long winStart;
    long winLen;
    /** WRITE_ZEROES by writing: bytes done. */
    long zeroDone;
    IoVec zeroIov;
    MemorySegment bounce;
    private Arena bounceArena;
    /** Link in the channel's free list or write wait list. */
    FileRequest nextInChannel;

    FileRequest(Arena channelArena) {
        this.bounceIov = channelArena.allocate(16, 8);
    }

    /** A bounce buffer of at least {@code len} bytes aligned to {@code align}; grows, never shrinks. */
    long bounce(long len, int align) {
        if (bounce == null || bounce.byteSize() < len) {
            if (bounceArena != null) {
                bounceArena.close();
            }
            long size = Math.max(4096, Long.highestOneBit(len - 1) << 1);
            bounceArena = Arena.ofShared();
            bounce = bounceArena.allocate(size, Math.max(align, 4096));
        }
        return bounce.address();
    }

    /** Points {@link #bounceIov} at the first {@code len} bytes of the bounce buffer. */
    long bounceIov(long len) {
        bounceIov.set(ValueLayout.JAVA_LONG, 0, bounce.address());
        bounceIov.set(ValueLayout.JAVA_LONG, 8, len);
        return bounceIov.address();
    }

    void freeBounce() {
        if (bounceArena != null) {
            bounceArena.close();
            bounceArena = null;
            bounce = null;
        }
    }
}
