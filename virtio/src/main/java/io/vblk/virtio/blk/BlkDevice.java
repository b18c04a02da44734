package io.vblk.virtio.blk;

import io.vblk.aio.AioContext;
import io.vblk.aio.sys.FileIo;
import io.vblk.drivers.BlockChannel;
import io.vblk.drivers.BlockDriver;
import io.vblk.drivers.node.BlockNode;
import io.vblk.irqfd.IrqfdNotifier;
import io.vblk.virtio.queue.QueueLayout;
import io.vblk.virtio.device.VirtioDevice;
import io.vblk.virtio.queue.VirtioFeatures;
import io.vblk.virtio.memory.GuestMemory;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.IntConsumer;


/**
 * Home thread: the control context it was created on (the main loop). No locking. Methods that
 * reach a queue hand over with {@code ctx.runOn} and report back on the control context. The
 * NEEDS_RESET state and the cache mode are volatile: queue threads read them per request.
 *
 * <p>The virtio-blk device model (virtio 1.2 section 5.2) on split or packed virtqueues, driving one
 * {@link BlockNode}. Each queue lives on the IoThread its {@code IoThreadMapping} names; the
 * transports (the in-process harness, vhost-user) drive it only through {@link VirtioDevice}. The
 * device is a parent of its node: the node's drained sections stop its queues ({@link DeviceDrain}).
 * A mirror's pivot moves it to another node ({@link DeviceDrain#replaceNode}). Use: see
 * {@code InProcessBlk} (create, features, memory, configureQueue, setQueueFds, startQueue).
 */
public final class BlkDevice implements VirtioDevice {
    private static final System.Logger LOG = System.getLogger(BlkDevice.class.getName());
    private static final VarHandle NEEDS_RESET;

    static {
        try {
            NEEDS_RESET = MethodHandles.lookup().findVarHandle(BlkDevice.class, "needsResetReason", String.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    /** 5.2.1: the block device's ID. */
    public static final int DEVICE_ID = 2;

    private final String name;
    /** The node and its driver: changed by a pivot (control context), read from any thread. */
    private volatile BlockNode node;
    private final DeviceDrain drain;
    private volatile BlockDriver driver;
    private final AioContext control;
    private final BlkDeviceConfig cfg;
    private final long deviceFeatures;
    /** 5.2.4 capacity; changed by a resize of the node (control context), read from any thread. */
    private volatile long capacitySectors;
    private final int blkSize;
    private final boolean readOnly;
    private final ContextChannel[] channels;
    private final BlkQueue[] queues;
    private final QueueControl[] qc;
    private final List<Runnable> needsResetListeners = new ArrayList<>();
    final DeviceErrors errors;
    private final List<Runnable> configChangeListeners = new ArrayList<>();

    private long driverFeatures;
    private GuestMemory memory;
    private volatile boolean writeback;
    /** Set once by the first violation (CAS), cleared by reset(). */
    @SuppressWarnings("unused") // through NEEDS_RESET
    private volatile String needsResetReason;
    private boolean closed;

    /** Control-side state of one queue. Home thread: the control context. */
    private static final class QueueControl {
        QueueLayout layout;
        int kickFd = -1;
        int callFd = -1;
        boolean started;
        boolean stopping;
    }

    /** A device on a node of its own over {@code driver} (named after the device), see below. */
    public BlkDevice(String name, BlockDriver driver, BlkDeviceConfig cfg, AioContext control) {
        this(name, new BlockNode(name, driver, control), cfg, control);
    }

    /**
     * Creates the device on the control context {@code control} (its home thread must be the
     * caller's, and the node's home) and attaches it to {@code node}. Throws
     * {@link IllegalArgumentException} naming the option when {@code cfg} is invalid.
     */
    public BlkDevice(String name, BlockNode node, BlkDeviceConfig cfg, AioContext control) {
        cfg.validate();
        this.name = name;
        this.node = node;
        this.driver = node.driver();
        this.control = control;
        this.cfg = cfg;
        this.capacitySectors = BlkConfigSpace.capacitySectors(driver.length());
        int align = driver.alignment();
        this.blkSize = Math.max(cfg.logicalBlockSize, align > 512 && Integer.bitCount(align) == 1 ? align : 512);
        this.readOnly = cfg.readOnly || driver.readOnly();
        this.writeback = cfg.writeCache;
        this.deviceFeatures = FeatureOffer.offered(cfg, driver, readOnly);

        this.errors = new DeviceErrors(name, node.name(), control, cfg.events);
        int n = cfg.numQueues;
        Map<AioContext, ContextChannel> byCtx = new IdentityHashMap<>();
        for (AioContext c : cfg.ioThreads.distinctContexts(n)) {
            byCtx.put(c, new ContextChannel(c, node));
        }
        this.channels = byCtx.values().toArray(new ContextChannel[0]);
        this.queues = new BlkQueue[n];
        this.qc = new QueueControl[n];
        for (int i = 0; i < n; i++) {
            AioContext c = cfg.ioThreads.contextOf(i, n);
            queues[i] = new BlkQueue(this, i, c, byCtx.get(c), cfg);
            qc[i] = new QueueControl();
        }
        errors.queues(queues);
        this.drain = new DeviceDrain(name, control, queues, channels, this::resized, to -> {
            this.node = to;
            this.driver = to.driver();
        });
        node.attach(drain);
    }

    /**
     * The node was resized ({@link DeviceDrain#resized}, inside its drained section): the config space
     * shows the new capacity and the transport tells the driver (virtio 1.2 2.5.1; as QEMU's
     * {@code virtio_blk_resize}, also when the capacity is unchanged). Control context.
     */
    private void resized(long newLength) {
        control.assertHome();
        capacitySectors = BlkConfigSpace.capacitySectors(newLength);
        for (Runnable r : List.copyOf(configChangeListeners)) {
            r.run();
        }
    }

    public String name() {
        return name;
    }

    public BlockDriver driver() {
        return driver;
    }

    /** The node the device is attached to. Any thread. */
    public BlockNode node() {
        return node;
    }

    public AioContext controlContext() {
        return control;
    }

    /** The context queue {@code index} lives on. Any thread. */
    public AioContext queueContext(int index) {
        return queues[index].ctx;
    }

    /** Counters of queue {@code index}. Any thread (racy snapshot). */
    public BlkQueueStats queueStats(int index) {
        return queues[index].stats;
    }

    /**
     * The driver channel the queues on {@code ctx} submit to, or null when none is open (before
     * the first start, after close). Any thread: a racy read, for metrics.
     */
    public BlockChannel driverChannel(AioContext ctx) {
        for (ContextChannel c : channels) {
            if (c.ctx == ctx) {
                return c.peek();
            }
        }
        return null;
    }

    /** The guest notifier of queue {@code index}, for its counters. Any thread (racy snapshot). */
    public IrqfdNotifier notifier(int index) {
        return queues[index].notifier;
    }

    public long capacitySectors() {
        return capacitySectors;
    }

    public int blockSize() {
        return blkSize;
    }

    public boolean readOnly() {
        return readOnly;
    }

    // ---------------------------------------------------------------- VirtioDevice: features

    @Override
    public int deviceId() {
        return DEVICE_ID;
    }

    @Override
    public long deviceFeatures() {
        return deviceFeatures;
    }

    @Override
    public void setDriverFeatures(long features) {
        control.assertHome();
        long extra = features & ~deviceFeatures;
        if (extra != 0) {
            // 2.2.1: "The driver MUST NOT accept a feature which the device did not offer".
            throw new IllegalArgumentException("driver accepted feature bits the device did not offer: "
                    + VirtioFeatures.describe(extra));
        }
        for (QueueControl q : qc) {
            if (q.started) {
                throw new IllegalStateException("device " + name + ": features change while a queue runs");
            }
        }
        this.driverFeatures = features;
        if (VirtioFeatures.has(features, BlkFeatures.CONFIG_WCE) && !VirtioFeatures.has(features, BlkFeatures.FLUSH)) {
            // 5.2.5.2: "If VIRTIO_BLK_F_CONFIG_WCE is negotiated but VIRTIO_BLK_F_FLUSH is not, the
            // device MUST initialize writeback to 0."
            writeback = false;
        }
    }

    @Override
    public long driverFeatures() {
        return driverFeatures;
    }

    /**
     * Whether writes must be stable when they complete (5.2.6.2): with CONFIG_WCE negotiated, when
     * {@code writeback} is 0 (case 2); without it, when FLUSH was not negotiated either (case 1).
     * Any thread (queue threads ask per write).
     */
    boolean writeThrough() {
        long f = driverFeatures;
        if (VirtioFeatures.has(f, BlkFeatures.CONFIG_WCE)) {
            return !writeback;
        }
        return !VirtioFeatures.has(f, BlkFeatures.FLUSH);
    }

    /** The cache mode as the writeback field shows it (1 = writeback). Any thread. */
    public boolean writeback() {
        return writeback;
    }

    // ---------------------------------------------------------------- VirtioDevice: config space

    @Override
    public int numQueues() {
        return queues.length;
    }

    @Override
    public int maxQueueSize() {
        return cfg.queueSize;
    }

    @Override
    public int configSize() {
        return BlkConfigLayout.SIZE;
    }

    /** Reads configuration space; bytes past {@link #configSize()} (e.g. secure erase) read as 0. */
    @Override
    public void readConfig(int offset, byte[] dst, int length) {
        control.assertHome();
        BlkConfigSpace.read(BlkConfigSpace.encode(this, cfg), offset, dst, length);
    }

    /**
     * Accepts a write of exactly the writeback byte, 0 or 1, when VIRTIO_BLK_F_CONFIG_WCE was
     * negotiated (5.2.6.1); anything else changes nothing and returns false.
     */
    @Override
    public boolean writeConfig(int offset, byte[] src, int length) {
        control.assertHome();
        int v = BlkConfigSpace.writebackWrite(offset, src, length, driverFeatures);
        // Takes effect for writes parsed from now on; 5.2.6.2 leaves writes in flight undefined.
        if (v >= 0) {
            writeback = v == 1;
        }
        return v >= 0;
    }

    @Override
    public void onConfigChange(Runnable listener) {
        control.assertHome();
        configChangeListeners.add(listener);
    }

    // ---------------------------------------------------------------- VirtioDevice: queues

    @Override
    public void setMemory(GuestMemory m) {
        control.assertHome();
        for (int i = 0; i < qc.length; i++) {
            if (qc[i].started) {
                throw new IllegalStateException("device " + name + ": queue " + i + " still runs on the old memory map");
            }
        }
        m.retain();
        GuestMemory old = memory;
        memory = m;
        if (old != null) {
            old.release();
        }
    }

    @Override
    public void configureQueue(int index, QueueLayout layout) {
        control.assertHome();
        QueueControl q = queue(index);
        if (q.started) {
            throw new IllegalStateException("device " + name + ": queue " + index + " is running");
        }
        q.layout = layout;
    }

    @Override
    public void setQueueFds(int index, int kickFd, int callFd) {
        control.assertHome();
        QueueControl q = queue(index);
        int oldKick = q.kickFd;
        int oldCall = q.callFd;
        q.kickFd = kickFd;
        q.callFd = callFd;
        BlkQueue bq = queues[index];
        if (q.started) {
            // A running queue swaps on its own thread, then closes the old fds there.
            if (oldCall != callFd) {
                bq.ctx.runOn(() -> bq.replaceCallFd(callFd, oldCall));
            }
            if (oldKick != kickFd) {
                bq.ctx.runOn(() -> bq.replaceKickFd(kickFd, oldKick));
            }
            return;
        }
        if (oldKick >= 0 && oldKick != kickFd) {
            FileIo.close(oldKick);
        }
        if (oldCall >= 0 && oldCall != callFd) {
            FileIo.close(oldCall);
        }
    }

    @Override
    public void startQueue(int index, Runnable onStarted) {
        control.assertHome();
        checkOpen();
        QueueControl q = queue(index);
        if (q.started) {
            throw new IllegalStateException("device " + name + ": queue " + index + " already started");
        }
        if (memory == null) {
            throw new IllegalStateException("device " + name + ": no guest memory set before starting queue " + index);
        }
        if (q.layout == null) {
            throw new IllegalStateException("device " + name + ": queue " + index + " has no layout");
        }
        q.started = true;
        long f = driverFeatures;
        BlkRequestParser parser = FeatureOffer.parser(f, capacitySectors, blkSize, readOnly, driver, cfg, queues[index]);
        BlkQueue.Start start = new BlkQueue.Start(q.layout, memory.retain(), f, q.kickFd, q.callFd, parser);
        BlkQueue bq = queues[index];
        bq.ctx.runOn(() -> {
            try {
                bq.start(start);
            } finally {
                control.runOn(onStarted);
            }
        });
    }

    @Override
    public void stopQueue(int index, IntConsumer onStopped) {
        control.assertHome();
        QueueControl q = queue(index);
        if (q.stopping) {
            throw new IllegalStateException("device " + name + ": queue " + index + " is already stopping");
        }
        if (!q.started) {
            // Nothing runs: report where the queue would resume (vhost-user GET_VRING_BASE on a stopped ring).
            int next = q.layout == null ? 0 : q.layout.nextAvailIdx();
            control.runOn(() -> onStopped.accept(next));
            return;
        }
        q.stopping = true;
        BlkQueue bq = queues[index];
        bq.ctx.runOn(() -> bq.stop(next -> control.runOn(() -> {
            q.started = false;
            q.stopping = false;
            QueueLayout l = q.layout;
            // Resuming without a new layout continues where this run stopped.
            q.layout = l.withNextAvailIdx(next);
            onStopped.accept(next);
        })));
    }

    @Override
    public boolean queueStarted(int index) {
        control.assertHome();
        return queue(index).started;
    }

    @Override
    public void reset() {
        control.assertHome();
        for (int i = 0; i < qc.length; i++) {
            if (qc[i].started) {
                throw new IllegalStateException("device " + name + ": reset with queue " + i + " running; stop it first");
            }
        }
        driverFeatures = 0;
        writeback = cfg.writeCache;
        for (QueueControl q : qc) {
            q.layout = null;
            closeFds(q);
        }
        NEEDS_RESET.setVolatile(this, (String) null);
    }

    @Override
    public boolean needsReset() {
        return NEEDS_RESET.getVolatile(this) != null;
    }

    @Override
    public String needsResetReason() {
        return (String) NEEDS_RESET.getVolatile(this);
    }

    @Override
    public void onNeedsReset(Runnable listener) {
        control.assertHome();
        needsResetListeners.add(listener);
    }

    /** A queue saw a guest protocol violation: that queue stops, the device needs a reset. Queue thread. */
    void queueBroken(BlkQueue q, String reason) {
        q.ctx.assertHome();
        q.stopTaking();
        if (NEEDS_RESET.compareAndSet(this, (String) null, reason)) {
            LOG.log(System.Logger.Level.WARNING, "device " + name + " needs reset: " + reason);
            control.runOn(() -> {
                for (Runnable r : needsResetListeners) {
                    r.run();
                }
            });
        }
    }

    // ---------------------------------------------------------------- error policies

    /**
     * Resumes the device after werror / rerror = stop stopped it: each queue re-submits the requests
     * it held, in order, then takes requests again (QMP {@code cont}). Nothing when it is not stopped.
     * Any thread: hands over to the control context.
     */
    public void resume() {
        control.runOn(errors::resume);
    }

    /** Whether an I/O error stopped the device (until {@link #resume}). Any thread. */
    public boolean ioErrorStopped() {
        return errors.stopped();
    }

    /** Failed requests the device answered with {@code action} (BLOCK_IO_ERROR events sent). Any thread. */
    public long ioErrorCount(BlockErrorAction action) {
        return errors.count(action);
    }

    // ---------------------------------------------------------------- close

    /** Closes the device; every queue must be stopped. Nothing to wait for: see {@link #close(Runnable)}. */
    @Override
    public void close() {
        close(() -> { });
    }

    /**
     * Closes the device: releases each queue's slots and each context's driver channel on its own
     * thread, then the fds and the memory map; {@code onClosed} runs on the control context after.
     * The driver itself stays open (its owner closes it).
     */
    public void close(Runnable onClosed) {
        control.assertHome();
        if (closed) {
            control.runOn(onClosed);
            return;
        }
        for (int i = 0; i < qc.length; i++) {
            if (qc[i].started) {
                throw new IllegalStateException("device " + name + ": close with queue " + i + " running; stop it first");
            }
        }
        closed = true;
        node.detach(drain);
        int[] left = {channels.length};
        Runnable oneDone = () -> {
            if (--left[0] == 0) {
                for (QueueControl q : qc) {
                    closeFds(q);
                }
                if (memory != null) {
                    memory.release();
                    memory = null;
                }
                onClosed.run();
            }
        };
        for (ContextChannel ch : channels) {
            ch.ctx.runOn(() -> {
                try {
                    for (BlkQueue q : queues) {
                        if (q.ctx == ch.ctx) {
                            q.close();
                        }
                    }
                    ch.close();
                } finally {
                    control.runOn(oneDone);
                }
            });
        }
    }

    private static void closeFds(QueueControl q) {
        if (q.kickFd >= 0) {
            FileIo.close(q.kickFd);
            q.kickFd = -1;
        }
        if (q.callFd >= 0) {
            FileIo.close(q.callFd);
            q.callFd = -1;
        }
    }

    private QueueControl queue(int index) {
        if (index < 0 || index >= qc.length) {
            throw new IndexOutOfBoundsException("device " + name + " has " + qc.length + " queues, no queue " + index);
        }
        return qc[index];
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("device " + name + " is closed");
        }
    }

    @Override
    public String toString() {
        return "BlkDevice[" + name + " " + driver.kind() + " " + capacitySectors + " sectors, " + queues.length
                + " queues " + cfg.ioThreads + "]";
    }
}
