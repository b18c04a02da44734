package io.vblk.irqfd;

/**
 * Home thread: the owning IoThread of the queue. No locking.
 *
 * <p>Decides, at the moment a deferred notification is about to be sent, whether the guest wants it.
 * The virtqueue implements this from its suppression state (EVENT_IDX's {@code used_event},
 * VIRTQ_AVAIL_F_NO_INTERRUPT, NOTIFY_ON_EMPTY); irqfd itself knows nothing of virtio.
 */
@FunctionalInterface
public interface NotifyFilter {
    /** True when the guest asked to be told about the buffers used so far. Called once per batch. */
    boolean shouldNotify();
}
