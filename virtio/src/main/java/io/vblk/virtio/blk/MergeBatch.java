package io.vblk.virtio.blk;

import java.util.Arrays;
import java.util.function.Consumer;

/**
 * Home thread: its queue's IoThread. No locking.
 *
 * <p>The READs and WRITEs a queue pass gathers before it submits them: sorted by operation and
 * sector, neighbours merged into one driver request (QEMU's {@code virtio_blk_submit_multireq}).
 * Preallocated per ring size; adding and flushing allocate nothing.
 */
final class MergeBatch {
    private final boolean merge;
    private final int maxMergeBytes;
    private final BlkQueueStats stats;
    private BlkRequest[] slots = new BlkRequest[0];
    private long[] keys = new long[0];
    private int count;

    MergeBatch(boolean merge, int maxMergeBytes, BlkQueueStats stats) {
        this.merge = merge;
        this.maxMergeBytes = maxMergeBytes;
        this.stats = stats;
    }

    /** The queue's slots, indexed by {@link BlkRequest#sortKey()}'s low bits (control path: at start). */
    void resize(BlkRequest[] queueSlots) {
        slots = queueSlots;
        keys = new long[queueSlots.length];
        count = 0;
    }

    void add(BlkRequest r) {
        keys[count++] = r.sortKey();
    }

    int size() {
        return count;
    }

    /** Hands every gathered request (merged ones as their leader) to {@code submit}, in sector order when merging. */
    void flush(Consumer<BlkRequest> submit) {
        int n = count;
        if (n == 0) {
            return;
        }
        count = 0;
        if (merge && n > 1) {
            // Without merging the requests go in the order they were popped. Primitive sort of at most queue-size keys: allocation-free below the JDK's merge-run size.
            Arrays.sort(keys, 0, n);
        }
        BlkRequest leader = null;
        for (int i = 0; i < n; i++) {
            BlkRequest r = slots[(int) (keys[i] & 0x3ff)];
            if (merge && leader != null && leader.mergeableWith(r, maxMergeBytes)) {
                leader.io.iov.addAll(r.io.iov);
                leader.mergeTail.mergeNext = r;
                leader.mergeTail = r;
                stats.merged++;
                continue;
            }
            if (leader != null) {
                submit.accept(leader);
            }
            leader = r;
        }
        submit.accept(leader);
    }
}
