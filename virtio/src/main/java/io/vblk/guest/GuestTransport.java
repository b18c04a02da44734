package io.vblk.guest;

import io.vblk.virtio.queue.QueueLayout;

/**
 * Any thread that is no context's home thread (a test, the bench's main thread): every call is
 * control-plane work that may block for a bounded time and throws {@link IllegalStateException}
 * (naming the call) when the device fails or does not answer in time. The data path never goes
 * through here: once a queue is started the guest talks to it through guest memory and the
 * queue's eventfds only.
 *
 * <p>The seam between the emulated guest driver and one virtio device: what a guest reaches through
 * PCI config space and the virtio common configuration, reduced to the calls a block driver
 * needs. Two implementations:
 * <ul>
 *   <li>{@link InProcessTransport}: calls a {@link io.vblk.virtio.device.VirtioDevice} in this
 *       process through its control context;</li>
 *   <li>the vhost-user frontend (built alongside the vhost-user server, and implementing this
 *       interface): the same calls spoken over a UNIX socket to a vhost-user-blk backend (vblk's
 *       own or {@code qemu-storage-daemon}), so the same guest, workloads and {@code vblk bench}
 *       drive a remote device. That implementation maps the calls to GET_FEATURES /
 *       SET_FEATURES, GET_CONFIG, SET_MEM_TABLE (passing {@link GuestRam#fd()}), SET_VRING_NUM /
 *       ADDR / BASE, SET_VRING_KICK / CALL and SET_VRING_ENABLE.</li>
 * </ul>
 *
 * <p>Fd ownership: the transport never takes the guest's fds. It gives the device its own
 * copies ({@code dup} in process, SCM_RIGHTS over a socket); the guest keeps and closes its own.
 */
public interface GuestTransport extends AutoCloseable {
    /** Virtio device ID (5: 2 for a block device). */
    int deviceId();

    /** The device's feature bits (transport bits included). */
    long deviceFeatures();

    /**
     * Accepts {@code features} (a subset of {@link #deviceFeatures()}), the FEATURES_OK step of
     * 3.1.1. Throws when the device refuses them.
     */
    void setDriverFeatures(long features);

    /** Number of queues the device has. */
    int numQueues();

    /** Largest queue size the device takes. */
    int maxQueueSize();

    /** Size of the device-specific configuration space. */
    int configSize();

    /** Reads device configuration space (5.2.4 for a block device). */
    void readConfig(int offset, byte[] dst, int length);

    /** Writes device configuration space; false when the device refused the bytes. */
    boolean writeConfig(int offset, byte[] src, int length);

    /** Hands the guest's RAM to the device (in process: as a memory map; vhost-user: the memfd). */
    void setMemory(GuestRam ram);

    /** Tells the device where queue {@code index} lives (guest-physical addresses) and its size. */
    void configureQueue(int index, QueueLayout layout);

    /**
     * Tells the device the queue's eventfds: it reads {@code kickFd} (the guest's kicks) and
     * writes {@code callFd} (interrupts), -1 for a guest that polls. The caller keeps its fds.
     */
    void setQueueFds(int index, int kickFd, int callFd);

    /** Starts queue {@code index}; returns once the device processes it. */
    void startQueue(int index);

    /**
     * Stops queue {@code index}; returns once every request the device took has completed, with
     * the next avail index the device would process.
     */
    int stopQueue(int index);

    /** Resets the device (every queue stopped first): features and queue state are forgotten. */
    void reset();

    /** Why the device needs a reset (it saw a protocol violation), or null when it does not. */
    String needsResetReason();

    /** Releases the transport's side (closes the connection; the in-process device stays open). */
    @Override
    void close();
}
