package io.vblk.virtio.vhost.server;

import io.vblk.virtio.vhost.wire.InflightLayout;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;

/**
 * Home thread: the owning IoThread of the queue it records (the session's control context builds
 * it; the queue's thread alone uses it once started). No locking.
 *
 * <p>One split queue's region of the INFLIGHT_SHMFD buffer ({@link InflightLayout}), kept as
 * vhost-user.rst "Inflight I/O tracking" and libvhost-user (vu_queue_inflight_get / pre_put /
 * post_put, vu_check_queue_inflights) keep it. The reader is the next back-end, after this one
 * died at any instruction, so only the program order of the stores matters: each group of
 * stores is separated by a release fence (store-store order; on x86 a compiler barrier), and
 * the fences "pair with" {@link #recover} run by the next back-end on the same memory.
 * <pre>
 * pop:      counter[h] = n++    | fence | inflight[h] = 1
 * push:     last_batch_head = h | (used elem, fence, used->idx: SplitQueue.push)
 *           fence | inflight[h] = 0 | fence | used_idx = used->idx
 * </pre>
 * A death between used->idx and the clearing of inflight[h] leaves used_idx one behind the ring:
 * {@link #recover} then clears last_batch_head's flag. Any earlier death leaves h recorded, and
 * h is executed again (its used element, if written, was not yet visible to the driver).
 */
final class SplitInflightRecord extends InflightRecord {
    SplitInflightRecord(MemorySegment region, int queueSize) {
        super(region, queueSize);
    }

    private static long desc(int head) {
        return InflightLayout.desc(head, false);
    }

    @Override
    public int recover(int ringUsedIdx, int nextAvailIdx) {
        clearResubmit();
        int version = u16(InflightLayout.VERSION);
        if (version == 0) {
            // A new buffer: start tracking from the transport's avail index (vu_check_queue_inflights).
            counter = 0;
            setU16(InflightLayout.DESC_NUM, queueSize);
            setU16(InflightLayout.USED_IDX, ringUsedIdx);
            VarHandle.releaseFence(); // the fields above before the version that validates them
            setU16(InflightLayout.VERSION, VERSION_TRACKING);
            return nextAvailIdx;
        }
        if (version != VERSION_TRACKING || u16(InflightLayout.DESC_NUM) != queueSize) {
            return -1;
        }
        if (u16(InflightLayout.USED_IDX) != ringUsedIdx) {
            // The last back-end published a used element (used->idx moved) and died before it
            // cleared the head's flag: that head completed ("last_batch_head").
            int h = u16(InflightLayout.LAST_BATCH_HEAD);
            if (h >= queueSize) {
                return -1;
            }
            region.set(ValueLayout.JAVA_BYTE, desc(h) + InflightLayout.DESC_INFLIGHT, (byte) 0);
            VarHandle.releaseFence(); // pairs with the next recover's read of used_idx, as in published()
            setU16(InflightLayout.USED_IDX, ringUsedIdx);
        }
        for (int h = 0; h < queueSize; h++) {
            byte f = region.get(ValueLayout.JAVA_BYTE, desc(h) + InflightLayout.DESC_INFLIGHT);
            if (f == 0) {
                continue;
            }
            if (f != 1) {
                return -1;
            }
            // The order the heads were fetched in.
            addResubmit(h, region.get(ValueLayout.JAVA_LONG_UNALIGNED, desc(h) + InflightLayout.DESC_COUNTER));
        }
        counter = nextCounter();
        // Every head popped is either counted in used->idx or recorded in flight.
        return (ringUsedIdx + recovered()) & 0xffff;
    }

    @Override
    public void popped(int head) {
        region.set(ValueLayout.JAVA_LONG_UNALIGNED, desc(head) + InflightLayout.DESC_COUNTER, counter++);
        step(Step.POP_COUNTED);
        // The counter before the flag that makes it count. Pairs with recover()'s read of the flag.
        VarHandle.releaseFence();
        region.set(ValueLayout.JAVA_BYTE, desc(head) + InflightLayout.DESC_INFLIGHT, (byte) 1);
        step(Step.POP_MARKED);
    }

    @Override
    public void publishing(int head) {
        // Ordered before used->idx by SplitQueue.push's release fence.
        setU16(InflightLayout.LAST_BATCH_HEAD, head);
        step(Step.PUSH_BATCH_HEAD);
    }

    @Override
    public void published(int head, int usedIdx) {
        // used->idx (guest memory) before the flag is cleared: pairs with recover()'s used_idx
        // comparison, which treats last_batch_head as completed only once used->idx moved.
        VarHandle.releaseFence();
        region.set(ValueLayout.JAVA_BYTE, desc(head) + InflightLayout.DESC_INFLIGHT, (byte) 0);
        step(Step.PUSH_CLEARED);
        VarHandle.releaseFence(); // the flag before used_idx (pairs with recover() as above)
        setU16(InflightLayout.USED_IDX, usedIdx);
        step(Step.PUSH_USED_IDX);
    }
}
