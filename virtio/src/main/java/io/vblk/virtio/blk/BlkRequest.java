package io.vblk.virtio.blk;

import io.vblk.drivers.BlockIo;
import io.vblk.drivers.IoVec;
import io.vblk.virtio.memory.DirtyLog;

import java.lang.foreign.MemorySegment;

/**
 * Home thread: the owning IoThread of its queue. No locking.
 *
 * <p>One preallocated request slot of a queue: the parsed request and the {@link BlockIo} the driver
 * runs. A queue has as many slots as its size and reuses them; nothing is allocated per request.
 */
final class BlkRequest {
    final int slot;
    final BlockIo io;

    /** Head descriptor index, pushed back to the used ring. */
    int head;
    /** 5.2.6 type, sector (512-byte units) and the data length of the request. */
    int type;
    long sector;
    long dataBytes;
    /** Where the status byte goes: a region's host segment and the offset in it. */
    MemorySegment statusMem;
    long statusOff;
    /** Status decided at parse time (requests that never reach the driver). */
    int status;
    /** Bytes written into the chain for the used element (2.7.8.2), decided at parse for GET_ID. */
    long usedLen;
    /** Bytes the driver must move for a READ/WRITE (the merged total for a merge leader), else -1. */
    long expected;
    /** The context clock when the pass that popped this request began popping (latency meter). */
    long popNanos;
    /** Requests merged into this one (a singly linked list owned by the leader). */
    BlkRequest mergeNext;
    BlkRequest mergeTail;
    /** Held after an I/O error (werror / rerror = stop): the next held request. */
    BlkRequest heldNext;
    /**
     * The segments after the first of a multi-segment DISCARD / WRITE_ZEROES: pairs of (sector,
     * sectors | driver flags << 32); {@code segCount} of them, {@code segNext} is the next to run.
     * Allocated on the slot's first such request, then reused.
     */
    long[] segTable;
    int segCount;
    int segNext;

    BlkRequest(int slot, BlockIo io) {
        this.slot = slot;
        this.io = io;
    }

    /** The segment table, at least {@code longs} long. */
    long[] segments(int longs) {
        if (segTable == null || segTable.length < longs) {
            segTable = new long[longs];
        }
        return segTable;
    }

    /**
     * Marks in the migration dirty log the guest pages this request wrote: a read's data (the
     * driver wrote it into the iovecs, which point into guest memory) and the status byte. Data
     * written through the chain at parse time (GET_ID) was marked by the chain.
     */
    void logWrites(DirtyLog log) {
        if (type == BlkRequestType.IN) {
            IoVec v = io.iov;
            for (int i = 0; i < v.count(); i++) {
                log.markHost(v.base(i), v.length(i));
            }
        }
        log.markHost(statusMem.address() + statusOff, 1);
    }

    /** Batch sort key: op (bit 62), sector (bits 10..61; capacity < 2^52 sectors), slot (bits 0..9). */
    long sortKey() {
        return ((long) io.op << 62) | (sector << 10) | slot;
    }

    /** True when {@code b} continues this request on disk and both fit one merged request. */
    boolean mergeableWith(BlkRequest b, int maxMergeBytes) {
        BlockIo x = io;
        BlockIo y = b.io;
        return x.op == y.op && x.flags == y.flags
                && x.offset + x.iov.totalLength() == y.offset
                && x.iov.count() + y.iov.count() <= x.iov.capacity()
                && x.iov.totalLength() + y.iov.totalLength() <= maxMergeBytes;
    }

    @Override
    public String toString() {
        return "BlkRequest[slot=" + slot + " head=" + head + " " + BlkRequestType.name(type) + " sector=" + sector
                + " bytes=" + dataBytes + "]";
    }
}
