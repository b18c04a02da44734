package io.vblk.virtio.vhost.server;

import io.vblk.aio.AioContext;
import io.vblk.aio.sys.Errno;
import io.vblk.aio.sys.EventFds;
import io.vblk.aio.sys.FileIo;
import io.vblk.virtio.memory.DirtyLog;
import io.vblk.virtio.queue.InflightLog;
import io.vblk.virtio.queue.QueueLayout;
import io.vblk.virtio.queue.VirtQueue;
import io.vblk.virtio.device.VirtioDevice;
import io.vblk.virtio.memory.GuestMemory;
import io.vblk.virtio.vhost.wire.VhostUserMessage;
import io.vblk.virtio.vhost.wire.VhostUserMessageLayout;
import io.vblk.virtio.vhost.wire.VhostUserProtocolException;

import java.util.ArrayList;
import java.util.List;
import java.util.function.IntConsumer;
import java.util.stream.IntStream;

/**
 * Home thread: the session's control context. No locking.
 *
 * <p>The session's vrings and the device queues behind them: one {@link VringState} per queue of
 * the device, the guest memory map the rings are translated through, and the start / stop cycle.
 * A device queue runs while its ring is started, enabled, fully described (size, addresses inside
 * guest memory) and memory is set ({@link #startReady}); stopping goes through
 * {@link VirtioDevice#stopQueue}, which reports once the queue's in-flight requests are done.
 */
final class Vrings {
    private static final System.Logger LOG = System.getLogger(Vrings.class.getName());

    private final String name;
    private final AioContext ctx;
    private final VirtioDevice device;
    private final VringState[] rings;
    /** The map the device has, or null before the first memory table (set by {@link MemoryHandler}). */
    GuestMemory memory;
    /** The INFLIGHT_SHMFD buffer, or null (set by {@link InflightHandler}; changes only while every ring is idle). */
    InflightBuffer inflight;
    /** VHOST_USER_F_PROTOCOL_FEATURES acked with SET_FEATURES (set by {@link FeaturesHandler}). */
    boolean protocolFeaturesAcked;
    /** VHOST_F_LOG_ALL acked with SET_FEATURES: queues started now log what they write (set by {@link FeaturesHandler}). */
    boolean logAll;
    /** The dirty log SET_LOG_BASE mapped, or null (set by {@link LogHandler}; changes only while every ring is idle). */
    LogHandler.Area log;

    Vrings(String name, AioContext ctx, VirtioDevice device) {
        this.name = name;
        this.ctx = ctx;
        this.device = device;
        this.rings = new VringState[device.numQueues()];
        for (int i = 0; i < rings.length; i++) {
            rings[i] = new VringState(i);
        }
    }

    int count() {
        return rings.length;
    }

    /** The connection's name, for log lines. */
    String name() {
        return name;
    }

    VringState get(int q) {
        return rings[q];
    }

    /** The queue {@code index} names, checked against the device's queue count. */
    int queueIndex(VhostUserMessage m, long index) throws VhostUserProtocolException {
        if (index < 0 || index >= rings.length) {
            throw new VhostUserProtocolException(m.describe() + ": queue index " + index + " out of range, the device has "
                    + rings.length + " queue" + (rings.length == 1 ? "" : "s"));
        }
        return (int) index;
    }

    void requireStopped(VhostUserMessage m, int q) throws VhostUserProtocolException {
        if (rings[q].run != VringState.Run.IDLE) {
            throw new VhostUserProtocolException(m.describe() + ": queue " + q + " is running; stop it with GET_VRING_BASE first");
        }
    }

    /** "If VHOST_USER_F_PROTOCOL_FEATURES has not been negotiated, the ring starts directly in the enabled state." */
    boolean enabled(VringState r) {
        return r.enabled || !protocolFeaturesAcked;
    }

    /** Starts every ring that is ready and idle. */
    void startReady() throws VhostUserProtocolException {
        for (VringState r : rings) {
            if (r.run != VringState.Run.IDLE || !r.kicked || !enabled(r) || !r.described() || memory == null) {
                continue;
            }
            QueueLayout l = layout(r);
            int kick = dupFd(r.index, r.kickFd);
            int call;
            try {
                call = dupFd(r.index, r.callFd);
            } catch (VhostUserProtocolException e) {
                VringState.closeFd(kick);
                throw e;
            }
            device.configureQueue(r.index, l);
            device.setQueueFds(r.index, kick, call);
            r.run = VringState.Run.RUNNING;
            int q = r.index;
            device.startQueue(q, () -> LOG.log(System.Logger.Level.DEBUG, () -> name + ": queue " + q + " started"));
        }
    }

    /** Hands a running ring's queue copies of the session's current kick and call fds (SET_VRING_KICK / CALL). */
    void replaceFds(VringState r) throws VhostUserProtocolException {
        int kick = dupFd(r.index, r.kickFd);
        int call;
        try {
            call = dupFd(r.index, r.callFd);
        } catch (VhostUserProtocolException e) {
            VringState.closeFd(kick);
            throw e;
        }
        device.setQueueFds(r.index, kick, call);
    }

    /** Translates the ring's front-end addresses into guest-physical ones, checking size and alignment. */
    private QueueLayout layout(VringState r) throws VhostUserProtocolException {
        int n = r.size;
        if (VirtQueue.packed(device.driverFeatures())) {
            // Virtio 1.2 2.8.10.1: descriptor ring 16*n bytes, 16-aligned; driver and device event
            // suppression 4 bytes each, 4-aligned.
            long ring = gpa(r.index, "descriptor ring", r.addr.desc(), 16L * n, 16);
            long driver = gpa(r.index, "driver event suppression", r.addr.avail(), 4, 4);
            long dev = gpa(r.index, "device event suppression", r.addr.used(), 4, 4);
            return new QueueLayout(n, ring, driver, dev, r.base, inflightLog(r));
        }
        // Virtio 1.x 2.7: descriptor table 16*n bytes, 16-aligned; driver area 6+2n, 2-aligned;
        // device area 6+8n, 4-aligned (with the event-index fields).
        long desc = gpa(r.index, "descriptor table", r.addr.desc(), 16L * n, 16);
        long avail = gpa(r.index, "available ring", r.addr.avail(), 6L + 2L * n, 2);
        long used = gpa(r.index, "used ring", r.addr.used(), 6L + 8L * n, 4);
        return new QueueLayout(n, desc, avail, used, r.base, inflightLog(r), dirtyLog(r, used));
    }

    /**
     * Ring {@code r}'s dirty log while VHOST_F_LOG_ALL is on and a log is set, else null. With
     * VHOST_VRING_F_LOG its used-ring writes are logged at {@code log_guest_addr} ("the back-end
     * should log used ring updates" there), which must lie in guest memory.
     */
    private DirtyLog dirtyLog(VringState r, long usedGpa) throws VhostUserProtocolException {
        if (!logAll || log == null) {
            return null;
        }
        DirtyLog d;
        try {
            d = DirtyLog.of(log.bitmap(), memory);
        } catch (IllegalArgumentException e) {
            throw new VhostUserProtocolException("queue " + r.index + ": " + e.getMessage());
        }
        if ((r.addr.flags() & VhostUserMessageLayout.VRING_F_LOG) == 0) {
            return d;
        }
        long at = r.addr.log();
        if (memory.regionIndex(at, 6L + 8L * r.size) < 0) {
            throw new VhostUserProtocolException("queue " + r.index + ": used-ring log address 0x" + Long.toHexString(at)
                    + " is not inside guest memory (the ring is at 0x" + Long.toHexString(usedGpa) + ")");
        }
        return d.forUsedRing(at);
    }

    /** Whether the driver negotiated packed rings (VIRTIO_F_RING_PACKED). */
    boolean packed() {
        return VirtQueue.packed(device.driverFeatures());
    }

    /** Ring {@code r}'s region of the inflight buffer, when there is one that fits the ring. */
    private InflightLog inflightLog(VringState r) throws VhostUserProtocolException {
        InflightBuffer b = inflight;
        if (b == null || r.index >= b.numQueues()) {
            return InflightLog.NONE;
        }
        if (b.packed() != VirtQueue.packed(device.driverFeatures())) {
            throw new VhostUserProtocolException("queue " + r.index + ": the inflight buffer is laid out for "
                    + (b.packed() ? "packed" : "split") + " rings, the driver negotiated the other kind");
        }
        if (b.queueSize() != r.size) {
            throw new VhostUserProtocolException("queue " + r.index + ": size " + r.size + " but the inflight buffer was"
                    + " laid out for queues of " + b.queueSize());
        }
        return b.record(r.index);
    }

    private long gpa(int q, String what, long uaddr, long len, int align) throws VhostUserProtocolException {
        long g = memory.userToGpa(uaddr, len);
        if (g < 0) {
            throw new VhostUserProtocolException("queue " + q + ": " + what + " at user address 0x" + Long.toHexString(uaddr)
                    + " (" + len + " bytes) is not inside guest memory");
        }
        if ((g & (align - 1)) != 0) {
            throw new VhostUserProtocolException("queue " + q + ": " + what + " at guest address 0x" + Long.toHexString(g)
                    + " is not " + align + "-byte aligned");
        }
        return g;
    }

    private static int dupFd(int q, int fd) throws VhostUserProtocolException {
        if (fd < 0) {
            return -1;
        }
        int d = FileIo.dup(fd);
        if (d < 0) {
            throw new VhostUserProtocolException("queue " + q + ": dup of fd " + fd + " failed: " + Errno.name(-d));
        }
        return d;
    }

    // ---------------------------------------------------------------- stopping

    int[] all() {
        return IntStream.range(0, rings.length).toArray();
    }

    int[] active() {
        return IntStream.range(0, rings.length).filter(i -> rings[i].run != VringState.Run.IDLE).toArray();
    }

    /** Stops ring {@code q} (if it runs) and then calls {@code after} with its next avail index. */
    void stop(int q, IntConsumer after) {
        VringState r = rings[q];
        if (r.run == VringState.Run.IDLE) {
            after.accept(r.base);
            return;
        }
        r.stopWaiters.add(after);
        if (r.run == VringState.Run.RUNNING) {
            r.run = VringState.Run.STOPPING;
            device.stopQueue(q, next -> onStopped(q, next));
        }
    }

    private void onStopped(int q, int next) {
        ctx.assertHome();
        VringState r = rings[q];
        r.run = VringState.Run.IDLE;
        // A split ring reports a 16-bit avail index; a packed ring both halves (vhost-user.rst).
        r.base = VirtQueue.packed(device.driverFeatures()) ? next : next & 0xffff;
        List<IntConsumer> waiters = new ArrayList<>(r.stopWaiters);
        r.stopWaiters.clear();
        for (IntConsumer w : waiters) {
            w.accept(r.base);
        }
    }

    /** The device entered NEEDS_RESET: signal every error eventfd (SET_VRING_ERR, "to signal when error occurs"). */
    void signalErrors() {
        for (VringState r : rings) {
            if (r.errFd >= 0) {
                EventFds.eventfdWrite(r.errFd, 1);
            }
        }
    }

    /** Every ring back to a new session's state (device reset), keeping each next avail index when {@code keepBases}. */
    void resetAll(boolean keepBases) {
        for (VringState r : rings) {
            int base = r.base;
            r.reset();
            if (keepBases) {
                r.base = base;
            }
        }
    }

    void closeFds() {
        for (VringState r : rings) {
            r.closeFds();
        }
    }
}
