package io.vblk.aio;

import java.util.Arrays;

/**
 * Home thread: the owning context's. No locking.
 *
 * <p>Armed timers ordered by deadline: a binary min-heap whose entries know their index, so arming,
 * moving and cancelling are O(log n) and allocate nothing once the array has grown.
 */
final class TimerHeap {
    private Timer[] heap = new Timer[16];
    private int size;

    int size() {
        return size;
    }

    /** True when no timer is armed. */
    boolean isEmpty() {
        return size == 0;
    }

    /** The armed timer with the earliest deadline, or null when none is armed. */
    Timer peek() {
        return size == 0 ? null : heap[0];
    }

    void arm(Timer t, long deadline) {
        if (t.heapIndex >= 0) {
            remove(t);
        }
        t.deadline = deadline;
        if (size == heap.length) {
            heap = Arrays.copyOf(heap, size * 2);
        }
        heap[size] = t;
        t.heapIndex = size;
        size++;
        up(t.heapIndex);
    }

    void remove(Timer t) {
        int i = t.heapIndex;
        if (i < 0) {
            return;
        }
        size--;
        Timer last = heap[size];
        heap[size] = null;
        t.heapIndex = -1;
        if (last != t) {
            heap[i] = last;
            last.heapIndex = i;
            up(i);
            down(last.heapIndex);
        }
    }

    /** Removes and returns the earliest timer if its deadline is at or before {@code now}. */
    Timer pollExpired(long now) {
        if (size == 0 || heap[0].deadline - now > 0) {
            return null;
        }
        Timer t = heap[0];
        remove(t);
        return t;
    }

    private void up(int i) {
        Timer t = heap[i];
        while (i > 0) {
            int p = (i - 1) >>> 1;
            Timer pt = heap[p];
            if (pt.deadline - t.deadline <= 0) {
                break;
            }
            heap[i] = pt;
            pt.heapIndex = i;
            i = p;
        }
        heap[i] = t;
        t.heapIndex = i;
    }

    private void down(int i) {
        Timer t = heap[i];
        int half = size >>> 1;
        while (i < half) {
            int c = 2 * i + 1;
            int r = c + 1;
            if (r < size && heap[r].deadline - heap[c].deadline < 0) {
                c = r;
            }
            if (t.deadline - heap[c].deadline <= 0) {
                break;
            }
            heap[i] = heap[c];
            heap[i].heapIndex = i;
            i = c;
        }
        heap[i] = t;
        t.heapIndex = i;
    }

    /** Names of armed timers, for error messages. */
    String names() {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < size; i++) {
            sb.append(i == 0 ? "" : ", ").append(heap[i].name());
        }
        return sb.toString();
    }
}
