package io.vblk.virtio.queue;

import io.vblk.virtio.memory.DirtyLog;

/**
 * Any thread: immutable.
 *
 * <p>Where a split virtqueue lives in guest memory and where processing resumes
 * (virtio 1.x section 2.7). Addresses are guest-physical.
 *
 * @param size          queue size, a power of two (2.7: "Queue Size ... power of 2")
 * @param descAddr      descriptor table, 16-byte aligned
 * @param availAddr     driver (avail) ring, 2-byte aligned
 * @param usedAddr      device (used) ring, 4-byte aligned
 * @param nextAvailIdx  the avail index the device processes next (vhost-user SET_VRING_BASE)
 * @param inflight      the record of chains in flight the queue keeps ({@link InflightLog#NONE}: none)
 * @param dirty         where the guest pages the queue writes are logged while the front-end
 *                      migrates the guest (vhost-user LOG_ALL), or null: no logging
 */
public record QueueLayout(int size, long descAddr, long availAddr, long usedAddr, int nextAvailIdx, InflightLog inflight,
                          DirtyLog dirty) {
    public QueueLayout {
        if (inflight == null) {
            throw new IllegalArgumentException("inflight log is null; use InflightLog.NONE");
        }
    }

    public QueueLayout(int size, long descAddr, long availAddr, long usedAddr, int nextAvailIdx, InflightLog inflight) {
        this(size, descAddr, availAddr, usedAddr, nextAvailIdx, inflight, null);
    }

    public QueueLayout(int size, long descAddr, long availAddr, long usedAddr, int nextAvailIdx) {
        this(size, descAddr, availAddr, usedAddr, nextAvailIdx, InflightLog.NONE, null);
    }

    /** The same rings, record and log, resuming at {@code next}. */
    public QueueLayout withNextAvailIdx(int next) {
        return new QueueLayout(size, descAddr, availAddr, usedAddr, next, inflight, dirty);
    }
}
