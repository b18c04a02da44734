package io.vblk.virtio.blk;

import io.vblk.aio.AioContext;
import io.vblk.aio.DeferCall;

/**
 * Home thread: the queue's IoThread. No locking.
 *
 * <p>Requests completed in the current defer-call section, waiting for its end to be timed: the
 * guest-visible latency of a request runs from its pop to the end of the section that published
 * its used element (when the guest's notification goes out), so the pop times are kept here and
 * recorded into the queue's histograms once, at the section's end. Sized to the ring at start.
 */
final class DoneLatencies {
    private static final DeferCall.Fn<DoneLatencies> RECORD = DoneLatencies::record;

    private final AioContext ctx;
    private final BlkQueueStats stats;
    private int[] ops = new int[0];
    private long[] pops = new long[0];
    private int count;

    DoneLatencies(AioContext ctx, BlkQueueStats stats) {
        this.ctx = ctx;
        this.stats = stats;
    }

    /** One request of op index {@code op}, popped at {@code popNanos}, completed in this section. */
    void note(int op, long popNanos) {
        if (count == ops.length) {
            record();
        }
        ops[count] = op;
        pops[count] = popNanos;
        if (count++ == 0) {
            ctx.deferCall().defer(RECORD, this);
        }
    }

    /** Records what is pending, then makes room for a ring of {@code size} (control path). */
    void resize(int size) {
        record();
        ops = new int[size];
        pops = new long[size];
    }

    private void record() {
        int n = count;
        if (n == 0) {
            return;
        }
        long now = ctx.now();
        for (int i = 0; i < n; i++) {
            stats.latency[ops[i]].record(now - pops[i]);
        }
        count = 0;
    }
}
