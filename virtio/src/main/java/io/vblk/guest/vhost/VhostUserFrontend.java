package io.vblk.guest.vhost;

import io.vblk.aio.AioContext;
import io.vblk.virtio.queue.QueueLayout;
import io.vblk.virtio.queue.VirtioFeatures;
import io.vblk.virtio.device.VirtioDevice;
import io.vblk.virtio.memory.GuestMemory;
import io.vblk.virtio.vhost.socket.VhostUserSocket;
import io.vblk.virtio.vhost.wire.VhostUserCodec;
import io.vblk.virtio.vhost.wire.VhostUserCodec.Inflight;
import io.vblk.virtio.vhost.wire.VhostUserCodec.MemRegion;
import io.vblk.virtio.vhost.wire.VhostUserProtocolFeature;
import io.vblk.virtio.vhost.wire.VhostUserRequest;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.function.IntConsumer;

import static io.vblk.guest.vhost.FrontendChannel.rootMessage;
import static io.vblk.virtio.vhost.wire.VhostUserProtocolFeature.BACKEND_REQ;
import static io.vblk.virtio.vhost.wire.VhostUserProtocolFeature.CONFIG;
import static io.vblk.virtio.vhost.wire.VhostUserProtocolFeature.CONFIGURE_MEM_SLOTS;
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
 * <p>A vhost-user-blk front-end in QEMU's role for a VM (against vblk's server, qemu-storage-daemon or any back-end):
 * it connects, negotiates features, reads the config space, sends the memory table (memfds) and sets up rings.
 *
 * <p>It <em>is</em> a {@link VirtioDevice}: the emulator harness that drives the in-process device (lays out split
 * rings, posts chains, kicks, reads the call eventfd) drives a remote back-end through it the same way, except that
 * guest memory goes by {@link #setMemoryTable} with its fd ({@link VhostUserTransport#setMemory} sends memfd RAM):
 * <ul>
 *   <li>{@link #setDriverFeatures} → SET_FEATURES (plus VHOST_USER_F_PROTOCOL_FEATURES);</li>
 *   <li>{@link #setMemoryTable} → SET_MEM_TABLE with the memfds;</li>
 *   <li>{@link #configureQueue}, {@link #setQueueFds} → remembered; {@link #startQueue} → (the first time,
 *       GET_INFLIGHT_FD + SET_INFLIGHT_FD, or SET_INFLIGHT_FD alone after {@link #reuseInflight})
 *       SET_VRING_NUM, _BASE, _ADDR, _KICK, _CALL, _ENABLE, in QEMU's order;</li>
 *   <li>{@link #stopQueue} → GET_VRING_BASE (answered once the back-end's in-flight requests are done);</li>
 *   <li>{@link #readConfig} → GET_CONFIG, re-read on a change ({@link FrontendConfig}); {@link #reset} → RESET_DEVICE.</li>
 * </ul>
 * Messages travel through a {@link FrontendChannel} over the shared {@link VhostUserSocket}: in call order,
 * never interleaved, replies matched in order. Nothing
 * blocks: a back-end that does not answer within the reply timeout, sends a malformed reply or hangs up puts this
 * device into NEEDS_RESET with the reason. {@link FrontendNegotiation} opens the session, {@link FrontendMemory} and
 * {@link FrontendRings} keep the memory table and the rings.
 */
public final class VhostUserFrontend implements VirtioDevice {
    /** Protocol features the front-end asks for when offered (CONFIGURE_MEM_SLOTS only to ask GET_MAX_MEM_SLOTS). */
    public static final long WANTED_PROTOCOL_FEATURES = bit(MQ) | bit(REPLY_ACK) | bit(CONFIG) | bit(INFLIGHT_SHMFD)
            | bit(RESET_DEVICE) | bit(CONFIGURE_MEM_SLOTS) | bit(STATUS) | bit(BACKEND_REQ) | FrontendMigration.WANTED;
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
     * @param numQueues    queues to use; 0 for as many as the back-end has
     * @param configBytes  config space bytes to read with GET_CONFIG (at most 256)
     * @param useInflight  negotiate INFLIGHT_SHMFD and hand the buffer back as QEMU does
     * @param replyTimeout how long a reply may take before the back-end is declared broken
     */
    public record Options(int numQueues, int configBytes, boolean useInflight, Duration replyTimeout) {
        public static Options defaults() {
            return new Options(0, BLK_CONFIG_BYTES, true, Duration.ofSeconds(10));
        }

        public Options withNumQueues(int n) {
            return new Options(n, configBytes, useInflight, replyTimeout);
        }

        public Options withInflight(boolean on) {
            return new Options(numQueues, configBytes, on, replyTimeout);
        }

        public Options withReplyTimeout(Duration d) {
            return new Options(numQueues, configBytes, useInflight, d);
        }
    }

    final String name;
    final AioContext ctx;
    final FrontendChannel channel;
    final FrontendNegotiation negotiated = new FrontendNegotiation();
    final FrontendMemory memory = new FrontendMemory();
    private final List<Runnable> needsResetListeners = new ArrayList<>();
    private final FrontendConfig config;
    FrontendRings rings;
    private long driverFeatures;
    private int status;
    private boolean closed;

    private VhostUserFrontend(String name, AioContext ctx, VhostUserSocket socket, Options options) {
        this.name = name;
        this.ctx = ctx;
        this.channel = new FrontendChannel(name, ctx, socket, options.replyTimeout(), reason -> {
            for (Runnable l : List.copyOf(needsResetListeners)) {
                l.run();
            }
        });
        this.rings = new FrontendRings(channel, 0, false);
        this.config = new FrontendConfig(name, ctx, channel, negotiated);
    }

    /**
     * Connects to the vhost-user socket at {@code path} and negotiates. Any thread; the work and the future's
     * completion happen on {@code ctx}'s home thread. Fails with an {@link IllegalStateException} naming the socket.
     */
    public static CompletableFuture<VhostUserFrontend> connect(AioContext ctx, String path, Options options) {
        CompletableFuture<VhostUserFrontend> out = new CompletableFuture<>();
        ctx.runOn(() -> {
            VhostUserSocket socket;
            try {
                socket = VhostUserSocket.connect(path);
            } catch (IllegalStateException e) {
                out.completeExceptionally(e);
                return;
            }
            VhostUserFrontend f = new VhostUserFrontend("vhost-user " + path, ctx, socket, options);
            f.negotiated.run(f.channel, WANTED_PROTOCOL_FEATURES, options).thenRun(() -> f.opened(options))
                    .whenComplete((v, e) -> {
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

    /** After negotiation: the rings to use. */
    private void opened(Options options) {
        int backendQueues = negotiated.backendQueues;
        int n = options.numQueues() == 0 ? backendQueues : options.numQueues();
        if (n > backendQueues) {
            throw new CompletionException(new IllegalStateException(n + " queues asked, the back-end has " + backendQueues));
        }
        rings = new FrontendRings(channel, n, has(negotiated.protocolFeatures, INFLIGHT_SHMFD));
        config.opened(options.configBytes());
    }

    // ---------------------------------------------------------------- what the back-end said

    /** Virtio and vhost-user feature bits GET_FEATURES returned (bit 30 included). */
    public long backendFeatures() {
        return negotiated.backendFeatures;
    }

    /** Protocol features negotiated (offered by the back-end and wanted here). */
    public long protocolFeatures() {
        return negotiated.protocolFeatures;
    }

    /** GET_QUEUE_NUM (1 without MQ). */
    public int backendQueues() {
        return negotiated.backendQueues;
    }

    /** GET_MAX_MEM_SLOTS, or 0 when not negotiated. */
    public long maxMemSlots() {
        return negotiated.maxMemSlots;
    }

    /** The inflight description the back-end returned, or null. */
    public Inflight inflight() {
        return rings.inflight();
    }

    /** Reconnection, as QEMU after a back-end restart: the first start hands {@code fd} (owned from now) over. */
    public void reuseInflight(int fd, Inflight desc) {
        ctx.assertHome();
        rings.reuseInflight(fd, desc);
    }

    /** The inflight buffer's fd (this front-end's own; dup it to keep it), or -1. Home thread. */
    public int inflightFd() {
        return rings.inflightFd();
    }

    /** Virtio-blk capacity in 512-byte sectors (config offset 0), or -1 without CONFIG; follows resizes. */
    public long capacitySectors() {
        return config.capacitySectors();
    }

    /** Virtio-blk num_queues (config offset 34; meaningful with VIRTIO_BLK_F_MQ), or -1 without CONFIG. */
    public int configNumQueues() {
        return config.numQueues();
    }

    /** Queue {@code q}'s kick eventfd as given to {@link #setQueueFds} (the harness writes it). */
    public int kickFd(int q) {
        return rings.kickFd(q);
    }

    /** Queue {@code q}'s call eventfd as given to {@link #setQueueFds} (the harness reads it). */
    public int callFd(int q) {
        return rings.callFd(q);
    }

    // ---------------------------------------------------------------- VirtioDevice

    @Override
    public int deviceId() {
        return VIRTIO_ID_BLOCK;
    }

    @Override
    public long deviceFeatures() {
        return negotiated.backendFeatures & ~FrontendMigration.NOT_DEVICE_BITS;
    }

    @Override
    public void setDriverFeatures(long features) {
        ctx.assertHome();
        long unknown = features & ~deviceFeatures();
        if (unknown != 0) {
            throw new IllegalArgumentException("feature bits 0x" + Long.toHexString(unknown) + " were not offered by " + name);
        }
        driverFeatures = features;
        long wire = FrontendMigration.wire(negotiated, features);
        channel.background("SET_FEATURES", () -> {
            CompletableFuture<Void> f = channel.callAck(VhostUserRequest.SET_FEATURES, VhostUserCodec.u64(wire));
            if (!has(negotiated.protocolFeatures, STATUS)) {
                return f;
            }
            status |= S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK;
            return f.thenCompose(v -> channel.callAck(VhostUserRequest.SET_STATUS, VhostUserCodec.u64(status)));
        });
    }

    @Override
    public long driverFeatures() {
        return driverFeatures;
    }

    /** Live migration: dirty logging and QEMU 7.2's device stop. Home thread. */
    public FrontendMigration migration() {
        return new FrontendMigration(this);
    }

    @Override
    public int numQueues() {
        return rings.count();
    }

    @Override
    public int maxQueueSize() {
        return MAX_QUEUE_SIZE;
    }

    @Override
    public int configSize() {
        return negotiated.config.length;
    }

    @Override
    public void readConfig(int offset, byte[] dst, int length) {
        config.read(offset, dst, length);
    }

    /** Sends SET_CONFIG (REPLY_ACK'ed when negotiated; a refusal is logged) and updates the cached bytes. */
    @Override
    public boolean writeConfig(int offset, byte[] src, int length) {
        ctx.assertHome();
        return config.write(offset, src, length);
    }

    /** Hears each VHOST_USER_BACKEND_CONFIG_CHANGE_MSG (a resize), once the config space was re-read. Home thread. */
    @Override
    public void onConfigChange(Runnable listener) {
        config.onChange(listener);
    }

    /**
     * Refused: a vhost-user back-end maps guest memory by the fd behind it, which a {@link GuestMemory} does not
     * carry. Use {@link #setMemoryTable} (as {@link VhostUserTransport#setMemory} does with memfd RAM).
     */
    @Override
    public void setMemory(GuestMemory m) {
        throw new IllegalArgumentException(name + ": a vhost-user back-end maps memory by fd; use setMemoryTable");
    }

    /**
     * Sends SET_MEM_TABLE for {@code regions} backed by {@code fds} (one per region, in order; the caller keeps its
     * fds, the back-end gets copies). Ring addresses given to {@link #configureQueue} are translated through them.
     */
    public void setMemoryTable(List<MemRegion> regions, int[] fds) {
        ctx.assertHome();
        int[] copies = memory.prepareTable(regions, fds);
        byte[] payload = VhostUserCodec.memTable(regions);
        channel.serial(() -> channel.callAck(VhostUserRequest.SET_MEM_TABLE, payload, copies)).whenComplete((v, e) -> {
            for (int c : copies) {
                io.vblk.aio.sys.FileIo.close(c);
            }
            if (e != null) {
                channel.broken("SET_MEM_TABLE: " + rootMessage(e));
            }
        });
    }

    @Override
    public void configureQueue(int index, QueueLayout layout) {
        ctx.assertHome();
        if (layout.size() <= 0 || layout.size() > MAX_QUEUE_SIZE || Integer.bitCount(layout.size()) != 1) {
            throw new IllegalArgumentException("queue size " + layout.size() + " is not a power of two up to " + MAX_QUEUE_SIZE);
        }
        rings.configure(index, layout);
    }

    /** Takes ownership of both fds (closed when replaced or at {@link #close}); a started ring gets them at once. */
    @Override
    public void setQueueFds(int index, int kickFd, int callFd) {
        ctx.assertHome();
        if (rings.setFds(index, kickFd, callFd)) {
            channel.background("switch fds of queue " + index, () -> rings.sendFds(index));
        }
    }

    /** Starts the ring on the back-end; the first start also says DRIVER_OK with SET_STATUS (STATUS). */
    @Override
    public void startQueue(int index, Runnable onStarted) {
        ctx.assertHome();
        var start = rings.start(index, memory, has(negotiated.backendFeatures, VhostUserProtocolFeature.F_PROTOCOL_FEATURES),
                VirtioFeatures.has(driverFeatures, VirtioFeatures.RING_PACKED));
        channel.background("start queue " + index, () -> start.get().thenCompose(v -> {
            if (!has(negotiated.protocolFeatures, STATUS) || (status & S_DRIVER_OK) != 0) {
                return CompletableFuture.<Void>completedFuture(null);
            }
            status |= S_DRIVER_OK;
            return channel.callAck(VhostUserRequest.SET_STATUS, VhostUserCodec.u64(status));
        }).thenRun(onStarted));
    }

    @Override
    public void stopQueue(int index, IntConsumer onStopped) {
        ctx.assertHome();
        channel.background("stop queue " + index, rings.stop(index, onStopped));
    }

    @Override
    public boolean queueStarted(int index) {
        return rings.started(index);
    }

    /** RESET_DEVICE (or the deprecated RESET_OWNER when the back-end lacks it). Every queue must be stopped. */
    @Override
    public void reset() {
        ctx.assertHome();
        int started = rings.anyStarted();
        if (started >= 0) {
            throw new IllegalStateException("reset with queue " + started + " started");
        }
        driverFeatures = 0;
        status = 0;
        VhostUserRequest r = has(negotiated.protocolFeatures, RESET_DEVICE) ? VhostUserRequest.RESET_DEVICE
                : VhostUserRequest.RESET_OWNER;
        channel.background(r.name(), () -> channel.callAck(r, new byte[0]));
    }

    @Override
    public boolean needsReset() {
        return channel.brokenReason() != null;
    }

    @Override
    public String needsResetReason() {
        return channel.brokenReason();
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
        channel.close();
        rings.close();
        config.close();
    }

    /**
     * Completes once every operation asked so far has been answered (or exceptionally, with the NEEDS_RESET reason).
     * Blocking transports wait on it to make fire-and-forget calls ({@link #reset}, ...) synchronous. Home thread.
     */
    public CompletableFuture<Void> settled() {
        ctx.assertHome();
        return channel.settled();
    }

    @Override
    public String toString() {
        return "VhostUserFrontend[" + name + "]";
    }
}
