package io.vblk.virtio.queue;

import java.util.Arrays;

/**
 * Home thread: the owning IoThread of the queue that holds it. No locking.
 *
 * <p>VIRTIO_F_IN_ORDER (virtio 1.2 2.7.9 / 2.8.20: "the device uses buffers in the same order in
 * which they have been made available"), for both rings: the queue notes each buffer as it pops
 * it and, when one completes, holds it until every buffer popped before it has completed too;
 * then they are published oldest first. vblk writes one used element per buffer — the batching the
 * spec allows (one element for the last buffer of a batch) is a MAY it does not take, so a driver
 * that ignores IN_ORDER's shortcut reads the ring as usual.
 *
 * <p>Sized at queue start (control path); nothing is allocated per request.
 */
final class InOrder {
    private boolean on;
    /** Buffer ids (split: heads) in the order they were popped: a ring of {@code order.length}. */
    private int[] order = new int[0];
    /** Per id: the used length once completed, -1 while pending. */
    private long[] doneLen = new long[0];
    private int first;
    private int count;

    /** At queue start: {@code enabled} when the driver negotiated IN_ORDER; ids below {@code size}. */
    void reset(boolean enabled, int size) {
        on = enabled;
        if (order.length < size) {
            order = new int[size];
            doneLen = new long[size];
        }
        Arrays.fill(doneLen, -1);
        first = 0;
        count = 0;
    }

    boolean on() {
        return on;
    }

    /** Buffer {@code id} was popped (or popped again from an inflight record). */
    void popped(int id) {
        if (!on) {
            return;
        }
        order[(first + count) % order.length] = id;
        count++;
        doneLen[id] = -1;
    }

    /** Buffer {@code id} completed with {@code len} bytes written; publish what {@link #nextReady} gives. */
    void completed(int id, long len) {
        doneLen[id] = len;
    }

    /** The oldest popped buffer when it has completed (removed from the order), else -1. */
    int nextReady() {
        if (count == 0) {
            return -1;
        }
        int id = order[first];
        if (doneLen[id] < 0) {
            return -1;
        }
        first = (first + 1) % order.length;
        count--;
        return id;
    }

    /** The used length {@link #completed} gave {@code id}. */
    long len(int id) {
        return doneLen[id];
    }
}
