package io.vblk.guest.vhost;

import io.vblk.aio.AioContext;
import io.vblk.aio.FdHandler;
import io.vblk.aio.Timer;
import io.vblk.aio.sys.Errno;
import io.vblk.aio.sys.ReceivedFds;
import io.vblk.aio.sys.Sys;
import io.vblk.virtio.device.QueueLayout;
import io.vblk.virtio.device.VirtioDevice;
import io.vblk.virtio.memory.GuestMemory;
import io.vblk.virtio.memory.MemoryRegion;
import io.vblk.virtio.vhost.wire.VhostUserCodec;
import io.vblk.virtio.vhost.wire.VhostUserCodec.ConfigSpace;
import io.vblk.virtio.vhost.wire.VhostUserCodec.Inflight;
import io.vblk.virtio.vhost.wire.VhostUserCodec.MemRegion;
import io.vblk.virtio.vhost.wire.VhostUserCodec.VringAddr;
import io.vblk.virtio.vhost.wire.VhostUserCodec.VringState;
import io.vblk.virtio.vhost.wire.VhostUserFramer;
import io.vblk.virtio.vhost.wire.VhostUserMessage;
import io.vblk.virtio.vhost.wire.VhostUserMessageLayout;
import io.vblk.virtio.vhost.wire.VhostUserProtocolException;
import io.vblk.virtio.vhost.wire.VhostUserRequest;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.function.IntConsumer;
import java.util.function.Supplier;

import static io.vblk.virtio.vhost.wire.VhostUserProtocolFeature.CONFIG;
import static io.vblk.virtio.vhost.wire.VhostUserProtocolFeature.CONFIGURE_MEM_SLOTS;
import static io.vblk.virtio.vhost.wire.VhostUserProtocolFeature.F_PROTOCOL_FEATURES;
import static io.vblk.virtio.vhost.wire.VhostUserProtocolFeature.INFLIGHT_SHMFD;
import static io.vblk.virtio.vhost.wire.VhostUserProtocolFeature.MQ;
import static io.vblk.virtio.vhost.wire.VhostUserProtocolFeature.REPLY_ACK;
import static io.vblk.virtio.vhost.wire.VhostUserProtocolFeature.RESET_DEVICE;
import static io.vblk.virtio.vhost.wire.VhostUserProtocolFeature.STATUS;
import static io.vblk.virtio.vhost.wire.VhostUserProtocolFeature.bit;
import static io.vblk.virtio.vhost.wire.VhostUserProtocolFeature.has;

/**
 * Home thread: the control {@link AioContext} given to {@link #connect}. No locking.
 *
 * <p>A vhost-user front-end for a block back-end (vblk's own server, qemu-storage-daemon, any
 * vhost-user-blk back-end), in the role QEMU plays for a VM. It connects to the socket,
 * negotiates features and protocol features, creates the guest memory in a memfd (shared with
 * the back-end by SET_MEM_TABLE), reads the config space, and sets up rings on demand.
 *
 * <p>It <em>is</em> a {@link VirtioDevice}: the emulator harness that drives the in-process
 * device (lays out split rings in guest memory, posts chains, kicks, reads the call eventfd)
 * drives a remote back-end through this class the same way, except that the guest memory must
 * be this front-end's {@link #memory()} (the back-end can only map memory it gets an fd for):
 * <ul>
 *   <li>{@link #setDriverFeatures} → SET_FEATURES (plus VHOST_USER_F_PROTOCOL_FEATURES);</li>
 *   <li>{@link #setMemory} → SET_MEM_TABLE with the memfd;</li>
 *   <li>{@link #configureQueue}, {@link #setQueueFds} → remembered; {@link #startQueue} → (the
 *       first time, GET_INFLIGHT_FD + SET_INFLIGHT_FD) SET_VRING_NUM, SET_VRING_BASE,
 *       SET_VRING_ADDR, SET_VRING_KICK, SET_VRING_CALL, SET_VRING_ENABLE, in QEMU's order;</li>
 *   <li>{@link #stopQueue} → GET_VRING_BASE (the back-end replies once its in-flight requests
 *       are done) and the next avail index;</li>
 *   <li>{@link #readConfig} → the GET_CONFIG bytes read at connect; {@link #reset} → RESET_DEVICE.</li>
 * </ul>
 * Requests go out in call order and an operation's messages are never interleaved with another's
 * (a serial chain of operations); replies are matched in order. Nothing blocks: replies arrive on
 * the context's fd handler, and a back-end that does not answer within the reply timeout, sends a
 * malformed reply or hangs up puts this device into NEEDS_RESET with the reason.
 */
public final class VhostUserFrontend implements VirtioDevice {
    private static final System.Logger LOG = System.getLogger(VhostUserFrontend.class.getName());

    /** Protocol features the front-end asks for when offered (CONFIGURE_MEM_SLOTS only to ask GET_MAX_MEM_SLOTS). */
    public static final long WANTED_PROTOCOL_FEATURES = bit(MQ) | bit(REPLY_ACK) | bit(CONFIG) | bit(INFLIGHT_SHMFD)
            | bit(RESET_DEVICE) | bit(CONFIGURE_MEM_SLOTS) | bit(STATUS);
    /** virtio-blk's device ID (virtio 1.x section 5). */
    public static final int VIRTIO_ID_BLOCK = 2;
    /** Bytes of struct virtio_blk_config up to write_zeroes_may_unmap (virtio 1.x 5.2.4), what every back-end serves. */
    public static final int BLK_CONFIG_BYTES = 60;
    /** QEMU's vhost-user-blk refuses queue sizes above 1024 (VIRTQUEUE_MAX_SIZE); so does this front-end. */
    public static final int MAX_QUEUE_SIZE = 1024;
    /** Virtio status bits (virtio 1.x 2.1). */
    static final int S_ACKNOWLEDGE = 1;
    static final int S_DRIVER = 2;
    static final int S_DRIVER_OK = 4;
    static final int S_FEATURES_OK = 8;

    /**
     * @param memoryBytes  guest memory to create (a memfd, at guest-physical 0), rounded up to a
     *                     page; 0 when the caller brings its own ({@link #setMemoryTable})
     * @param numQueues    queues to use; 0 for as many as the back-end has
     * @param configBytes  config space bytes to read with GET_CONFIG (at most 256)
     * @param useInflight  negotiate INFLIGHT_SHMFD and hand the buffer back as QEMU does
     * @param replyTimeout how long a reply may take before the back-end is declared broken
     */
    public record Options(long memoryBytes, int numQueues, int configBytes, boolean useInflight, Duration replyTimeout) {
        public static Options defaults(long memoryBytes) {
            return new Options(memoryBytes, 0, BLK_CONFIG_BYTES, true, Duration.ofSeconds(10));
        }

        public Options withNumQueues(int n) {
            return new Options(memoryBytes, n, configBytes, useInflight, replyTimeout);
        }

        public Options withInflight(boolean on) {
            return new Options(memoryBytes, numQueues, configBytes, on, replyTimeout);
        }
    }

    private record Waiting(int request, CompletableFuture<VhostUserMessage> reply) {
    }

    private static final class Queue {
        QueueLayout layout;
        int kickFd = -1;
        int callFd = -1;
        boolean started;
    }

    private final String name;
    private final AioContext ctx;
    private final Options options;
    private final int fd;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment sendBuf = arena.allocate(VhostUserFramer.BUFFER_BYTES, 8);
    private final VhostUserFramer framer;
    private final ReceivedFds received = new ReceivedFds();
    private final ArrayDeque<Waiting> waiting = new ArrayDeque<>();
    private final Timer replyTimer;
    private final List<Runnable> needsResetListeners = new ArrayList<>();
    private FdHandler fdHandler;
    private CompletableFuture<?> tail = CompletableFuture.completedFuture(null);

    private long backendFeatures;
    private long protocolFeatures;
    private int backendQueues = 1;
    private long maxMemSlots;
    private byte[] config = new byte[0];
    private Queue[] queues = new Queue[0];
    private long driverFeatures;
    private int status;
    private int memfd = -1;
    private GuestMemory memory;
    /** The regions last sent with SET_MEM_TABLE: guest-physical to front-end address translation. */
    private List<MemRegion> table = List.of();
    private GuestMemory deviceMemory;
    private int inflightFd = -1;
    private Inflight inflight;
    private boolean inflightDone;
    private String needsResetReason;
    private boolean closed;

    private VhostUserFrontend(String name, AioContext ctx, int fd, Options options) {
        this.name = name;
        this.ctx = ctx;
        this.fd = fd;
        this.options = options;
        this.framer = new VhostUserFramer(VhostUserFramer.Direction.REPLIES, arena.allocate(VhostUserFramer.BUFFER_BYTES, 8),
                Sys::close);
        this.replyTimer = ctx.timer(name + " reply timeout", this::replyTimedOut);
    }

    /**
     * Connects to the vhost-user socket at {@code path} and negotiates. Any thread; the work and
     * the future's completion happen on {@code ctx}'s home thread. Fails with an
     * {@link IllegalStateException} naming the socket and what went wrong.
     */
    public static CompletableFuture<VhostUserFrontend> connect(AioContext ctx, String path, Options options) {
        CompletableFuture<VhostUserFrontend> out = new CompletableFuture<>();
        ctx.runOn(() -> {
            int fd = Sys.unixConnect(path, true);
            if (fd < 0) {
                out.completeExceptionally(new IllegalStateException("vhost-user " + path + ": connect failed: " + Errno.name(-fd)));
                return;
            }
            VhostUserFrontend f = new VhostUserFrontend("vhost-user " + path, ctx, fd, options);
            f.fdHandler = ctx.addFdHandler(f.name + " socket", fd, false, ignored -> f.readable());
            f.negotiate().whenComplete((v, e) -> {
                if (e != null) {
                    f.close();
                    out.completeExceptionally(new IllegalStateException(f.name + ": " + rootMessage(e), e));
                } else {
                    out.complete(f);
                }
            });
        });
        return out;
    }

    // ---------------------------------------------------------------- negotiation

    private CompletableFuture<Void> negotiate() {
        return serial(() -> call(VhostUserRequest.GET_FEATURES, new byte[0])
                .thenCompose(r -> {
                    backendFeatures = u64(r);
                    if (!has(backendFeatures, F_PROTOCOL_FEATURES)) {
                        return done();
                    }
                    return call(VhostUserRequest.GET_PROTOCOL_FEATURES, new byte[0]).thenCompose(p -> {
                        long wanted = WANTED_PROTOCOL_FEATURES;
                        if (!options.useInflight()) {
                            wanted &= ~bit(INFLIGHT_SHMFD);
                        }
                        protocolFeatures = u64(p) & wanted;
                        send(VhostUserRequest.SET_PROTOCOL_FEATURES, VhostUserCodec.u64(protocolFeatures));
                        return done();
                    });
                })
                .thenCompose(v -> !has(protocolFeatures, MQ) ? done()
                        : call(VhostUserRequest.GET_QUEUE_NUM, new byte[0]).thenAccept(r -> backendQueues = (int) u64(r)))
                .thenCompose(v -> {
                    send(VhostUserRequest.SET_OWNER, new byte[0]);
                    return !has(protocolFeatures, CONFIGURE_MEM_SLOTS) ? done()
                            : call(VhostUserRequest.GET_MAX_MEM_SLOTS, new byte[0]).thenAccept(r -> maxMemSlots = u64(r));
                })
                .thenCompose(v -> {
                    if (!has(protocolFeatures, CONFIG)) {
                        return done();
                    }
                    return call(VhostUserRequest.GET_CONFIG, VhostUserCodec.config(0, 0, new byte[options.configBytes()]))
                            .thenAccept(r -> {
                                if (r.size() == 0) {
                                    throw new CompletionException(new IllegalStateException(
                                            "GET_CONFIG of " + options.configBytes() + " bytes failed (empty reply)"));
                                }
                                ConfigSpace c = decode(() -> VhostUserCodec.decodeConfig(r));
                                if (c.size() != options.configBytes()) {
                                    throw new CompletionException(new IllegalStateException(
                                            "GET_CONFIG reply of " + c.size() + " bytes, asked " + options.configBytes()));
                                }
                                config = c.data();
                            });
                })
                .thenCompose(v -> {
                    int n = options.numQueues() == 0 ? backendQueues : options.numQueues();
                    if (n > backendQueues) {
                        throw new CompletionException(new IllegalStateException(
                                n + " queues asked, the back-end has " + backendQueues));
                    }
                    queues = new Queue[n];
                    for (int i = 0; i < n; i++) {
                        queues[i] = new Queue();
                    }
                    if (options.memoryBytes() > 0) {
                        createMemory();
                    }
                    return done();
                }));
    }

    private void createMemory() {
        long page = 4096;
        long size = (options.memoryBytes() + page - 1) / page * page;
        int mfd = Sys.memfdCreate("vblk-guest-ram", Sys.MFD_CLOEXEC);
        if (mfd < 0) {
            throw new CompletionException(new IllegalStateException("memfd_create failed: " + Errno.name(-mfd)));
        }
        int r = Sys.ftruncate(mfd, size);
        if (r < 0) {
            Sys.close(mfd);
            throw new CompletionException(new IllegalStateException("ftruncate to " + size + " failed: " + Errno.name(-r)));
        }
        long addr = Sys.mmap(0, size, Sys.PROT_READ | Sys.PROT_WRITE, Sys.MAP_SHARED, mfd, 0);
        if (addr < 0 && addr > -4096) {
            Sys.close(mfd);
            throw new CompletionException(new IllegalStateException("mmap of " + size + " bytes failed: " + Errno.name((int) -addr)));
        }
        memfd = mfd;
        MemorySegment host = MemorySegment.ofAddress(addr).reinterpret(size);
        // One region at guest-physical 0; its user address (what SET_VRING_ADDR carries) is this process's mapping.
        memory = GuestMemory.of(List.of(new MemoryRegion(0, size, addr, host)), () -> {
            Sys.munmap(addr, size);
            Sys.close(mfd);
        });
    }

    // ---------------------------------------------------------------- what the back-end said

    /** The guest memory to lay rings and buffers out in; pass it to {@link #setMemory}. */
    public GuestMemory memory() {
        return memory;
    }

    /** Virtio and vhost-user feature bits GET_FEATURES returned (bit 30 included). */
    public long backendFeatures() {
        return backendFeatures;
    }

    /** Protocol features negotiated (offered by the back-end and wanted here). */
    public long protocolFeatures() {
        return protocolFeatures;
    }

    /** GET_QUEUE_NUM (1 without MQ). */
    public int backendQueues() {
        return backendQueues;
    }

    /** GET_MAX_MEM_SLOTS, or 0 when not negotiated. */
    public long maxMemSlots() {
        return maxMemSlots;
    }

    /** The inflight description the back-end returned, or null. */
    public Inflight inflight() {
        return inflight;
    }

    /** Virtio-blk capacity in 512-byte sectors (config offset 0), or -1 without CONFIG. */
    public long capacitySectors() {
        return config.length >= 8 ? VhostUserMessageLayout.getLong(MemorySegment.ofArray(config), 0) : -1;
    }

    /** Virtio-blk num_queues (config offset 34; meaningful with VIRTIO_BLK_F_MQ), or -1 without CONFIG. */
    public int configNumQueues() {
        return config.length >= 36 ? VhostUserMessageLayout.getU16(MemorySegment.ofArray(config), 34) : -1;
    }

    /** Queue {@code q}'s kick eventfd as given to {@link #setQueueFds} (the harness writes it). */
    public int kickFd(int q) {
        return queues[q].kickFd;
    }

    /** Queue {@code q}'s call eventfd as given to {@link #setQueueFds} (the harness reads it). */
    public int callFd(int q) {
        return queues[q].callFd;
    }

    // ---------------------------------------------------------------- VirtioDevice

    @Override
    public int deviceId() {
        return VIRTIO_ID_BLOCK;
    }

    @Override
    public long deviceFeatures() {
        return backendFeatures & ~bit(F_PROTOCOL_FEATURES);
    }

    @Override
    public void setDriverFeatures(long features) {
        ctx.assertHome();
        long unknown = features & ~deviceFeatures();
        if (unknown != 0) {
            throw new IllegalArgumentException("feature bits 0x" + Long.toHexString(unknown) + " were not offered by " + name);
        }
        driverFeatures = features;
        long wire = features | (backendFeatures & bit(F_PROTOCOL_FEATURES));
        background("SET_FEATURES", () -> {
            CompletableFuture<Void> f = callAck(VhostUserRequest.SET_FEATURES, VhostUserCodec.u64(wire));
            if (!has(protocolFeatures, STATUS)) {
                return f;
            }
            status |= S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK;
            return f.thenCompose(v -> callAck(VhostUserRequest.SET_STATUS, VhostUserCodec.u64(status)));
        });
    }

    @Override
    public long driverFeatures() {
        return driverFeatures;
    }

    @Override
    public int numQueues() {
        return queues.length;
    }

    @Override
    public int maxQueueSize() {
        return MAX_QUEUE_SIZE;
    }

    @Override
    public int configSize() {
        return config.length;
    }

    @Override
    public void readConfig(int offset, byte[] dst, int length) {
        if (offset < 0 || length < 0 || offset + length > config.length) {
            throw new IndexOutOfBoundsException("config read of " + length + " bytes at " + offset + ", config space is "
                    + config.length + " bytes");
        }
        System.arraycopy(config, offset, dst, 0, length);
    }

    /** Sends SET_CONFIG (REPLY_ACK'ed when negotiated; a refusal is logged) and updates the cached bytes. */
    @Override
    public boolean writeConfig(int offset, byte[] src, int length) {
        ctx.assertHome();
        if (!has(protocolFeatures, CONFIG) || offset < 0 || length < 0 || offset + length > config.length) {
            return false;
        }
        byte[] data = Arrays.copyOf(src, length);
        System.arraycopy(data, 0, config, offset, length);
        background("SET_CONFIG", () -> callAck(VhostUserRequest.SET_CONFIG, VhostUserCodec.config(offset, 0, data)));
        return true;
    }

    /** Sends SET_MEM_TABLE; {@code m} must be {@link #memory()}. */
    @Override
    public void setMemory(GuestMemory m) {
        ctx.assertHome();
        if (m != memory || memory == null) {
            throw new IllegalArgumentException(name + ": a vhost-user back-end can only map this front-end's memory()"
                    + " (it needs the fd behind it); for other fd-backed memory use setMemoryTable");
        }
        m.retain();
        if (deviceMemory != null) {
            deviceMemory.release();
        }
        deviceMemory = m;
        MemoryRegion r = m.region(0);
        setMemoryTable(List.of(new MemRegion(r.gpa(), r.size(), r.userAddr(), 0)), new int[]{memfd});
    }

    /**
     * Sends SET_MEM_TABLE for {@code regions} backed by {@code fds} (one per region, in order; the
     * caller keeps its fds, the back-end gets copies). Ring addresses given later to
     * {@link #configureQueue} are translated through these regions. Home thread.
     */
    public void setMemoryTable(List<MemRegion> regions, int[] fds) {
        ctx.assertHome();
        if (regions.size() != fds.length || regions.isEmpty()
                || regions.size() > VhostUserMessageLayout.MAX_MEM_TABLE_REGIONS) {
            throw new IllegalArgumentException(regions.size() + " regions with " + fds.length
                    + " fds; 1.." + VhostUserMessageLayout.MAX_MEM_TABLE_REGIONS + " regions, one fd each");
        }
        // The message may leave after earlier operations: send copies the caller cannot close under us.
        int[] copies = new int[fds.length];
        for (int i = 0; i < fds.length; i++) {
            copies[i] = Sys.dup(fds[i]);
            if (copies[i] < 0) {
                for (int j = 0; j < i; j++) {
                    Sys.close(copies[j]);
                }
                throw new IllegalStateException("dup of memory fd " + fds[i] + ": " + Errno.name(-copies[i]));
            }
        }
        table = List.copyOf(regions);
        byte[] payload = VhostUserCodec.memTable(regions);
        serial(() -> callAck(VhostUserRequest.SET_MEM_TABLE, payload, copies)).whenComplete((v, e) -> {
            for (int c : copies) {
                Sys.close(c);
            }
            if (e != null) {
                brokenBackend("SET_MEM_TABLE: " + rootMessage(e));
            }
        });
    }

    /** The front-end address of {@code [gpa, gpa+len)} through the current memory table. */
    private long uaddr(int q, String what, long gpa, long len) {
        for (MemRegion r : table) {
            if (gpa >= r.gpa() && len >= 0 && gpa - r.gpa() <= r.size() - len) {
                return r.uaddr() + (gpa - r.gpa());
            }
        }
        throw new IllegalStateException("queue " + q + ": " + what + " at guest address 0x" + Long.toHexString(gpa)
                + " is outside the memory table sent to the back-end");
    }

    @Override
    public void configureQueue(int index, QueueLayout layout) {
        ctx.assertHome();
        if (layout.size() <= 0 || layout.size() > MAX_QUEUE_SIZE || Integer.bitCount(layout.size()) != 1) {
            throw new IllegalArgumentException("queue size " + layout.size() + " is not a power of two up to " + MAX_QUEUE_SIZE);
        }
        queues[index].layout = layout;
    }

    /** Takes ownership of both fds (closed when replaced or at {@link #close}). */
    @Override
    public void setQueueFds(int index, int kickFd, int callFd) {
        ctx.assertHome();
        Queue q = queues[index];
        if (q.kickFd >= 0 && q.kickFd != kickFd) {
            Sys.close(q.kickFd);
        }
        if (q.callFd >= 0 && q.callFd != callFd) {
            Sys.close(q.callFd);
        }
        q.kickFd = kickFd;
        q.callFd = callFd;
    }

    @Override
    public void startQueue(int index, Runnable onStarted) {
        ctx.assertHome();
        Queue q = queues[index];
        QueueLayout l = q.layout;
        if (l == null) {
            throw new IllegalStateException("queue " + index + " has no layout; call configureQueue first");
        }
        if (q.kickFd < 0) {
            throw new IllegalStateException("queue " + index + " has no kick eventfd; call setQueueFds first");
        }
        int n = l.size();
        VringAddr a = new VringAddr(index, 0, uaddr(index, "descriptor table", l.descAddr(), 16L * n),
                uaddr(index, "used ring", l.usedAddr(), 6L + 8L * n), uaddr(index, "available ring", l.availAddr(), 6L + 2L * n), 0);
        int kick = q.kickFd;
        int call = q.callFd;
        q.started = true;
        background("start queue " + index, () -> setUpInflight(l.size()).thenCompose(v -> {
            send(VhostUserRequest.SET_VRING_NUM, VhostUserCodec.vringState(index, l.size()));
            send(VhostUserRequest.SET_VRING_BASE, VhostUserCodec.vringState(index, l.nextAvailIdx()));
            send(VhostUserRequest.SET_VRING_ADDR, VhostUserCodec.vringAddr(a));
            send(VhostUserRequest.SET_VRING_KICK, VhostUserCodec.u64(index), kick);
            if (call >= 0) {
                send(VhostUserRequest.SET_VRING_CALL, VhostUserCodec.u64(index), call);
            } else {
                send(VhostUserRequest.SET_VRING_CALL, VhostUserCodec.u64(index | VhostUserMessageLayout.VRING_NOFD));
            }
            if (has(backendFeatures, F_PROTOCOL_FEATURES)) {
                // QEMU waits for this one: no request may reach a ring the back-end still thinks disabled.
                return callAck(VhostUserRequest.SET_VRING_ENABLE, VhostUserCodec.vringState(index, 1));
            }
            return sync();
        }).thenCompose(v -> {
            if (!has(protocolFeatures, STATUS) || (status & S_DRIVER_OK) != 0) {
                return done();
            }
            status |= S_DRIVER_OK;
            return callAck(VhostUserRequest.SET_STATUS, VhostUserCodec.u64(status));
        }).thenRun(onStarted));
    }

    /** GET_INFLIGHT_FD then SET_INFLIGHT_FD, once, before the first ring starts (libvhost-user needs it before a kick). */
    private CompletableFuture<Void> setUpInflight(int queueSize) {
        if (inflightDone || !has(protocolFeatures, INFLIGHT_SHMFD)) {
            return done();
        }
        inflightDone = true;
        return call(VhostUserRequest.GET_INFLIGHT_FD, VhostUserCodec.inflight(new Inflight(0, 0, queues.length, queueSize)))
                .thenCompose(r -> {
                    Inflight in = decode(() -> VhostUserCodec.decodeInflight(r));
                    if (r.fds().length != 1 || in.mmapSize() <= 0) {
                        for (int f : r.fds()) {
                            Sys.close(f);
                        }
                        throw new CompletionException(new IllegalStateException("GET_INFLIGHT_FD reply carried "
                                + r.fds().length + " fds and mmap_size " + in.mmapSize()));
                    }
                    inflight = in;
                    inflightFd = r.fds()[0];
                    return callAck(VhostUserRequest.SET_INFLIGHT_FD, VhostUserCodec.inflight(
                            new Inflight(in.mmapSize(), in.mmapOffset(), queues.length, queueSize)), inflightFd);
                });
    }

    @Override
    public void stopQueue(int index, IntConsumer onStopped) {
        ctx.assertHome();
        Queue q = queues[index];
        q.started = false;
        background("stop queue " + index, () -> call(VhostUserRequest.GET_VRING_BASE, VhostUserCodec.vringState(index, 0))
                .thenAccept(r -> {
                    VringState s = decode(() -> VhostUserCodec.decodeVringState(r));
                    if (s.index() != index) {
                        throw new CompletionException(new IllegalStateException("GET_VRING_BASE for queue " + index
                                + " answered for queue " + s.index()));
                    }
                    onStopped.accept(s.num());
                }));
    }

    @Override
    public boolean queueStarted(int index) {
        return queues[index].started;
    }

    /** RESET_DEVICE (or the deprecated RESET_OWNER when the back-end lacks it). Every queue must be stopped. */
    @Override
    public void reset() {
        ctx.assertHome();
        for (int i = 0; i < queues.length; i++) {
            if (queues[i].started) {
                throw new IllegalStateException("reset with queue " + i + " started");
            }
        }
        driverFeatures = 0;
        status = 0;
        if (has(protocolFeatures, RESET_DEVICE)) {
            background("RESET_DEVICE", () -> callAck(VhostUserRequest.RESET_DEVICE, new byte[0]));
        } else {
            background("RESET_OWNER", () -> callAck(VhostUserRequest.RESET_OWNER, new byte[0]));
        }
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
    public void onNeedsReset(Runnable listener) {
        needsResetListeners.add(listener);
    }

    /** Closes the socket (the back-end sees a disconnect), the queue fds and, once released, the memory. Home thread. */
    @Override
    public void close() {
        ctx.assertHome();
        if (closed) {
            return;
        }
        closed = true;
        replyTimer.cancel();
        if (fdHandler != null) {
            fdHandler.remove();
            fdHandler = null;
        }
        framer.discard();
        Sys.close(fd);
        failWaiting(new IllegalStateException(name + " closed"));
        for (Queue q : queues) {
            if (q.kickFd >= 0) {
                Sys.close(q.kickFd);
            }
            if (q.callFd >= 0) {
                Sys.close(q.callFd);
            }
            q.kickFd = q.callFd = -1;
        }
        if (inflightFd >= 0) {
            Sys.close(inflightFd);
            inflightFd = -1;
        }
        if (deviceMemory != null) {
            deviceMemory.release();
            deviceMemory = null;
        }
        if (memory != null) {
            memory.release();
        }
    }

    /**
     * Completes once every operation asked for so far has been answered by the back-end (or has
     * failed: then exceptionally, with the NEEDS_RESET reason). Blocking transports wait on it to
     * make fire-and-forget calls ({@link #reset}, {@link #setMemory}, ...) synchronous. Home thread.
     */
    public CompletableFuture<Void> settled() {
        ctx.assertHome();
        return serial(VhostUserFrontend::done);
    }

    // ---------------------------------------------------------------- messaging

    /** Runs {@code op} after every earlier operation; its failure puts the device into NEEDS_RESET. */
    private void background(String what, Supplier<CompletableFuture<Void>> op) {
        serial(op).whenComplete((v, e) -> {
            if (e != null) {
                brokenBackend(what + ": " + rootMessage(e));
            }
        });
    }

    private <T> CompletableFuture<T> serial(Supplier<CompletableFuture<T>> op) {
        CompletableFuture<T> r = tail.handle((v, e) -> null).thenCompose(x -> {
            if (closed || needsResetReason != null) {
                return CompletableFuture.failedFuture(new IllegalStateException(
                        closed ? name + " is closed" : name + " needs reset: " + needsResetReason));
            }
            return op.get();
        });
        tail = r;
        return r;
    }

    private static CompletableFuture<Void> done() {
        return CompletableFuture.completedFuture(null);
    }

    /** Sends a message with no reply expected. */
    private void send(VhostUserRequest r, byte[] payload, int... fds) {
        write(VhostUserMessage.request(r, false, payload, fds));
    }

    /** Sends a request with a reply of its own and returns the reply. */
    private CompletableFuture<VhostUserMessage> call(VhostUserRequest r, byte[] payload, int... fds) {
        CompletableFuture<VhostUserMessage> f = new CompletableFuture<>();
        waiting.add(new Waiting(r.id, f));
        replyTimer.armIn(options.replyTimeout().toNanos());
        write(VhostUserMessage.request(r, false, payload, fds));
        return f;
    }

    /**
     * Sends a request without a reply of its own and waits until the back-end has processed it:
     * with REPLY_ACK by NEED_REPLY and the ack (non-zero = refused), else (as QEMU does) by a
     * GET_FEATURES round trip behind it.
     */
    private CompletableFuture<Void> callAck(VhostUserRequest r, byte[] payload, int... fds) {
        if (!has(protocolFeatures, REPLY_ACK)) {
            send(r, payload, fds);
            return sync();
        }
        CompletableFuture<VhostUserMessage> f = new CompletableFuture<>();
        waiting.add(new Waiting(r.id, f));
        replyTimer.armIn(options.replyTimeout().toNanos());
        write(VhostUserMessage.request(r, true, payload, fds));
        return f.thenAccept(reply -> {
            long v = u64(reply);
            if (v != 0) {
                throw new CompletionException(new IllegalStateException(r.describe() + " refused by the back-end (ack " + v + ")"));
            }
        });
    }

    private CompletableFuture<Void> sync() {
        return call(VhostUserRequest.GET_FEATURES, new byte[0]).thenAccept(r -> { });
    }

    private void write(VhostUserMessage m) {
        if (closed) {
            throw new CompletionException(new IllegalStateException(name + " is closed"));
        }
        int len = VhostUserMessageLayout.HEADER_BYTES + m.size();
        VhostUserCodec.putHeader(sendBuf, 0, m);
        MemorySegment.copy(MemorySegment.ofArray(m.payload()), 0, sendBuf, VhostUserMessageLayout.HEADER_BYTES, m.size());
        long off = 0;
        while (off < len) {
            long n = Sys.sendmsg(fd, sendBuf.address() + off, len - off, m.fds(), off == 0 ? m.fds().length : 0);
            if (n < 0) {
                String why = n == -Errno.EAGAIN ? "the back-end does not read (socket buffer full)" : Errno.name((int) -n);
                brokenBackend("sending " + m.describe() + " failed: " + why);
                throw new CompletionException(new IllegalStateException("sending " + m.describe() + " failed: " + why));
            }
            off += n;
        }
    }

    private void readable() {
        while (!closed) {
            long n = Sys.recvmsg(fd, framer.writeAddress(), framer.wanted(), received);
            if (n == -Errno.EAGAIN) {
                return;
            }
            if (n <= 0) {
                received.closeAll();
                brokenBackend(n == 0 ? "the back-end closed the connection" : "recvmsg failed: " + Errno.name((int) -n));
                return;
            }
            VhostUserMessage m;
            try {
                m = framer.received((int) n, received.fds, received.count, received.truncated);
            } catch (VhostUserProtocolException e) {
                brokenBackend("malformed reply: " + e.getMessage());
                return;
            }
            if (m == null) {
                continue;
            }
            Waiting w = waiting.poll();
            if (w == null || w.request != m.request()) {
                for (int f : m.fds()) {
                    Sys.close(f);
                }
                brokenBackend("unexpected reply " + m.describe() + (w == null ? " (no request outstanding)"
                        : " while waiting for a reply to " + VhostUserRequest.of(w.request).describe()));
                return;
            }
            if (waiting.isEmpty()) {
                replyTimer.cancel();
            } else {
                replyTimer.armIn(options.replyTimeout().toNanos());
            }
            w.reply.complete(m);
        }
    }

    private void replyTimedOut() {
        Waiting w = waiting.peek();
        if (w != null) {
            brokenBackend("no reply to " + VhostUserRequest.of(w.request).describe() + " within " + options.replyTimeout());
        }
    }

    private void brokenBackend(String reason) {
        if (needsResetReason != null || closed) {
            return;
        }
        needsResetReason = reason;
        LOG.log(System.Logger.Level.WARNING, () -> name + ": " + reason);
        replyTimer.cancel();
        if (fdHandler != null) {
            fdHandler.remove();
            fdHandler = null;
        }
        failWaiting(new IllegalStateException(reason));
        for (Runnable l : List.copyOf(needsResetListeners)) {
            l.run();
        }
    }

    private void failWaiting(RuntimeException e) {
        Waiting w;
        while ((w = waiting.poll()) != null) {
            w.reply.completeExceptionally(e);
        }
    }

    // ---------------------------------------------------------------- helpers

    private interface Decoder<T> {
        T decode() throws VhostUserProtocolException;
    }

    private static <T> T decode(Decoder<T> d) {
        try {
            return d.decode();
        } catch (VhostUserProtocolException e) {
            throw new CompletionException(new IllegalStateException("malformed reply: " + e.getMessage()));
        }
    }

    private static long u64(VhostUserMessage r) {
        return decode(() -> VhostUserCodec.decodeU64(r));
    }

    private static String rootMessage(Throwable e) {
        while ((e instanceof CompletionException || e instanceof java.util.concurrent.ExecutionException) && e.getCause() != null) {
            e = e.getCause();
        }
        return e.getMessage() != null ? e.getMessage() : e.toString();
    }

    @Override
    public String toString() {
        return "VhostUserFrontend[" + name + "]";
    }
}
