package io.vblk.virtio.device;

import io.vblk.virtio.memory.GuestMemory;
import io.vblk.virtio.queue.QueueLayout;

import java.util.function.IntConsumer;

/**
 * Home thread: the control context the device was created on (the main loop). Queue work
 * runs on each queue's IoThread; the methods that reach a queue hand over to it and report back on
 * the control context through their callbacks. No method blocks.
 *
 * <p>A virtio device model as a transport sees it: the in-process emulator harness and the
 * vhost-user server drive a device only through this interface (STYLE rule 8), never through the
 * block device's own classes.
 */
public interface VirtioDevice extends AutoCloseable {
    /** Virtio device ID (virtio 1.x section 5: 2 = block device). */
    int deviceId();

    /** Features the device offers (bit numbers as in the virtio spec, incl. transport bits). */
    long deviceFeatures();

    /**
     * Records the features the driver accepted. Throws {@link IllegalArgumentException} naming the
     * offending bits when the driver accepts a feature that was not offered.
     */
    void setDriverFeatures(long features);

    long driverFeatures();

    /** Number of queues the device has (the MQ maximum). */
    int numQueues();

    /** Largest queue size the device accepts (a power of two, at most 32768; vblk uses 1024). */
    int maxQueueSize();

    /** Size of the device-specific configuration space in bytes. */
    int configSize();

    /** Reads {@code length} bytes of configuration space at {@code offset} into {@code dst}. */
    void readConfig(int offset, byte[] dst, int length);

    /**
     * Writes configuration space; only device-writable fields may change (virtio-blk: the
     * writeback byte). Returns false, changing nothing, for any other byte.
     */
    boolean writeConfig(int offset, byte[] src, int length);

    /**
     * Registers who hears (on the control context) that the configuration space changed on the
     * device's side (virtio 1.2 section 2.5.1: "the device MUST send a configuration change
     * notification"; for virtio-blk, a resize). The transport tells the driver: vhost-user with
     * VHOST_USER_BACKEND_CONFIG_CHANGE_MSG; on the front-end side, the listener hears that message.
     */
    void onConfigChange(Runnable listener);

    /**
     * Replaces the guest memory map. Queues using the old map must be stopped first. The device
     * takes one reference ({@link GuestMemory#retain()}) and releases the previous map.
     */
    void setMemory(GuestMemory memory);

    /** Sets the layout of queue {@code index}: size, ring addresses, first avail index. */
    void configureQueue(int index, QueueLayout layout);

    /**
     * Sets the eventfds of queue {@code index}: {@code kickFd} is read by the device (guest
     * kicks), {@code callFd} is written to notify the guest (-1: none, for polling peers). The
     * device takes ownership of both fds and closes them when replaced or on reset.
     */
    void setQueueFds(int index, int kickFd, int callFd);

    /** Starts queue {@code index} on its IoThread; {@code onStarted} runs on the control context. */
    void startQueue(int index, Runnable onStarted);

    /**
     * Stops queue {@code index}: no new requests are taken, and once every in-flight request has
     * completed {@code onStopped} runs on the control context with the next avail index to
     * process (what vhost-user's GET_VRING_BASE reports).
     */
    void stopQueue(int index, IntConsumer onStopped);

    boolean queueStarted(int index);

    /** Resets the device: every queue must be stopped. Features and queue state are cleared. */
    void reset();

    /** True once the device has seen a guest protocol violation and needs a reset. */
    boolean needsReset();

    /** Why the device needs a reset, or null. */
    String needsResetReason();

    /** Registers who hears (on the control context) that the device entered NEEDS_RESET. */
    void onNeedsReset(Runnable listener);

    @Override
    void close();
}
