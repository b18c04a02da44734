package io.vblk.virtio.vhost.server;

import io.vblk.virtio.queue.PackedRingLayout;
import io.vblk.virtio.vhost.wire.InflightLayout;

import java.lang.foreign.MemorySegment;
import java.lang.invoke.VarHandle;
import java.util.Arrays;

import static io.vblk.virtio.vhost.wire.InflightLayout.*;

/**
 * Home thread: the owning IoThread of the queue it records (the session's control context builds
 * it; the queue's thread alone uses it once started). No locking.
 *
 * <p>One packed queue's region of the INFLIGHT_SHMFD buffer (QueueRegionPacked in
 * {@link InflightLayout}), kept as vhost-user.rst "Inflight I/O tracking" says for packed
 * virtqueues. The entries form a free list (next links); a popped chain takes as many entries as
 * it has descriptors, starting at free_head, and each keeps a copy of its descriptor (a packed
 * ring's slots are overwritten by used descriptors, so the copy is what a restarted device pops
 * again). The head entry holds inflight, num, last and the fetch counter. {@code old_*} fields
 * are the last consistent state: a restart rolls back to them, or first commits the update in
 * progress when its used descriptor already reached the ring.
 * <pre>
 * pop:   copy descriptors into the entries from free_head, num/last/counter on the head
 *        | fence | inflight[h] = 1 | fence | free_head = after the chain | fence | old_free_head = free_head
 * push:  desc[last].next = free_head, free_head = h | fence | used_idx, used_wrap = the state after
 *        | fence | (the used descriptor's flags: PackedQueue.push) | fence | inflight[h] = 0
 *        | fence | old_free_head, old_used_wrap | fence | old_used_idx
 * </pre>
 * Buffer ids are the queue's (below the queue size); {@link #entryOfId} maps each in-flight id to
 * its head entry and is rebuilt from the region on recovery.
 */
final class PackedInflightRecord extends InflightRecord {
    /** Head entry of each in-flight buffer id, -1 when none. */
    private final int[] entryOfId;
    /** free_head as stored in the region (kept here to avoid a load per pop). */
    private int freeHead;
    /** The entry whose used descriptor {@link #publishingPacked} announced. */
    private int publishing = -1;

    PackedInflightRecord(MemorySegment region, int queueSize) {
        super(region, queueSize);
        this.entryOfId = new int[queueSize];
        Arrays.fill(entryOfId, -1);
    }

    private static long d(int e) {
        return InflightLayout.desc(e, true);
    }

    @Override
    public boolean packedLayout() {
        return true;
    }

    // ---------------------------------------------------------------- recovery

    @Override
    public int recoverPacked(MemorySegment ring, int size, int transportState) {
        clearResubmit();
        Arrays.fill(entryOfId, -1);
        publishing = -1;
        if (size != queueSize) {
            return -1;
        }
        int version = u16(VERSION);
        if (version == 0) {
            // A new buffer: every entry free, tracking from the transport's resume point.
            int used = transportState >>> 16;
            int idx = used & PackedRingLayout.INDEX_MASK;
            int wrap = (used & PackedRingLayout.WRAP_BIT) != 0 ? 1 : 0;
            setU16(DESC_NUM, queueSize);
            for (int j = 0; j < queueSize; j++) {
                setU8(d(j) + PD_INFLIGHT, 0);
                setU16(d(j) + PD_NEXT, j + 1);
            }
            setU16(P_FREE_HEAD, 0);
            setU16(P_OLD_FREE_HEAD, 0);
            setU16(P_USED_IDX, idx);
            setU16(P_OLD_USED_IDX, idx);
            setU8(P_USED_WRAP, wrap);
            setU8(P_OLD_USED_WRAP, wrap);
            freeHead = 0;
            counter = 0;
            VarHandle.releaseFence(); // the fields above before the version that validates them
            setU16(VERSION, VERSION_TRACKING);
            return transportState;
        }
        if (version != VERSION_TRACKING || u16(DESC_NUM) != queueSize) {
            return -1;
        }
        int oldUsed = u16(P_OLD_USED_IDX);
        int oldWrap = u8(P_OLD_USED_WRAP);
        if (oldUsed >= queueSize || oldWrap > 1) {
            return -1;
        }
        // vhost-user.rst: "If used_idx does not match old_used_idx" (vblk also compares the wrap
        // counters, so that a push of a whole ring's worth of descriptors is not missed): look at
        // the descriptor at old_used_idx. Still available for old_used_wrap_counter: the push
        // never reached the driver and is rolled back; otherwise it did and is committed.
        if (u16(P_USED_IDX) != oldUsed || u8(P_USED_WRAP) != oldWrap) {
            if (!PackedRingLayout.isAvail(PackedRingLayout.flags(ring, oldUsed), oldWrap != 0)) {
                setU16(P_OLD_FREE_HEAD, u16(P_FREE_HEAD));
                setU8(P_OLD_USED_WRAP, u8(P_USED_WRAP));
                VarHandle.releaseFence();
                setU16(P_OLD_USED_IDX, u16(P_USED_IDX));
            }
        }
        // "Set free_head, used_idx, used_wrap_counter to old_free_head, old_used_idx,
        // old_used_wrap_counter (roll back any in-progress update)".
        int fh = u16(P_OLD_FREE_HEAD);
        int usedIdx = u16(P_OLD_USED_IDX);
        int usedWrap = u8(P_OLD_USED_WRAP);
        if (usedIdx >= queueSize || usedWrap > 1) {
            return -1;
        }
        setU16(P_FREE_HEAD, fh);
        setU16(P_USED_IDX, usedIdx);
        setU8(P_USED_WRAP, usedWrap);
        // "Set the inflight field of each DescStatePacked entry in free list to 0".
        int free = 0;
        for (int x = fh; x < queueSize; x = u16(d(x) + PD_NEXT)) {
            if (++free > queueSize) {
                return -1; // the list loops
            }
            setU8(d(x) + PD_INFLIGHT, 0);
        }
        freeHead = fh;
        // The heads still in flight, resubmitted in counter order.
        int descs = 0;
        for (int e = 0; e < queueSize; e++) {
            int f = u8(d(e) + PD_INFLIGHT);
            if (f == 0) {
                continue;
            }
            int num = u16(d(e) + PD_NUM);
            int last = u16(d(e) + PD_LAST);
            if (f != 1 || num < 1 || num > queueSize || last >= queueSize) {
                return -1;
            }
            int y = e;
            for (int k = 1; k < num; k++) {
                y = u16(d(y) + PD_NEXT);
                if (y >= queueSize) {
                    return -1;
                }
            }
            int id = u16(d(last) + PD_ID);
            descs += num;
            if (y != last || id >= queueSize || entryOfId[id] >= 0 || descs > queueSize) {
                return -1;
            }
            entryOfId[id] = e;
            addResubmit(e, u64(d(e) + PD_COUNTER));
        }
        counter = nextCounter();
        // Every descriptor popped is either covered by used_idx or recorded in flight.
        int avail = usedIdx + descs;
        int availWrap = usedWrap;
        if (avail >= queueSize) {
            avail -= queueSize;
            availWrap ^= 1;
        }
        return (avail | availWrap << 15) | (usedIdx | usedWrap << 15) << 16;
    }

    // ---------------------------------------------------------------- pop

    @Override
    public boolean poppedPacked(int id, MemorySegment ring, int firstSlot, int descs) {
        int h = freeHead;
        int x = h;
        int last = h;
        int slot = firstSlot;
        for (int k = 0; k < descs; k++) {
            if (x >= queueSize) {
                return false;
            }
            setU64(d(x) + PD_ADDR, PackedRingLayout.addr(ring, 0, slot));
            long tail = PackedRingLayout.tail(ring, 0, slot);
            region.set(java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED, d(x) + PD_LEN, (int) PackedRingLayout.lenOf(tail));
            setU16(d(x) + PD_ID, PackedRingLayout.idOf(tail));
            setU16(d(x) + PD_FLAGS, PackedRingLayout.flagsOf(tail));
            if (x != h) {
                setU8(d(x) + PD_INFLIGHT, 0); // "only available for head-descriptor": no stale mark
            }
            last = x;
            x = u16(d(x) + PD_NEXT);
            if (++slot == queueSize) {
                slot = 0;
            }
        }
        setU16(d(h) + PD_NUM, descs);
        setU16(d(h) + PD_LAST, last);
        setU64(d(h) + PD_COUNTER, counter++);
        step(Step.PACKED_POP_COPIED);
        VarHandle.releaseFence(); // the copy before the mark that makes it count (pairs with recoverPacked)
        setU8(d(h) + PD_INFLIGHT, 1);
        step(Step.PACKED_POP_MARKED);
        VarHandle.releaseFence();
        setU16(P_FREE_HEAD, x);
        step(Step.PACKED_POP_FREE_HEAD);
        VarHandle.releaseFence(); // free_head before old_free_head commits the pop
        setU16(P_OLD_FREE_HEAD, x);
        freeHead = x;
        entryOfId[id] = h;
        return true;
    }

    // ---------------------------------------------------------------- push

    @Override
    public void publishingPacked(int id, int usedStateAfter) {
        int e = entryOfId[id];
        if (e < 0) {
            throw new IllegalStateException("buffer id " + id + " is not in the inflight record");
        }
        entryOfId[id] = -1;
        publishing = e;
        setU16(d(u16(d(e) + PD_LAST)) + PD_NEXT, freeHead);
        setU16(P_FREE_HEAD, e);
        freeHead = e;
        step(Step.PACKED_PUSH_FREED);
        VarHandle.releaseFence();
        setU16(P_USED_IDX, usedStateAfter & PackedRingLayout.INDEX_MASK);
        setU8(P_USED_WRAP, (usedStateAfter & PackedRingLayout.WRAP_BIT) != 0 ? 1 : 0);
        step(Step.PACKED_PUSH_USED_IDX);
        // PackedQueue.push's release fence orders these before the used descriptor's flags.
    }

    @Override
    public void publishedPacked(int id) {
        int e = publishing;
        publishing = -1;
        // The used descriptor's flags (guest memory) before the head is cleared: pairs with
        // recoverPacked's look at the ring, which commits only a push whose flags it sees.
        VarHandle.releaseFence();
        setU8(d(e) + PD_INFLIGHT, 0);
        step(Step.PACKED_PUSH_CLEARED);
        VarHandle.releaseFence();
        setU16(P_OLD_FREE_HEAD, freeHead);
        setU8(P_OLD_USED_WRAP, u8(P_USED_WRAP));
        VarHandle.releaseFence(); // old_used_idx last: equal to used_idx again means committed
        setU16(P_OLD_USED_IDX, u16(P_USED_IDX));
        step(Step.PACKED_PUSH_COMMITTED);
    }

    // ---------------------------------------------------------------- resubmission

    @Override
    public int entryDescs(int entry) {
        return u16(d(entry) + PD_NUM);
    }

    @Override
    public int entryNext(int entry) {
        return u16(d(entry) + PD_NEXT);
    }

    @Override
    public long entryAddr(int entry) {
        return u64(d(entry) + PD_ADDR);
    }

    @Override
    public long entryTail(int entry) {
        long len = Integer.toUnsignedLong(region.get(java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED, d(entry) + PD_LEN));
        return len | (long) u16(d(entry) + PD_ID) << 32 | (long) u16(d(entry) + PD_FLAGS) << 48;
    }

    // ---------------------------------------------------------------- the split protocol does not apply

    @Override
    public int recover(int ringUsedIdx, int nextAvailIdx) {
        return -1; // a split queue refuses a packed record before it asks (packedLayout)
    }

    @Override
    public void popped(int head) {
        throw new IllegalStateException("packed inflight record used by a split queue");
    }

    @Override
    public void publishing(int head) {
        throw new IllegalStateException("packed inflight record used by a split queue");
    }

    @Override
    public void published(int head, int usedIdx) {
        throw new IllegalStateException("packed inflight record used by a split queue");
    }
}
