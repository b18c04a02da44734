package io.vblk.guest;

import io.vblk.aio.AioContext;
import io.vblk.aio.sys.Errno;
import io.vblk.aio.sys.FileIo;
import io.vblk.virtio.queue.QueueLayout;
import io.vblk.virtio.device.VirtioDevice;
import io.vblk.virtio.memory.GuestMemory;

import java.time.Duration;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;

/**
 * Any thread that is no context's home thread. The device stays owned by whoever created it:
 * {@link #close()} does not close it.
 *
 * <p>{@link GuestTransport} over a {@link VirtioDevice} in this process. Every call hops onto the
 * device's control context (its home thread, STYLE rule 2) and waits there for the answer, bounded
 * by the timeout given at construction; the caller is never a context's home thread
 * ({@link AioContext#await} refuses that, seed 004).
 */
public final class InProcessTransport implements GuestTransport {
    private final VirtioDevice device;
    private final AioContext control;
    private final Duration timeout;

    /**
     * @param device  the device, created on {@code control}'s home thread
     * @param control the device's control context (the main loop)
     * @param timeout bound on each control call
     */
    public InProcessTransport(VirtioDevice device, AioContext control, Duration timeout) {
        this.device = device;
        this.control = control;
        this.timeout = timeout;
    }

    public VirtioDevice device() {
        return device;
    }

    public AioContext control() {
        return control;
    }

    @Override
    public int deviceId() {
        return call("deviceId", device::deviceId);
    }

    @Override
    public long deviceFeatures() {
        return call("deviceFeatures", device::deviceFeatures);
    }

    @Override
    public void setDriverFeatures(long features) {
        call("setDriverFeatures", () -> {
            device.setDriverFeatures(features);
            return null;
        });
    }

    @Override
    public int numQueues() {
        return call("numQueues", device::numQueues);
    }

    @Override
    public int maxQueueSize() {
        return call("maxQueueSize", device::maxQueueSize);
    }

    @Override
    public int configSize() {
        return call("configSize", device::configSize);
    }

    @Override
    public void readConfig(int offset, byte[] dst, int length) {
        call("readConfig", () -> {
            device.readConfig(offset, dst, length);
            return null;
        });
    }

    @Override
    public boolean writeConfig(int offset, byte[] src, int length) {
        return call("writeConfig", () -> device.writeConfig(offset, src, length));
    }

    @Override
    public void setMemory(GuestRam ram) {
        GuestMemory map = ram.guestMemory();
        try {
            // The device retains the map itself; our creation reference is dropped either way.
            call("setMemory", () -> {
                device.setMemory(map);
                return null;
            });
        } finally {
            map.release();
        }
    }

    @Override
    public void configureQueue(int index, QueueLayout layout) {
        call("configureQueue", () -> {
            device.configureQueue(index, layout);
            return null;
        });
    }

    @Override
    public void setQueueFds(int index, int kickFd, int callFd) {
        // The device owns what it is given; hand it copies so the guest keeps its own fds.
        int kick = dupOrFail(kickFd);
        int callCopy;
        try {
            callCopy = callFd < 0 ? -1 : dupOrFail(callFd);
        } catch (RuntimeException e) {
            FileIo.close(kick);
            throw e;
        }
        call("setQueueFds", () -> {
            device.setQueueFds(index, kick, callCopy);
            return null;
        });
    }

    @Override
    public void startQueue(int index) {
        CompletableFuture<Void> started = new CompletableFuture<>();
        call("startQueue", () -> {
            device.startQueue(index, () -> started.complete(null));
            return null;
        });
        awaitCall("startQueue(" + index + ")", started);
    }

    @Override
    public int stopQueue(int index) {
        CompletableFuture<Integer> stopped = new CompletableFuture<>();
        call("stopQueue", () -> {
            device.stopQueue(index, stopped::complete);
            return null;
        });
        return awaitCall("stopQueue(" + index + ")", stopped);
    }

    @Override
    public void reset() {
        call("reset", () -> {
            device.reset();
            return null;
        });
    }

    @Override
    public String needsResetReason() {
        return call("needsResetReason", () -> device.needsReset() ? device.needsResetReason() : null);
    }

    @Override
    public void close() {
        // Nothing of ours to release: the device belongs to its creator.
    }

    private <T> T call(String what, Callable<T> body) {
        return awaitCall(what, control.callOn(body));
    }

    private <T> T awaitCall(String what, CompletableFuture<T> f) {
        try {
            return AioContext.await(f, timeout);
        } catch (CompletionException e) {
            Throwable cause = e.getCause() == null ? e : e.getCause();
            throw new IllegalStateException("device control call " + what + " failed: " + cause.getMessage(), cause);
        }
    }

    private static int dupOrFail(int fd) {
        int d = FileIo.dup(fd);
        if (d < 0) {
            throw new IllegalStateException("dup(" + fd + "): " + Errno.name(-d));
        }
        return d;
    }
}
