package io.vblk.virtio.vhost.server;

import io.vblk.aio.AioContext;
import io.vblk.aio.sys.Errno;
import io.vblk.aio.sys.Sys;
import io.vblk.virtio.device.QueueLayout;
import io.vblk.virtio.device.VirtioDevice;
import io.vblk.virtio.memory.GuestMemory;
import io.vblk.virtio.vhost.wire.VhostUserCodec;
import io.vblk.virtio.vhost.wire.VhostUserCodec.ConfigSpace;
import io.vblk.virtio.vhost.wire.VhostUserCodec.Inflight;
import io.vblk.virtio.vhost.wire.VhostUserCodec.MemRegion;
import io.vblk.virtio.vhost.wire.VhostUserCodec.VringAddr;
import io.vblk.virtio.vhost.wire.VhostUserCodec.VringState;
import io.vblk.virtio.vhost.wire.VhostUserMessage;
import io.vblk.virtio.vhost.wire.VhostUserMessageLayout;
import io.vblk.virtio.vhost.wire.VhostUserProtocolException;
import io.vblk.virtio.vhost.wire.VhostUserRequest;

import java.util.ArrayList;
import java.util.List;
import java.util.function.IntConsumer;

import static io.vblk.virtio.vhost.wire.VhostUserProtocolFeature.CONFIG;
import static io.vblk.virtio.vhost.wire.VhostUserProtocolFeature.CONFIGURE_MEM_SLOTS;
import static io.vblk.virtio.vhost.wire.VhostUserProtocolFeature.F_PROTOCOL_FEATURES;
import static io.vblk.virtio.vhost.wire.VhostUserProtocolFeature.INFLIGHT_SHMFD;
import static io.vblk.virtio.vhost.wire.VhostUserProtocolFeature.MQ;
import static io.vblk.virtio.vhost.wire.VhostUserProtocolFeature.REPLY_ACK;
import static io.vblk.virtio.vhost.wire.VhostUserProtocolFeature.RESET_DEVICE;
import static io.vblk.virtio.vhost.wire.VhostUserProtocolFeature.STATUS;
import static io.vblk.virtio.vhost.wire.VhostUserProtocolFeature.bit;
import static io.vblk.virtio.vhost.wire.VhostUserProtocolFeature.describe;
import static io.vblk.virtio.vhost.wire.VhostUserProtocolFeature.has;

/**
 * Home thread: the control context the device lives on (the connection's). No locking.
 *
 * <p>The back-end side of one vhost-user session: applies each front-end message to a device it
 * knows only as a {@link VirtioDevice} (STYLE rule 8; no socket here, see
 * {@link io.vblk.virtio.vhost.socket.VhostUserConnection}). It checks every message before it
 * changes anything: queue indexes, ring sizes and addresses, region geometry, the fds a message
 * must and must not carry, feature bits that were not offered. A violation is a
 * {@link VhostUserProtocolException} naming it, and the connection closes.
 *
 * <p>Ring states (vhost-user.rst "Ring states"): a ring is <em>started</em> by SET_VRING_KICK
 * and stopped by GET_VRING_BASE; it is <em>enabled</em> by SET_VRING_ENABLE, or from the start
 * when VHOST_USER_F_PROTOCOL_FEATURES was not negotiated. The device queue runs while a ring is
 * started, enabled, fully described (size, addresses inside guest memory) and memory is set. A
 * change the running queue cannot take in place (new memory table, new ring address or fds,
 * disable, reset) first stops the queue through {@link VirtioDevice#stopQueue}, which reports
 * once its in-flight requests are done; until then the message is <em>pending</em>:
 * {@link #handle} returned false, the connection reads nothing more, and the handler later
 * sends the reply (or REPLY_ACK) and calls {@link Channel#resume()}. The loop never blocks.
 */
public final class VhostUserDeviceHandler {
    private static final System.Logger LOG = System.getLogger(VhostUserDeviceHandler.class.getName());

    /** What the handler needs of its connection. Home thread. */
    public interface Channel {
        /** Sends a reply now. */
        void send(VhostUserMessage reply);

        /** A pending message has finished: read and handle the next one. */
        void resume();

        /** Closes the connection, logging {@code reason} once. */
        void fail(String reason);
    }

    /**
     * Protocol features offered: MQ, REPLY_ACK, CONFIG, INFLIGHT_SHMFD, RESET_DEVICE,
     * CONFIGURE_MEM_SLOTS, STATUS (bits 0, 3, 9, 12, 13, 15, 16).
     */
    public static final long OFFERED_PROTOCOL_FEATURES = bit(MQ) | bit(REPLY_ACK) | bit(CONFIG) | bit(INFLIGHT_SHMFD)
            | bit(RESET_DEVICE) | bit(CONFIGURE_MEM_SLOTS) | bit(STATUS);

    /** GET_MAX_MEM_SLOTS: regions ADD_MEM_REG may build up (libvhost-user offers the same 32). */
    public static final int MAX_MEM_SLOTS = 32;

    /** Virtio device status bits (virtio 1.x 2.1). */
    static final int STATUS_FEATURES_OK = 8;
    static final int STATUS_NEEDS_RESET = 64;

    private enum RingState { IDLE, RUNNING, STOPPING }

    /** One vring as the front-end described it. */
    private static final class Ring {
        int size;
        VringAddr addr;
        /** Next avail index to process: from SET_VRING_BASE, then from each stop. */
        int base;
        int kickFd = -1;
        int callFd = -1;
        int errFd = -1;
        /** SET_VRING_KICK seen since the last stop ("started"); with VRING_NOFD, kickFd stays -1. */
        boolean kicked;
        boolean enabled;
        RingState state = RingState.IDLE;
        final List<IntConsumer> stopWaiters = new ArrayList<>(2);
    }

    /** A step that completes a pending message; returns the reply to send, or null for "ack if asked". */
    @FunctionalInterface
    private interface Finish {
        VhostUserMessage run() throws VhostUserProtocolException;
    }

    private final String name;
    private final AioContext ctx;
    private final VirtioDevice device;
    private final Channel channel;
    private final Ring[] rings;

    private long ackedFeatures;
    private long protocolFeatures;
    private int status;
    private MemoryTable table = MemoryTable.empty();
    /** The handler's reference to the map the device has, or null before the first memory table. */
    private GuestMemory memory;
    private InflightBuffer inflight;
    private boolean pending;
    private boolean closed;

    /**
     * @param name    the export's name, for log lines
     * @param ctx     the control context the device lives on
     */
    public VhostUserDeviceHandler(String name, AioContext ctx, VirtioDevice device, Channel channel) {
        this.name = name;
        this.ctx = ctx;
        this.device = device;
        this.channel = channel;
        this.rings = new Ring[device.numQueues()];
        for (int i = 0; i < rings.length; i++) {
            rings[i] = new Ring();
        }
    }

    /** True while a message waits for the device (queues stopping). */
    public boolean pending() {
        return pending;
    }

    public long protocolFeatures() {
        return protocolFeatures;
    }

    /** Whether queue {@code q}'s device queue is running (tests, diagnostics). */
    public boolean ringRunning(int q) {
        return rings[q].state == RingState.RUNNING;
    }

    // ---------------------------------------------------------------- dispatch

    /**
     * Handles one message. Returns true when it is finished (any reply sent), false when it is
     * pending. The message's fds are consumed: handed on, or closed, also on a protocol error.
     */
    public boolean handle(VhostUserMessage m) throws VhostUserProtocolException {
        ctx.assertHome();
        if (pending || closed) {
            closeAll(m.fds());
            throw new IllegalStateException(name + ": " + m.describe() + " handed over while "
                    + (closed ? "closed" : "a message is pending"));
        }
        Fds fds = new Fds(m);
        try {
            return dispatch(m, fds);
        } finally {
            fds.closeUntaken();
        }
    }

    private boolean dispatch(VhostUserMessage m, Fds fds) throws VhostUserProtocolException {
        VhostUserRequest r = m.kind();
        if (r == null) {
            throw new VhostUserProtocolException("unknown request " + Integer.toUnsignedString(m.request()));
        }
        if (!r.served) {
            throw new VhostUserProtocolException(r.describe() + " is not supported by vblk (no feature that allows it"
                    + " was offered)");
        }
        switch (r) {
            case GET_FEATURES -> {
                fds.expect(0);
                return reply(m, VhostUserCodec.u64(offeredFeatures()));
            }
            case SET_FEATURES -> {
                fds.expect(0);
                return setFeatures(m, VhostUserCodec.decodeU64(m));
            }
            case GET_PROTOCOL_FEATURES -> {
                fds.expect(0);
                return reply(m, VhostUserCodec.u64(OFFERED_PROTOCOL_FEATURES));
            }
            case SET_PROTOCOL_FEATURES -> {
                fds.expect(0);
                long f = VhostUserCodec.decodeU64(m);
                if ((f & ~OFFERED_PROTOCOL_FEATURES) != 0) {
                    throw new VhostUserProtocolException(r.describe() + ": protocol features "
                            + describe(f & ~OFFERED_PROTOCOL_FEATURES) + " were not offered (offered: "
                            + describe(OFFERED_PROTOCOL_FEATURES) + ")");
                }
                protocolFeatures = f;
                return ack(m, true);
            }
            case SET_OWNER -> {
                fds.expect(0);
                return ack(m, true);
            }
            case RESET_OWNER -> {
                // Deprecated; vhost-user.rst recommends "use it to disable all rings".
                fds.expect(0);
                return stopThen(m, allRings(), () -> {
                    for (Ring ring : rings) {
                        ring.enabled = false;
                        ring.kicked = false;
                    }
                    return null;
                }, null);
            }
            case GET_QUEUE_NUM -> {
                fds.expect(0);
                return reply(m, VhostUserCodec.u64(device.numQueues()));
            }
            case GET_MAX_MEM_SLOTS -> {
                fds.expect(0);
                return reply(m, VhostUserCodec.u64(MAX_MEM_SLOTS));
            }
            case SET_MEM_TABLE -> {
                return setMemTable(m, fds);
            }
            case ADD_MEM_REG -> {
                return addMemReg(m, fds);
            }
            case REM_MEM_REG -> {
                return remMemReg(m, fds);
            }
            case SET_VRING_NUM -> {
                fds.expect(0);
                return setVringNum(m);
            }
            case SET_VRING_BASE -> {
                fds.expect(0);
                return setVringBase(m);
            }
            case SET_VRING_ADDR -> {
                fds.expect(0);
                return setVringAddr(m);
            }
            case GET_VRING_BASE -> {
                fds.expect(0);
                return getVringBase(m);
            }
            case SET_VRING_KICK, SET_VRING_CALL, SET_VRING_ERR -> {
                return setVringFd(m, fds);
            }
            case SET_VRING_ENABLE -> {
                fds.expect(0);
                return setVringEnable(m);
            }
            case GET_CONFIG -> {
                fds.expect(0);
                return getConfig(m);
            }
            case SET_CONFIG -> {
                fds.expect(0);
                return setConfig(m);
            }
            case GET_INFLIGHT_FD -> {
                fds.expect(0);
                return getInflightFd(m);
            }
            case SET_INFLIGHT_FD -> {
                return setInflightFd(m, fds);
            }
            case RESET_DEVICE -> {
                fds.expect(0);
                return stopThen(m, allRings(), () -> {
                    resetDevice();
                    return null;
                }, null);
            }
            case SET_STATUS -> {
                fds.expect(0);
                long s = VhostUserCodec.decodeU64(m);
                if (s < 0 || s > 0xff) {
                    throw new VhostUserProtocolException(r.describe() + ": status 0x" + Long.toHexString(s)
                            + " is not a virtio status byte");
                }
                if (s == 0) {
                    // Virtio 1.x 2.1: "Writing 0 into this field resets the device."
                    return stopThen(m, allRings(), () -> {
                        resetDevice();
                        return null;
                    }, null);
                }
                status = (int) s;
                return ack(m, true);
            }
            case GET_STATUS -> {
                fds.expect(0);
                return reply(m, VhostUserCodec.u64(status | (device.needsReset() ? STATUS_NEEDS_RESET : 0)));
            }
            default -> throw new VhostUserProtocolException(r.describe() + " is not served");
        }
    }

    // ---------------------------------------------------------------- features

    private long offeredFeatures() {
        return device.deviceFeatures() | bit(F_PROTOCOL_FEATURES);
    }

    private boolean setFeatures(VhostUserMessage m, long f) throws VhostUserProtocolException {
        long offered = offeredFeatures();
        if ((f & ~offered) != 0) {
            throw new VhostUserProtocolException(m.describe() + ": feature bits 0x" + Long.toHexString(f & ~offered)
                    + " were not offered (offered 0x" + Long.toHexString(offered) + ")");
        }
        if (f == ackedFeatures && (f & ~bit(F_PROTOCOL_FEATURES)) == device.driverFeatures()) {
            // QEMU sends the features again at every device start; nothing changes.
            return ack(m, true);
        }
        // The device takes new features only with its queues stopped; running rings restart after.
        return stopThen(m, activeRings(), () -> {
            try {
                device.setDriverFeatures(f & ~bit(F_PROTOCOL_FEATURES));
            } catch (IllegalArgumentException e) {
                throw new VhostUserProtocolException(m.describe() + ": " + e.getMessage());
            }
            ackedFeatures = f;
            startReady();
            return null;
        }, null);
    }

    /** "If VHOST_USER_F_PROTOCOL_FEATURES has not been negotiated, the ring starts directly in the enabled state." */
    private boolean enabled(Ring r) {
        return r.enabled || (ackedFeatures & bit(F_PROTOCOL_FEATURES)) == 0;
    }

    // ---------------------------------------------------------------- memory

    private boolean setMemTable(VhostUserMessage m, Fds fds) throws VhostUserProtocolException {
        List<MemRegion> regions = VhostUserCodec.decodeMemTable(m);
        if (fds.count() != regions.size()) {
            throw new VhostUserProtocolException(m.describe() + ": " + regions.size() + " regions but " + fds.count()
                    + " fds (\"The size and ordering of the fds matches the number and ordering of memory regions\")");
        }
        for (MemRegion d : regions) {
            MappedRegion.check(d);
        }
        List<MappedRegion> mapped = new ArrayList<>(regions.size());
        try {
            for (int i = 0; i < regions.size(); i++) {
                mapped.add(MappedRegion.map(regions.get(i), fds.take(i)));
            }
        } catch (VhostUserProtocolException e) {
            mapped.forEach(MappedRegion::release);
            throw e;
        }
        return replaceMemory(m, MemoryTable.of(mapped));
    }

    private boolean addMemReg(VhostUserMessage m, Fds fds) throws VhostUserProtocolException {
        MemRegion d = VhostUserCodec.decodeMemReg(m);
        fds.expect(1);
        MappedRegion.check(d);
        if (table.size() >= MAX_MEM_SLOTS) {
            throw new VhostUserProtocolException(m.describe() + ": all " + MAX_MEM_SLOTS + " memory slots are in use");
        }
        MappedRegion r = MappedRegion.map(d, fds.take(0));
        return replaceMemory(m, table.plus(r));
    }

    private boolean remMemReg(VhostUserMessage m, Fds fds) throws VhostUserProtocolException {
        MemRegion d = VhostUserCodec.decodeMemReg(m);
        // "No file descriptors SHOULD be passed ... the back-end MAY accept messages with one file
        // descriptor. If a file descriptor is passed, the back-end MUST close it" (Fds closes it).
        if (fds.count() > 1) {
            throw new VhostUserProtocolException(m.describe() + ": " + fds.count() + " fds, at most 1 is tolerated");
        }
        MemoryTable next = table.minus(d);
        if (next == null) {
            throw new VhostUserProtocolException(m.describe() + ": no region " + d.describe() + " to remove");
        }
        return replaceMemory(m, next);
    }

    /**
     * Installs {@code next} (its references move in): builds the guest memory map (overlapping
     * regions are rejected before any queue is touched), stops the running queues, gives the
     * device the new map, and restarts the queues with their addresses translated anew.
     */
    private boolean replaceMemory(VhostUserMessage m, MemoryTable next) throws VhostUserProtocolException {
        GuestMemory g;
        try {
            g = next.toGuestMemory();
        } catch (VhostUserProtocolException e) {
            next.release();
            throw new VhostUserProtocolException(m.describe() + ": " + e.getMessage());
        }
        return stopThen(m, activeRings(), () -> {
            device.setMemory(g);
            if (memory != null) {
                memory.release();
            }
            memory = g;
            table.release();
            table = next;
            startReady();
            return null;
        }, () -> {
            g.release();
            next.release();
        });
    }

    // ---------------------------------------------------------------- rings

    private int queueIndex(VhostUserMessage m, long index) throws VhostUserProtocolException {
        if (index < 0 || index >= rings.length) {
            throw new VhostUserProtocolException(m.describe() + ": queue index " + index + " out of range, the device has "
                    + rings.length + " queue" + (rings.length == 1 ? "" : "s"));
        }
        return (int) index;
    }

    private boolean setVringNum(VhostUserMessage m) throws VhostUserProtocolException {
        VringState s = VhostUserCodec.decodeVringState(m);
        int q = queueIndex(m, Integer.toUnsignedLong(s.index()));
        int max = device.maxQueueSize();
        // Virtio 1.x 2.7: "Queue Size value is always a power of 2. The maximum Queue Size value is 32768."
        if (s.num() <= 0 || s.num() > max || Integer.bitCount(s.num()) != 1) {
            throw new VhostUserProtocolException(m.describe() + ": queue " + q + " size " + Integer.toUnsignedString(s.num())
                    + " is not a power of two up to " + max);
        }
        requireStopped(m, q);
        rings[q].size = s.num();
        return ack(m, true);
    }

    private boolean setVringBase(VhostUserMessage m) throws VhostUserProtocolException {
        VringState s = VhostUserCodec.decodeVringState(m);
        int q = queueIndex(m, Integer.toUnsignedLong(s.index()));
        // A split ring's avail index is 16 bits; larger values would carry packed-ring wrap counters.
        if (s.num() < 0 || s.num() > 0xffff) {
            throw new VhostUserProtocolException(m.describe() + ": queue " + q + " base " + Integer.toUnsignedString(s.num())
                    + " is not a 16-bit split-ring index");
        }
        requireStopped(m, q);
        rings[q].base = s.num();
        return ack(m, true);
    }

    private void requireStopped(VhostUserMessage m, int q) throws VhostUserProtocolException {
        if (rings[q].state != RingState.IDLE) {
            throw new VhostUserProtocolException(m.describe() + ": queue " + q + " is running; stop it with GET_VRING_BASE first");
        }
    }

    private boolean setVringAddr(VhostUserMessage m) throws VhostUserProtocolException {
        VringAddr a = VhostUserCodec.decodeVringAddr(m);
        int q = queueIndex(m, Integer.toUnsignedLong(a.index()));
        if ((a.flags() & VhostUserMessageLayout.VRING_F_LOG) != 0) {
            throw new VhostUserProtocolException(m.describe() + ": queue " + q
                    + " asks for dirty logging (VHOST_VRING_F_LOG), which was not offered");
        }
        Ring r = rings[q];
        if (r.state == RingState.IDLE) {
            r.addr = a;
            startReady();
            return ack(m, true);
        }
        return stopThen(m, new int[]{q}, () -> {
            r.addr = a;
            startReady();
            return null;
        }, null);
    }

    private boolean getVringBase(VhostUserMessage m) throws VhostUserProtocolException {
        VringState s = VhostUserCodec.decodeVringState(m);
        int q = queueIndex(m, Integer.toUnsignedLong(s.index()));
        Ring r = rings[q];
        return stopThen(m, new int[]{q}, () -> {
            // "stop ring upon receiving VHOST_USER_GET_VRING_BASE": a new SET_VRING_KICK starts it again.
            r.kicked = false;
            r.kickFd = closeFd(r.kickFd);
            r.callFd = closeFd(r.callFd);
            return VhostUserMessage.reply(m.request(), VhostUserCodec.vringState(q, r.base));
        }, null);
    }

    private boolean setVringFd(VhostUserMessage m, Fds fds) throws VhostUserProtocolException {
        long u = VhostUserCodec.decodeU64(m);
        if ((u & ~(VhostUserMessageLayout.VRING_IDX_MASK | VhostUserMessageLayout.VRING_NOFD)) != 0) {
            throw new VhostUserProtocolException(m.describe() + ": reserved bits set in 0x" + Long.toHexString(u));
        }
        int q = queueIndex(m, u & VhostUserMessageLayout.VRING_IDX_MASK);
        boolean nofd = (u & VhostUserMessageLayout.VRING_NOFD) != 0;
        int fd;
        if (nofd) {
            // "This flag is set when there is no file descriptor in the ancillary data"; one sent anyway is closed.
            fd = -1;
        } else {
            if (fds.count() != 1) {
                throw new VhostUserProtocolException(m.describe() + ": queue " + q + " without VRING_NOFD needs 1 fd, got "
                        + fds.count());
            }
            fd = fds.take(0);
        }
        Ring r = rings[q];
        VhostUserRequest kind = m.kind();
        if (kind == VhostUserRequest.SET_VRING_ERR) {
            closeFd(r.errFd);
            r.errFd = fd;
            return ack(m, true);
        }
        Finish apply = () -> {
            if (kind == VhostUserRequest.SET_VRING_KICK) {
                closeFd(r.kickFd);
                r.kickFd = fd;
                r.kicked = true;
            } else {
                closeFd(r.callFd);
                r.callFd = fd;
            }
            startReady();
            return null;
        };
        if (r.state == RingState.IDLE) {
            apply.run();
            return ack(m, true);
        }
        // The running queue holds its own copies of the fds; it restarts with the new one.
        return stopThen(m, new int[]{q}, apply, () -> closeFd(fd));
    }

    private boolean setVringEnable(VhostUserMessage m) throws VhostUserProtocolException {
        VringState s = VhostUserCodec.decodeVringState(m);
        int q = queueIndex(m, Integer.toUnsignedLong(s.index()));
        if (s.num() != 0 && s.num() != 1) {
            throw new VhostUserProtocolException(m.describe() + ": queue " + q + " enable value " + s.num() + ", expected 0 or 1");
        }
        Ring r = rings[q];
        if (s.num() == 1) {
            r.enabled = true;
            startReady();
            return ack(m, true);
        }
        return stopThen(m, new int[]{q}, () -> {
            r.enabled = false;
            return null;
        }, null);
    }

    /** Starts every ring that is ready and idle. */
    private void startReady() throws VhostUserProtocolException {
        for (int q = 0; q < rings.length; q++) {
            Ring r = rings[q];
            if (r.state != RingState.IDLE || !r.kicked || !enabled(r) || r.size == 0 || r.addr == null || memory == null) {
                continue;
            }
            QueueLayout l = layout(q, r);
            int kick = dupFd(q, r.kickFd);
            int call;
            try {
                call = dupFd(q, r.callFd);
            } catch (VhostUserProtocolException e) {
                closeFd(kick);
                throw e;
            }
            device.configureQueue(q, l);
            device.setQueueFds(q, kick, call);
            r.state = RingState.RUNNING;
            final int index = q;
            device.startQueue(q, () -> LOG.log(System.Logger.Level.DEBUG, () -> name + ": queue " + index + " started"));
        }
    }

    /** Translates the ring's front-end addresses into guest-physical ones, checking size and alignment. */
    private QueueLayout layout(int q, Ring r) throws VhostUserProtocolException {
        int n = r.size;
        // Virtio 1.x 2.7: descriptor table 16*n bytes, 16-aligned; driver area 6+2n, 2-aligned;
        // device area 6+8n, 4-aligned (with the event-index fields).
        long desc = gpa(q, "descriptor table", r.addr.desc(), 16L * n, 16);
        long avail = gpa(q, "available ring", r.addr.avail(), 6L + 2L * n, 2);
        long used = gpa(q, "used ring", r.addr.used(), 6L + 8L * n, 4);
        return new QueueLayout(n, desc, avail, used, r.base);
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

    private int dupFd(int q, int fd) throws VhostUserProtocolException {
        if (fd < 0) {
            return -1;
        }
        int d = Sys.dup(fd);
        if (d < 0) {
            throw new VhostUserProtocolException("queue " + q + ": dup of fd " + fd + " failed: " + Errno.name(-d));
        }
        return d;
    }

    // ---------------------------------------------------------------- stopping queues

    private int[] allRings() {
        int[] a = new int[rings.length];
        for (int i = 0; i < a.length; i++) {
            a[i] = i;
        }
        return a;
    }

    private int[] activeRings() {
        return java.util.stream.IntStream.range(0, rings.length).filter(i -> rings[i].state != RingState.IDLE).toArray();
    }

    /** Stops ring {@code q} (if it runs) and then calls {@code after} with its next avail index. */
    private void stopRing(int q, IntConsumer after) {
        Ring r = rings[q];
        if (r.state == RingState.IDLE) {
            after.accept(r.base);
            return;
        }
        r.stopWaiters.add(after);
        if (r.state == RingState.RUNNING) {
            r.state = RingState.STOPPING;
            device.stopQueue(q, next -> onStopped(q, next));
        }
    }

    private void onStopped(int q, int next) {
        ctx.assertHome();
        Ring r = rings[q];
        r.state = RingState.IDLE;
        r.base = next & 0xffff;
        List<IntConsumer> waiters = new ArrayList<>(r.stopWaiters);
        r.stopWaiters.clear();
        for (IntConsumer w : waiters) {
            w.accept(r.base);
        }
    }

    /**
     * Stops {@code queues}, then runs {@code finish} and replies (its reply, or the REPLY_ACK when
     * asked). Returns true when that all happened at once (no queue was running), false when the
     * message is pending; then the reply and {@link Channel#resume()} follow from the device's
     * callbacks. If the connection closes meanwhile, {@code abandon} (if any) runs instead.
     */
    private boolean stopThen(VhostUserMessage m, int[] queues, Finish finish, Runnable abandon)
            throws VhostUserProtocolException {
        int[] left = {queues.length + 1}; // +1: nothing completes before every stop was asked for
        boolean[] async = {false};
        Runnable complete = () -> {
            if (closed) {
                if (abandon != null) {
                    abandon.run();
                }
                return;
            }
            try {
                VhostUserMessage reply = finish.run();
                pending = false;
                if (reply != null) {
                    channel.send(reply);
                } else {
                    ack(m, true);
                }
                if (async[0]) {
                    channel.resume();
                }
            } catch (VhostUserProtocolException e) {
                pending = false;
                if (!async[0]) {
                    throw new Rethrow(e);
                }
                channel.fail("malformed message: " + e.getMessage());
            } catch (RuntimeException e) {
                pending = false;
                if (!async[0]) {
                    throw e;
                }
                LOG.log(System.Logger.Level.ERROR, name + ": completing " + m.describe() + " failed", e);
                channel.fail("internal error completing " + m.describe() + ": " + e);
            }
        };
        IntConsumer down = ignored -> {
            if (--left[0] == 0) {
                complete.run();
            }
        };
        pending = true;
        for (int q : queues) {
            stopRing(q, down);
        }
        try {
            down.accept(0);
        } catch (Rethrow e) {
            throw e.cause;
        }
        if (!pending) {
            return true;
        }
        async[0] = true;
        return false;
    }

    /** Carries a protocol error out of a synchronous completion. */
    private static final class Rethrow extends RuntimeException {
        final VhostUserProtocolException cause;

        Rethrow(VhostUserProtocolException cause) {
            super(null, null, false, false);
            this.cause = cause;
        }
    }

    private void resetDevice() {
        device.reset();
        for (Ring r : rings) {
            r.kickFd = closeFd(r.kickFd);
            r.callFd = closeFd(r.callFd);
            r.errFd = closeFd(r.errFd);
            r.size = 0;
            r.addr = null;
            r.base = 0;
            r.kicked = false;
            r.enabled = false;
        }
        ackedFeatures = 0;
        status = 0;
    }

    // ---------------------------------------------------------------- config space

    private boolean getConfig(VhostUserMessage m) throws VhostUserProtocolException {
        ConfigSpace c = VhostUserCodec.decodeConfig(m);
        long end = Integer.toUnsignedLong(c.offset()) + c.size();
        if (end > VhostUserMessageLayout.MAX_CONFIG_BYTES) {
            // "vhost-user back-end uses zero length of payload to indicate an error".
            LOG.log(System.Logger.Level.WARNING, () -> name + ": " + m.describe() + " of " + c.size() + " bytes at offset "
                    + Integer.toUnsignedString(c.offset()) + " is beyond the config space; replying with an error");
            return reply(m, new byte[0]);
        }
        byte[] data = new byte[c.size()];
        // Bytes past the device's config space read as zero: a front-end with a newer, longer
        // virtio_blk_config sees the fields of features that were not offered as 0.
        int have = (int) Math.max(0, Math.min(c.size(), device.configSize() - (long) c.offset()));
        if (have > 0) {
            byte[] tmp = new byte[have];
            device.readConfig(c.offset(), tmp, have);
            System.arraycopy(tmp, 0, data, 0, have);
        }
        return reply(m, VhostUserCodec.config(c.offset(), c.flags(), data));
    }

    private boolean setConfig(VhostUserMessage m) throws VhostUserProtocolException {
        ConfigSpace c = VhostUserCodec.decodeConfig(m);
        long end = Integer.toUnsignedLong(c.offset()) + c.size();
        boolean ok = end <= device.configSize() && device.writeConfig(c.offset(), c.data(), c.size());
        if (!ok) {
            // Not a protocol error: the guest wrote a field that is not writable. Refused, logged, acked as failed.
            LOG.log(System.Logger.Level.WARNING, () -> name + ": " + m.describe() + " of " + c.size() + " bytes at offset "
                    + Integer.toUnsignedString(c.offset()) + " refused: only device-writable fields may change");
        }
        return ack(m, ok);
    }

    // ---------------------------------------------------------------- inflight buffer

    private boolean getInflightFd(VhostUserMessage m) throws VhostUserProtocolException {
        Inflight in = VhostUserCodec.decodeInflight(m);
        InflightBuffer.checkGeometry(m.describe(), in.numQueues(), in.queueSize(), rings.length);
        InflightBuffer b = InflightBuffer.create(in.numQueues(), in.queueSize());
        if (inflight != null) {
            inflight.close();
        }
        inflight = b;
        // The fd is copied into the front-end by sendmsg; the back-end keeps its own.
        return reply(m, VhostUserCodec.inflight(new Inflight(b.size(), 0, in.numQueues(), in.queueSize())), b.fd());
    }

    private boolean setInflightFd(VhostUserMessage m, Fds fds) throws VhostUserProtocolException {
        Inflight in = VhostUserCodec.decodeInflight(m);
        fds.expect(1);
        InflightBuffer.checkGeometry(m.describe(), in.numQueues(), in.queueSize(), rings.length);
        InflightBuffer b = InflightBuffer.adopt(fds.take(0), in.mmapSize(), in.mmapOffset(), in.numQueues(), in.queueSize());
        int marked = b.markedInflight();
        if (marked > 0) {
            LOG.log(System.Logger.Level.WARNING, () -> name + ": the inflight buffer handed back lists " + marked
                    + " request(s) in flight; vblk does not resubmit them (the ring restarts from SET_VRING_BASE)");
        }
        if (inflight != null) {
            inflight.close();
        }
        inflight = b;
        return ack(m, true);
    }

    // ---------------------------------------------------------------- replies

    private boolean reply(VhostUserMessage m, byte[] payload, int... fds) {
        channel.send(VhostUserMessage.reply(m.request(), payload, fds));
        return true;
    }

    /**
     * REPLY_ACK: "the back-end MUST respond with a Payload VhostUserMsg indicating success or
     * failure. The payload should be set to zero on success or non-zero on failure". Sent when
     * the front-end set NEED_REPLY on a message without a reply of its own.
     */
    private boolean ack(VhostUserMessage m, boolean ok) {
        VhostUserRequest r = m.kind();
        if (m.needReply() && (r == null || !r.hasReply)) {
            channel.send(VhostUserMessage.reply(m.request(), VhostUserCodec.u64(ok ? 0 : 1)));
        }
        return true;
    }

    // ---------------------------------------------------------------- device events and teardown

    /**
     * The device entered NEEDS_RESET: signal every queue's error eventfd (SET_VRING_ERR, "to
     * signal when error occurs"); GET_STATUS reports the NEEDS_RESET bit.
     */
    public void deviceNeedsReset() {
        ctx.assertHome();
        for (int q = 0; q < rings.length; q++) {
            if (rings[q].errFd >= 0) {
                Sys.eventfdWrite(rings[q].errFd, 1);
            }
        }
    }

    /**
     * The connection is gone (at any moment: between messages, mid-message, while a message is
     * pending, with requests in flight): stops every queue, waits for in-flight requests, resets
     * the device, drops the memory map and every fd, then runs {@code onQuiesced}.
     */
    public void disconnect(Runnable onQuiesced) {
        ctx.assertHome();
        if (closed) {
            throw new IllegalStateException(name + ": disconnected twice");
        }
        closed = true;
        int[] left = {rings.length + 1};
        IntConsumer down = ignored -> {
            if (--left[0] == 0) {
                teardown();
                onQuiesced.run();
            }
        };
        for (int q = 0; q < rings.length; q++) {
            stopRing(q, down);
        }
        down.accept(0);
    }

    private void teardown() {
        device.reset();
        // Hand the device an empty map so it lets go of the session's mappings now, not at the next session.
        GuestMemory none = GuestMemory.of(List.of());
        device.setMemory(none);
        none.release();
        if (memory != null) {
            memory.release();
            memory = null;
        }
        table.release();
        table = MemoryTable.empty();
        for (Ring r : rings) {
            r.kickFd = closeFd(r.kickFd);
            r.callFd = closeFd(r.callFd);
            r.errFd = closeFd(r.errFd);
        }
        if (inflight != null) {
            inflight.close();
            inflight = null;
        }
        pending = false;
    }

    // ---------------------------------------------------------------- fds

    private static int closeFd(int fd) {
        if (fd >= 0) {
            Sys.close(fd);
        }
        return -1;
    }

    private static void closeAll(int[] fds) {
        for (int fd : fds) {
            Sys.close(fd);
        }
    }

    /** The fds of one message: each is taken (ownership moves on) or closed when the message is done. */
    private static final class Fds {
        private final VhostUserMessage m;
        private final int[] fds;
        private final boolean[] taken;

        Fds(VhostUserMessage m) {
            this.m = m;
            this.fds = m.fds();
            this.taken = new boolean[fds.length];
        }

        int count() {
            return fds.length;
        }

        void expect(int n) throws VhostUserProtocolException {
            if (fds.length != n) {
                throw new VhostUserProtocolException(m.describe() + ": " + (fds.length < n ? "missing fds: " : "unexpected fds: ")
                        + fds.length + " attached, " + n + " expected");
            }
        }

        int take(int i) {
            taken[i] = true;
            return fds[i];
        }

        void closeUntaken() {
            for (int i = 0; i < fds.length; i++) {
                if (!taken[i]) {
                    Sys.close(fds[i]);
                }
            }
        }
    }
}
