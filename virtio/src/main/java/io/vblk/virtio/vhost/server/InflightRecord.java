package io.vblk.virtio.vhost.server;

import io.vblk.virtio.queue.InflightLog;
import io.vblk.virtio.vhost.wire.InflightLayout;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Home thread: the owning IoThread of the queue it records (the session's control context builds
 * it; the queue's thread alone uses it once started). No locking.
 *
 * <p>What both layouts of a queue's INFLIGHT_SHMFD region share ({@link InflightLayout}): the
 * region and its header fields, the global counter that orders fetches, the resubmission list
 * sorted by counter, and the test seam between stores. {@link SplitInflightRecord} and
 * {@link PackedInflightRecord} keep the protocol of their layout. The reader of the region is the
 * next back-end, after this one died at any instruction, so only the program order of the stores
 * matters: each layout separates its groups of stores with release fences.
 */
abstract class InflightRecord implements InflightLog {
    /** The region's version once a back-end tracks in it (libvhost-user's INFLIGHT_VERSION). */
    static final int VERSION_TRACKING = 1;

    /** Test seam: called between the stores of the protocol (see {@link Step}); null in service. */
    interface StepHook {
        void at(Step step);
    }

    /** The points between stores where a back-end can die (split, then packed). */
    enum Step {
        POP_COUNTED, POP_MARKED, PUSH_BATCH_HEAD, PUSH_CLEARED, PUSH_USED_IDX,
        PACKED_POP_COPIED, PACKED_POP_MARKED, PACKED_POP_FREE_HEAD, PACKED_PUSH_FREED, PACKED_PUSH_USED_IDX,
        PACKED_PUSH_CLEARED, PACKED_PUSH_COMMITTED
    }

    final MemorySegment region;
    final int queueSize;
    /** Entries (split: heads) to execute again, oldest first, and their counters. */
    private final int[] resubmit;
    private final long[] resubmitCounter;
    private int resubmitCount;
    private int resubmitNext;
    /** The next fetch's counter (vhost-user.rst: "the value of global counter"). */
    long counter;
    StepHook hook;

    InflightRecord(MemorySegment region, int queueSize) {
        this.region = region;
        this.queueSize = queueSize;
        this.resubmit = new int[queueSize];
        this.resubmitCounter = new long[queueSize];
    }

    final int u16(long off) {
        return Short.toUnsignedInt(region.get(ValueLayout.JAVA_SHORT_UNALIGNED, off));
    }

    final void setU16(long off, int v) {
        region.set(ValueLayout.JAVA_SHORT_UNALIGNED, off, (short) v);
    }

    final int u8(long off) {
        return Byte.toUnsignedInt(region.get(ValueLayout.JAVA_BYTE, off));
    }

    final void setU8(long off, int v) {
        region.set(ValueLayout.JAVA_BYTE, off, (byte) v);
    }

    final long u64(long off) {
        return region.get(ValueLayout.JAVA_LONG_UNALIGNED, off);
    }

    final void setU64(long off, long v) {
        region.set(ValueLayout.JAVA_LONG_UNALIGNED, off, v);
    }

    /** Starts a new resubmission list (recovery). */
    final void clearResubmit() {
        resubmitCount = 0;
        resubmitNext = 0;
    }

    /**
     * Adds {@code entry} fetched with counter {@code c}, keeping the list sorted by counter
     * (insertion sort: control path, at most queueSize entries).
     */
    final void addResubmit(int entry, long c) {
        int i = resubmitCount++;
        while (i > 0 && Long.compareUnsigned(resubmitCounter[i - 1], c) > 0) {
            resubmit[i] = resubmit[i - 1];
            resubmitCounter[i] = resubmitCounter[i - 1];
            i--;
        }
        resubmit[i] = entry;
        resubmitCounter[i] = c;
    }

    /** The counter after the highest one listed (0 when none), where the next fetch counts from. */
    final long nextCounter() {
        return resubmitCount == 0 ? 0 : resubmitCounter[resubmitCount - 1] + 1;
    }

    /** Entries the last recovery found in flight. */
    final int recovered() {
        return resubmitCount;
    }

    /** The {@code i}-th entry of the resubmission list (oldest first). */
    final int resubmitEntry(int i) {
        return resubmit[i];
    }

    @Override
    public final int nextResubmit() {
        return resubmitNext < resubmitCount ? resubmit[resubmitNext++] : -1;
    }

    final void step(Step s) {
        StepHook h = hook;
        if (h != null) {
            h.at(s);
        }
    }
}
