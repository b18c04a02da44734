package io.vblk.irqfd;

/**
 * Home thread: the owning IoThread of the queue. No locking.
 *
 * <p>Notifies the guest that a queue has used buffers (a used buffer notification, virtio 1.2
 * section 2.3). Implementations batch: inside a defer-call section the request is deferred, so a
 * pass that completes many requests notifies once.
 */
public interface Notifier {
    /** Requests a notification; whether one is sent is decided when the section ends. */
    void notifyGuest();
}
