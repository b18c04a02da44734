package io.vblk.guest;

import java.util.ArrayList;
import java.util.List;

import static io.vblk.guest.GuestFeatures.*;

/**
 * Home thread: the thread that calls {@link #attach} and {@link #close()} (no context's home
 * thread; the transport may block). Each queue then belongs to the vCPU thread that drives it.
 *
 * <p>The emulated guest's virtio-blk driver: brings a device up through a {@link GuestTransport} the
 * way a guest kernel does (virtio 1.x 3.1.1: read the features, accept a subset, read the
 * configuration, set up the queues, start them), owns the guest RAM its rings and request
 * buffers live in, and hands out one {@link GuestBlkQueue} per queue.
 */
public final class GuestBlkDriver implements AutoCloseable {
    /**
     * What the guest asks for.
     *
     * @param queues         queues to use; more than the device has (or more than one without MQ) fails
     * @param queueSize      ring size per queue (a power of two; capped by the device's maximum)
     * @param slotsPerQueue  request slots per queue (the most requests in flight per queue)
     * @param maxDataBytes   largest data buffer of one request
     * @param maxSegments    most data descriptors one request may use
     * @param wantFeatures   features the guest would like; the accepted set is this, the device's
     *                       offer and what the driver supports, intersected. VERSION_1 is required.
     * @param interrupts     true: take interrupts through call eventfds; false: poll the used ring
     *                       (the device gets no call eventfd)
     * @param ramName        name of the memfd (shows in /proc/PID/maps)
     */
    public record Options(int queues, int queueSize, int slotsPerQueue, int maxDataBytes, int maxSegments,
                          long wantFeatures, boolean interrupts, String ramName) {
        public Options {
            if (queues < 1) {
                throw new IllegalArgumentException("queues must be >= 1, got " + queues);
            }
            if (!VringLayout.validSize(queueSize)) {
                throw new IllegalArgumentException("queue size must be a power of two, got " + queueSize);
            }
            if (maxDataBytes < 1) {
                throw new IllegalArgumentException("max data bytes must be >= 1");
            }
        }

        /** One queue of 256 entries, 32 slots of 128 KiB, every supported feature, interrupts on. */
        public static Options defaults() {
            return new Options(1, 256, 32, 128 * 1024, 4, SUPPORTED, true, "vblk-guest-ram");
        }

        public Options withQueues(int n) {
            return new Options(n, queueSize, slotsPerQueue, maxDataBytes, maxSegments, wantFeatures, interrupts, ramName);
        }

        public Options withQueueSize(int n) {
            return new Options(queues, n, slotsPerQueue, maxDataBytes, maxSegments, wantFeatures, interrupts, ramName);
        }

        public Options withSlots(int n) {
            return new Options(queues, queueSize, n, maxDataBytes, maxSegments, wantFeatures, interrupts, ramName);
        }

        public Options withMaxDataBytes(int n) {
            return new Options(queues, queueSize, slotsPerQueue, n, maxSegments, wantFeatures, interrupts, ramName);
        }

        public Options withMaxSegments(int n) {
            return new Options(queues, queueSize, slotsPerQueue, maxDataBytes, n, wantFeatures, interrupts, ramName);
        }

        public Options withFeatures(long f) {
            return new Options(queues, queueSize, slotsPerQueue, maxDataBytes, maxSegments, f, interrupts, ramName);
        }

        public Options withoutFeatures(int... bits) {
            return withFeatures(wantFeatures & ~GuestFeatures.bits(bits));
        }

        public Options withInterrupts(boolean on) {
            return new Options(queues, queueSize, slotsPerQueue, maxDataBytes, maxSegments, wantFeatures, on, ramName);
        }
    }

    private final GuestTransport transport;
    private final long features;
    private final BlkConfig config;
    private final GuestRam ram;
    private final List<GuestBlkQueue> queues;
    private boolean closed;
    /** The workload whose vCPU threads use this driver's queues and RAM; set by {@link WorkloadRun#start}. */
    private volatile WorkloadRun run;

    private GuestBlkDriver(GuestTransport transport, long features, BlkConfig config, GuestRam ram,
                           List<GuestBlkQueue> queues) {
        this.transport = transport;
        this.features = features;
        this.config = config;
        this.ram = ram;
        this.queues = queues;
    }

    /**
     * Negotiates, reads the configuration, lays out and starts {@code o.queues()} queues. On any
     * failure everything set up so far is released and the exception names the step.
     */
    public static GuestBlkDriver attach(GuestTransport t, Options o) {
        int id = t.deviceId();
        if (id != BlkWireLayout.VIRTIO_ID_BLOCK) {
            throw new IllegalStateException("device id " + id + " is not a block device (5: 2)");
        }
        long offered = t.deviceFeatures();
        if (!has(offered, F_VERSION_1)) {
            // 6.1: a device that does not offer VERSION_1 is a legacy device; this driver is 1.x only.
            throw new IllegalStateException("device does not offer VIRTIO_F_VERSION_1 (offers "
                    + GuestFeatures.describe(offered) + ")");
        }
        // RING_PACKED is taken only when asked for ({@code --ring packed}): SUPPORTED keeps the split default.
        long accepted = offered & o.wantFeatures() & (SUPPORTED | bit(F_RING_PACKED)) | bit(F_VERSION_1);
        t.setDriverFeatures(accepted);

        byte[] raw = new byte[BlkWireLayout.CFG_BYTES_READ];
        t.readConfig(0, raw, Math.min(raw.length, t.configSize()));
        BlkConfig cfg = BlkConfig.parse(raw);

        int available = has(accepted, BLK_F_MQ) ? Math.max(1, cfg.numQueues()) : 1;
        if (o.queues() > available) {
            throw new IllegalArgumentException(o.queues() + " queues asked for, the device has " + available
                    + (has(accepted, BLK_F_MQ) ? "" : " (VIRTIO_BLK_F_MQ not negotiated)"));
        }
        int qsize = Math.min(o.queueSize(), t.maxQueueSize());
        int segments = o.maxSegments();
        if (has(accepted, BLK_F_SEG_MAX) && cfg.segMax() > 0) {
            // 5.2.5: the driver keeps every request within seg_max data segments.
            segments = Math.min(segments, cfg.segMax());
        }
        boolean eventIdx = has(accepted, F_EVENT_IDX);
        boolean indirect = has(accepted, F_INDIRECT_DESC);

        long perQueue = VringLayout.descTableBytes(qsize) + VringLayout.availBytes(qsize)
                + VringLayout.usedBytes(qsize) + 64
                + (long) o.slotsPerQueue() * (BlkSlot.META_BYTES + (segments + 2L) * VringLayout.DESC_BYTES + 16
                + VringLayout.alignUp(Math.max(o.maxDataBytes(), BlkWireLayout.SECTOR_BYTES), 4096) + 4096);
        GuestRam ram = GuestRam.memfd(o.ramName(), GuestRam.DEFAULT_GPA_BASE, perQueue * o.queues() + 4096);
        List<GuestBlkQueue> qs = new ArrayList<>();
        try {
            t.setMemory(ram);
            for (int i = 0; i < o.queues(); i++) {
                GuestBlkQueue q = new GuestBlkQueue(i, ram, qsize, o.slotsPerQueue(), o.maxDataBytes(), segments,
                        eventIdx, indirect, o.interrupts(), has(accepted, F_RING_PACKED));
                qs.add(q);
                t.configureQueue(i, q.ring().layout());
                t.setQueueFds(i, q.kickFd(), q.callFd());
            }
            for (int i = 0; i < o.queues(); i++) {
                t.startQueue(i);
            }
        } catch (RuntimeException e) {
            for (GuestBlkQueue q : qs) {
                q.close();
            }
            ram.close();
            throw e;
        }
        return new GuestBlkDriver(t, accepted, cfg, ram, List.copyOf(qs));
    }

    public GuestTransport transport() {
        return transport;
    }

    /** The features accepted (what the device was told at FEATURES_OK). */
    public long features() {
        return features;
    }

    public boolean negotiated(int feature) {
        return has(features, feature);
    }

    public BlkConfig config() {
        return config;
    }

    public GuestRam ram() {
        return ram;
    }

    public int queueCount() {
        return queues.size();
    }

    public GuestBlkQueue queue(int i) {
        return queues.get(i);
    }

    /** Called by {@link WorkloadRun#start} once its vCPU threads run on this driver. */
    void workloadStarted(WorkloadRun r) {
        run = r;
    }

    public List<GuestBlkQueue> queues() {
        return queues;
    }

    /**
     * Stops every queue (the device finishes what it took), resets the device and releases the
     * guest's fds and RAM (the device's own reference on the RAM keeps it mapped until it lets go).
     * The vCPU threads must have stopped: while a {@link WorkloadRun} on this driver still has a live
     * vCPU thread, this refuses (an {@link IllegalStateException}) and closes nothing, since unmapping
     * the RAM under a thread that reads the used ring would crash the process.
     */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        WorkloadRun r = run;
        if (r != null && !r.isDone()) {
            throw new IllegalStateException("the workload's vCPU threads still run on this guest driver:"
                    + " stop() and await() the WorkloadRun before close()");
        }
        closed = true;
        RuntimeException failure = null;
        try {
            for (int i = 0; i < queues.size(); i++) {
                transport.stopQueue(i);
            }
            transport.reset();
        } catch (RuntimeException e) {
            failure = e;
        }
        for (GuestBlkQueue q : queues) {
            q.close();
        }
        ram.close();
        if (failure != null) {
            throw failure;
        }
    }
}
