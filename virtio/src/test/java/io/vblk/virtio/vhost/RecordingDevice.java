package io.vblk.virtio.vhost;

import io.vblk.aio.AioContext;
import io.vblk.aio.sys.FileIo;
import io.vblk.virtio.queue.QueueLayout;
import io.vblk.virtio.device.VirtioDevice;
import io.vblk.virtio.memory.GuestMemory;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.function.IntConsumer;

/**
 * A {@link VirtioDevice} that records what a transport asks of it, for tests of the vhost-user
 * message handler's protocol logic (which call, in what order, with which translated addresses).
 * It processes no requests. A test can hold queue stops open, as a queue with requests in flight
 * would, and release them later. Checks the interface's rules it can see (stopped queues before
 * setMemory and reset, offered features only).
 *
 * <p>Home thread: the control context given at construction.
 */
public final class RecordingDevice implements VirtioDevice {
    public final AioContext ctx;
    public final List<String> calls = Collections.synchronizedList(new ArrayList<>());
    public final byte[] config;
    public final int queues;
    public volatile boolean holdStops;
    public final QueueLayout[] layouts;
    public final int[] kick;
    public final int[] call;
    public final boolean[] started;
    /** What stopQueue reports per queue (a device would report where it got to). */
    public final int[] nextAvail;
    private final List<Runnable> heldStops = new ArrayList<>();
    /** Completed with the queue index the first time a stop is asked for (tests wait on it). */
    public final java.util.concurrent.CompletableFuture<Integer> stopRequested = new java.util.concurrent.CompletableFuture<>();
    private final List<Runnable> needsReset = new ArrayList<>();
    private final List<Runnable> configChange = new ArrayList<>();
    public GuestMemory memory;
    public long driverFeatures;
    public long offered = (1L << 32) | (1L << 29) | (1L << 12); // VERSION_1, EVENT_IDX, MQ
    public String needsResetReason;
    public byte writeback;

    public RecordingDevice(AioContext ctx, int queues, long capacitySectors) {
        this.ctx = ctx;
        this.queues = queues;
        this.config = new byte[60];
        java.nio.ByteBuffer.wrap(config).order(java.nio.ByteOrder.LITTLE_ENDIAN).putLong(0, capacitySectors)
                .putShort(34, (short) queues);
        layouts = new QueueLayout[queues];
        kick = new int[queues];
        call = new int[queues];
        started = new boolean[queues];
        nextAvail = new int[queues];
        java.util.Arrays.fill(kick, -1);
        java.util.Arrays.fill(call, -1);
    }

    @Override
    public int deviceId() {
        return 2;
    }

    @Override
    public long deviceFeatures() {
        return offered;
    }

    @Override
    public void setDriverFeatures(long features) {
        ctx.assertHome();
        if ((features & ~offered) != 0) {
            throw new IllegalArgumentException("feature bits 0x" + Long.toHexString(features & ~offered) + " not offered");
        }
        driverFeatures = features;
        calls.add("features " + Long.toHexString(features));
    }

    @Override
    public long driverFeatures() {
        return driverFeatures;
    }

    @Override
    public int numQueues() {
        return queues;
    }

    @Override
    public int maxQueueSize() {
        return 256;
    }

    @Override
    public int configSize() {
        return config.length;
    }

    @Override
    public void readConfig(int offset, byte[] dst, int length) {
        System.arraycopy(config, offset, dst, 0, length);
    }

    @Override
    public boolean writeConfig(int offset, byte[] src, int length) {
        // virtio-blk: only the writeback byte (offset 32) is device-writable.
        if (offset != 32 || length != 1) {
            return false;
        }
        writeback = src[0];
        config[32] = src[0];
        calls.add("writeback " + src[0]);
        return true;
    }

    @Override
    public void setMemory(GuestMemory m) {
        ctx.assertHome();
        for (int q = 0; q < queues; q++) {
            if (started[q]) {
                throw new IllegalStateException("setMemory with queue " + q + " started");
            }
        }
        m.retain();
        if (memory != null) {
            memory.release();
        }
        memory = m;
        calls.add("memory " + m.regionCount());
    }

    @Override
    public void configureQueue(int index, QueueLayout layout) {
        ctx.assertHome();
        layouts[index] = layout;
        calls.add("configure " + index + " " + layout);
    }

    @Override
    public void setQueueFds(int index, int kickFd, int callFd) {
        ctx.assertHome();
        if (kick[index] >= 0) {
            FileIo.close(kick[index]);
        }
        if (call[index] >= 0) {
            FileIo.close(call[index]);
        }
        kick[index] = kickFd;
        call[index] = callFd;
        calls.add("fds " + index);
    }

    @Override
    public void startQueue(int index, Runnable onStarted) {
        ctx.assertHome();
        if (started[index]) {
            throw new IllegalStateException("queue " + index + " started twice");
        }
        started[index] = true;
        calls.add("start " + index);
        ctx.runOn(onStarted);
    }

    @Override
    public void stopQueue(int index, IntConsumer onStopped) {
        ctx.assertHome();
        calls.add("stop " + index);
        stopRequested.complete(index);
        Runnable finish = () -> {
            started[index] = false;
            calls.add("stopped " + index);
            onStopped.accept(nextAvail[index]);
        };
        if (holdStops) {
            heldStops.add(finish);
        } else {
            ctx.runOn(finish);
        }
    }

    /** Completes the stops held so far, as the last in-flight requests would. Home thread. */
    public int releaseStops() {
        ctx.assertHome();
        List<Runnable> l = new ArrayList<>(heldStops);
        heldStops.clear();
        l.forEach(Runnable::run);
        return l.size();
    }

    public int heldStops() {
        return heldStops.size();
    }

    @Override
    public boolean queueStarted(int index) {
        return started[index];
    }

    @Override
    public void reset() {
        ctx.assertHome();
        for (int q = 0; q < queues; q++) {
            if (started[q]) {
                throw new IllegalStateException("reset with queue " + q + " started");
            }
            if (kick[q] >= 0) {
                FileIo.close(kick[q]);
            }
            if (call[q] >= 0) {
                FileIo.close(call[q]);
            }
            kick[q] = call[q] = -1;
            layouts[q] = null;
        }
        driverFeatures = 0;
        needsResetReason = null;
        calls.add("reset");
    }

    @Override
    public boolean needsReset() {
        return needsResetReason != null;
    }

    @Override
    public String needsResetReason() {
        return needsResetReason;
    }

    @Override
    public void onConfigChange(Runnable listener) {
        configChange.add(listener);
    }

    @Override
    public void onNeedsReset(Runnable listener) {
        needsReset.add(listener);
    }

    /** Enters NEEDS_RESET as a device that saw a guest violation would. Home thread. */
    public void breakDevice(String why) {
        needsResetReason = why;
        needsReset.forEach(Runnable::run);
    }

    @Override
    public void close() {
        if (memory != null) {
            memory.release();
            memory = null;
        }
    }
}
