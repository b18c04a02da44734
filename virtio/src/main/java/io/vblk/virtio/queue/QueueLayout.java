package io.vblk.virtio.queue;

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
 */
public record QueueLayout(int size, long descAddr, long availAddr, long usedAddr, int nextAvailIdx) {
}
