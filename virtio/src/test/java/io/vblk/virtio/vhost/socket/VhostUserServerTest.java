package io.vblk.virtio.vhost.socket;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioOptions;
import io.vblk.aio.IoThread;
import io.vblk.aio.sys.EventFds;
import io.vblk.aio.sys.FileIo;
import io.vblk.aio.sys.Mmap;
import io.vblk.aio.sys.UnixSockets;
import io.vblk.virtio.queue.InflightLog;
import io.vblk.virtio.queue.QueueLayout;
import io.vblk.virtio.vhost.RawClient;
import io.vblk.virtio.vhost.RecordingDevice;
import io.vblk.guest.GuestRam;
import io.vblk.guest.GuestVring;
import io.vblk.guest.vhost.VhostUserFrontend;
import io.vblk.virtio.vhost.server.VhostUserSession;
import io.vblk.virtio.vhost.wire.InflightLayout;
import io.vblk.virtio.vhost.wire.VhostUserCodec;
import io.vblk.virtio.vhost.wire.VhostUserCodec.MemRegion;
import io.vblk.virtio.vhost.wire.VhostUserMessage;
import io.vblk.virtio.vhost.wire.VhostUserProtocolFeature;
import io.vblk.virtio.vhost.wire.VhostUserRequest;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * vblk's vhost-user server (export, connection, handler) driven by vblk's front-end and by a raw
 * client, over a real UNIX socket, with a {@link RecordingDevice} that shows what reaches the
 * device. Each malformed message must close only its connection, with a reason naming the
 * problem, while the export keeps serving the next connection.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class VhostUserServerTest {
    private static final Duration T = Duration.ofSeconds(10);
    private static final long VERSION_1 = 1L << 32;

    @TempDir
    Path dir;
    private IoThread io;
    private IoThread feIo;
    private AioContext ctx;
    private String sock;
    private RecordingDevice device;
    private VhostUserExport export;
    private final BlockingQueue<String> reasons = new LinkedBlockingQueue<>();

    private <T> T on(Callable<T> c) {
        return AioContext.await(ctx.callOn(c), T);
    }

    private void run(Runnable r) {
        on(() -> {
            r.run();
            return null;
        });
    }

    @BeforeEach
    void setUp() {
        io = IoThread.start("vhost-main", AioOptions.DEFAULT);
        feIo = IoThread.start("frontend", AioOptions.DEFAULT);
        ctx = io.ctx();
        sock = dir.resolve("vblk.sock").toString();
        device = on(() -> new RecordingDevice(ctx, 2, 2048));
        export = on(() -> {
            VhostUserExport e = VhostUserExport.listen("e0", ctx, device, sock);
            e.onConnectionClosed(reasons::add);
            return e;
        });
    }

    @AfterEach
    void tearDown() {
        CompletableFuture<Void> idle = new CompletableFuture<>();
        run(() -> export.close(() -> idle.complete(null)));
        AioContext.await(idle, T);
        run(device::close);
        feIo.close();
        io.close();
    }

    private String nextReason() throws InterruptedException {
        String r = reasons.poll(10, TimeUnit.SECONDS);
        assertThat(r).as("a connection closed").isNotNull();
        return r;
    }

    private VhostUserFrontend connect() {
        return AioContext.await(VhostUserFrontend.connect(feIo.ctx(), sock, VhostUserFrontend.Options.defaults()), T);
    }

    /**
     * The mock guest's side of one queue: memfd RAM with a split ring laid out in it (the guest
     * package's {@link GuestVring}) and the queue's kick and call eventfds.
     */
    private record GuestQueue(GuestRam ram, GuestVring vring, int kickFd, int callFd) implements AutoCloseable {
        static GuestQueue create(int size) {
            GuestRam ram = GuestRam.memfd("vhost-test", GuestRam.DEFAULT_GPA_BASE, 1 << 20);
            return new GuestQueue(ram, GuestVring.allocate(ram, size), EventFds.eventfd(0, EventFds.EFD_NONBLOCK | EventFds.EFD_CLOEXEC),
                    EventFds.eventfd(0, EventFds.EFD_NONBLOCK | EventFds.EFD_CLOEXEC));
        }

        QueueLayout layout(int nextAvail) {
            QueueLayout l = vring.layout();
            return new QueueLayout(l.size(), l.descAddr(), l.availAddr(), l.usedAddr(), nextAvail);
        }

        /** Sends the RAM's memory table (its memfd, its mapping here as the user address) and the queue. */
        void setUp(VhostUserFrontend fe, int q, int nextAvail) {
            fe.setMemoryTable(List.of(new MemRegion(ram.gpaBase(), ram.size(), ram.hostAddress(), 0)), new int[]{ram.fd()});
            fe.configureQueue(q, layout(nextAvail));
            fe.setQueueFds(q, FileIo.dup(kickFd), FileIo.dup(callFd));
        }

        @Override
        public void close() {
            FileIo.close(kickFd);
            FileIo.close(callFd);
            ram.close();
        }
    }

    private <T> T fe(Callable<T> c) {
        return AioContext.await(feIo.ctx().callOn(c), T);
    }

    /** The export still serves: a fresh connection gets GET_FEATURES answered. */
    private void assertServesNextConnection() throws Exception {
        try (RawClient c = new RawClient(sock)) {
            c.send(VhostUserRequest.GET_FEATURES, false, new byte[0]);
            VhostUserMessage r = c.reply(5000);
            assertThat(r.request()).isEqualTo(VhostUserRequest.GET_FEATURES.id);
            assertThat(r.flags()).isEqualTo(0x5);
            assertThat(VhostUserCodec.decodeU64(r) & VERSION_1).isNotZero();
        }
        assertThat(nextReason()).isEqualTo("front-end disconnected");
    }

    @Test
    void frontendNegotiatesAndRingsReachTheDeviceTranslated() throws Exception {
        VhostUserFrontend fe = connect();
        long wanted = VhostUserFrontend.WANTED_PROTOCOL_FEATURES & VhostUserSession.OFFERED_PROTOCOL_FEATURES;
        assertThat(fe.protocolFeatures()).isEqualTo(wanted);
        assertThat(fe.backendQueues()).isEqualTo(2);
        assertThat(fe.capacitySectors()).isEqualTo(2048);
        assertThat(fe.configNumQueues()).isEqualTo(2);
        assertThat(fe.maxMemSlots()).isEqualTo(VhostUserSession.MAX_MEM_SLOTS);
        assertThat(fe.deviceFeatures()).isEqualTo(device.offered);

        try (GuestQueue ring = GuestQueue.create(16)) {
            CompletableFuture<Void> started = new CompletableFuture<>();
            fe(() -> {
                fe.setDriverFeatures(VERSION_1 | (1L << 29));
                ring.setUp(fe, 1, 5);
                fe.startQueue(1, () -> started.complete(null));
                return null;
            });
            AioContext.await(started, T);
            assertThat(on(() -> device.started[1])).isTrue();
            QueueLayout l = on(() -> device.layouts[1]);
            // Front-end addresses translated back to guest-physical; the record is the inflight buffer's (INFLIGHT_SHMFD).
            assertThat(new QueueLayout(l.size(), l.descAddr(), l.availAddr(), l.usedAddr(), l.nextAvailIdx()))
                    .isEqualTo(ring.layout(5));
            assertThat(l.inflight()).isNotSameAs(InflightLog.NONE);
            assertThat(device.driverFeatures).isEqualTo(VERSION_1 | (1L << 29));
            assertThat(device.calls).containsSubsequence("features " + Long.toHexString(VERSION_1 | (1L << 29)),
                    "memory 1", "configure 1 " + l, "fds 1", "start 1");
            // The device got the very eventfds: a kick written by the guest reaches it, its call reaches the guest.
            EventFds.eventfdWrite(ring.kickFd(), 3);
            assertThat(on(() -> EventFds.eventfdRead(device.kick[1]))).isEqualTo(3);
            run(() -> EventFds.eventfdWrite(device.call[1], 1));
            assertThat(UnixSockets.poll(ring.callFd(), UnixSockets.POLLIN, 5000)).isPositive();
            // Inflight buffer: one 64-aligned region per queue of 16 entries.
            assertThat(fe.inflight().mmapSize()).isEqualTo(InflightLayout.queueRegionBytes(16) * 2);

            run(() -> device.nextAvail[1] = 9);
            CompletableFuture<Integer> base = new CompletableFuture<>();
            fe(() -> {
                fe.stopQueue(1, base::complete);
                return null;
            });
            assertThat(AioContext.await(base, T)).isEqualTo(9);
            assertThat(on(() -> device.started[1])).isFalse();
            AioContext.await(fe(() -> {
                fe.reset();
                return fe.settled();
            }), T);
            assertThat(device.calls).endsWith("reset");
            fe(() -> {
                fe.close();
                return null;
            });
        }
        assertThat(nextReason()).isEqualTo("front-end disconnected");
        assertServesNextConnection();
    }

    @Test
    void getVringBaseRepliesOnlyOnceInFlightRequestsAreDone() throws Exception {
        VhostUserFrontend fe = connect();
        try (GuestQueue ring = GuestQueue.create(16)) {
            CompletableFuture<Void> started = new CompletableFuture<>();
            fe(() -> {
                fe.setDriverFeatures(VERSION_1);
                ring.setUp(fe, 0, 0);
                fe.startQueue(0, () -> started.complete(null));
                return null;
            });
            AioContext.await(started, T);
            run(() -> {
                device.holdStops = true;
                device.nextAvail[0] = 4;
            });
            CompletableFuture<Integer> base = new CompletableFuture<>();
            CompletableFuture<Long> statusAfter = new CompletableFuture<>();
            fe(() -> {
                fe.stopQueue(0, base::complete);
                return null;
            });
            assertThat(AioContext.await(device.stopRequested, T)).isZero();
            // The stop is held (a request still in flight): no reply yet, the connection reads nothing more.
            assertThat(base).isNotDone();
            assertThat(on(device::heldStops)).isEqualTo(1);
            assertThat(on(() -> export.connection().session().pending())).isTrue();
            assertThat(on(device::releaseStops)).isEqualTo(1);
            assertThat(AioContext.await(base, T)).isEqualTo(4);
            assertThat(on(() -> export.connection().session().pending())).isFalse();
            fe(() -> {
                fe.close();
                return null;
            });
        }
        assertThat(nextReason()).isEqualTo("front-end disconnected");
    }

    @Test
    void disconnectWithRequestsInFlightStopsTheQueueBeforeTheNextSession() throws Exception {
        VhostUserFrontend fe = connect();
        try (GuestQueue ring = GuestQueue.create(16)) {
            CompletableFuture<Void> started = new CompletableFuture<>();
            fe(() -> {
                fe.setDriverFeatures(VERSION_1);
                ring.setUp(fe, 0, 0);
                fe.startQueue(0, () -> started.complete(null));
                return null;
            });
            AioContext.await(started, T);
            run(() -> device.holdStops = true);
            fe(() -> {
                fe.close();
                return null;
            });
        }
        AioContext.await(device.stopRequested, T);
        try (RawClient next = new RawClient(sock)) {
            next.send(VhostUserRequest.GET_FEATURES, false, new byte[0]);
            // The old session is still draining: the next client waits in the backlog, unserved.
            assertThat(next.silentFor(300)).isTrue();
            assertThat(reasons).isEmpty();
            assertThat(on(() -> device.memory.regionCount())).isEqualTo(1);
            run(() -> device.holdStops = false);
            assertThat(on(device::releaseStops)).isEqualTo(1);
            assertThat(nextReason()).isEqualTo("front-end disconnected");
            assertThat(device.calls).containsSubsequence("stop 0", "stopped 0", "reset", "memory 0");
            assertThat(next.reply(5000).request()).isEqualTo(VhostUserRequest.GET_FEATURES.id);
        }
        assertThat(nextReason()).isEqualTo("front-end disconnected");
    }

    @Test
    void disconnectMidMessageKeepsTheExport() throws Exception {
        try (RawClient c = new RawClient(sock)) {
            byte[] kick = VhostUserCodec.encode(VhostUserMessage.request(VhostUserRequest.SET_VRING_KICK, false,
                    VhostUserCodec.u64(0)));
            int efd = EventFds.eventfd(0, EventFds.EFD_CLOEXEC);
            c.sendBytes(java.util.Arrays.copyOf(kick, 15), efd);
            FileIo.close(efd);
        }
        assertThat(nextReason()).startsWith("front-end disconnected mid-message (15 bytes");
        try (RawClient c = new RawClient(sock)) {
            c.sendBytes(new byte[]{1, 0, 0});
        }
        assertThat(nextReason()).startsWith("front-end disconnected mid-message (3 bytes");
        assertServesNextConnection();
    }

    private void assertClosesWith(String reasonPart, Runnable sendBadMessage, RawClient c) throws Exception {
        sendBadMessage.run();
        c.awaitClosedByServer(5000);
        assertThat(nextReason()).startsWith("malformed message: ").contains(reasonPart);
    }

    private void malformed(String reasonPart, java.util.function.Consumer<RawClient> send) throws Exception {
        try (RawClient c = new RawClient(sock)) {
            assertClosesWith(reasonPart, () -> send.accept(c), c);
        }
        assertServesNextConnection();
    }

    @Test
    void malformedMessagesCloseOnlyTheirConnectionWithANamedReason() throws Exception {
        malformed("SET_VRING_NUM (8): bad size 4, expected 8",
                c -> c.sendBytes(VhostUserCodec.encode(new VhostUserMessage(8, 1, new byte[4], null))));
        malformed("unknown request 99", c -> c.sendBytes(VhostUserCodec.encode(new VhostUserMessage(99, 1, new byte[0], null))));
        malformed("SET_VRING_KICK (12): queue 0 without VRING_NOFD needs 1 fd, got 0",
                c -> c.send(VhostUserRequest.SET_VRING_KICK, false, VhostUserCodec.u64(0)));
        malformed("SET_VRING_NUM (8): queue index 7 out of range, the device has 2 queues",
                c -> c.send(VhostUserRequest.SET_VRING_NUM, false, VhostUserCodec.vringState(7, 16)));
        malformed("SET_VRING_CALL (13): queue index 200 out of range",
                c -> c.send(VhostUserRequest.SET_VRING_CALL, false, VhostUserCodec.u64(200 | 0x100)));
        malformed("SET_VRING_NUM (8): queue 0 size 100 is not a power of two",
                c -> c.send(VhostUserRequest.SET_VRING_NUM, false, VhostUserCodec.vringState(0, 100)));
        malformed("guest memory regions overlap", c -> {
            int a = memfd(64 << 10);
            int b = memfd(64 << 10);
            c.send(VhostUserRequest.SET_MEM_TABLE, false, VhostUserCodec.memTable(List.of(
                    new MemRegion(0, 64 << 10, 0x7000_0000L, 0), new MemRegion(32 << 10, 64 << 10, 0x7100_0000L, 0))), a, b);
            FileIo.close(a);
            FileIo.close(b);
        });
        malformed("SET_MEM_TABLE (5): 2 regions but 1 fds", c -> {
            int a = memfd(4096);
            c.send(VhostUserRequest.SET_MEM_TABLE, false, VhostUserCodec.memTable(List.of(
                    new MemRegion(0, 4096, 0x7000_0000L, 0), new MemRegion(8192, 4096, 0x7100_0000L, 0))), a);
            FileIo.close(a);
        });
        malformed("GET_FEATURES (1): unexpected fds: 1 attached, 0 expected", c -> {
            int a = memfd(4096);
            c.send(VhostUserRequest.GET_FEATURES, false, new byte[0], a);
            FileIo.close(a);
        });
        malformed("SET_LOG_BASE (6): missing fds: 0 attached, 1 expected",
                c -> c.send(VhostUserRequest.SET_LOG_BASE, false, new byte[16]));
        malformed("SET_LOG_BASE (6) without VHOST_USER_PROTOCOL_F_LOG_SHMFD negotiated", c -> {
            int a = memfd(4096);
            c.send(VhostUserRequest.SET_LOG_BASE, false, VhostUserCodec.logBase(new VhostUserCodec.LogBase(4096, 0)), a);
            FileIo.close(a);
        });
        malformed("SET_LOG_BASE (6): log offset + size = 8192 bytes lies beyond the end of its fd (4096 bytes)", c -> {
            c.send(VhostUserRequest.SET_PROTOCOL_FEATURES, false,
                    VhostUserCodec.u64(VhostUserProtocolFeature.bit(VhostUserProtocolFeature.LOG_SHMFD)));
            int a = memfd(4096);
            c.send(VhostUserRequest.SET_LOG_BASE, false, VhostUserCodec.logBase(new VhostUserCodec.LogBase(8192, 0)), a);
            FileIo.close(a);
        });
        malformed("SET_LOG_BASE (6): log offset 4 is not 8-byte aligned", c -> {
            c.send(VhostUserRequest.SET_PROTOCOL_FEATURES, false,
                    VhostUserCodec.u64(VhostUserProtocolFeature.bit(VhostUserProtocolFeature.LOG_SHMFD)));
            int a = memfd(4096);
            c.send(VhostUserRequest.SET_LOG_BASE, false, VhostUserCodec.logBase(new VhostUserCodec.LogBase(64, 4)), a);
            FileIo.close(a);
        });
        malformed("SET_VRING_ADDR (9): queue 0 flags 0x2: only VHOST_VRING_F_LOG (bit 0) is defined",
                c -> c.send(VhostUserRequest.SET_VRING_ADDR, false, VhostUserCodec.vringAddr(
                        new VhostUserCodec.VringAddr(0, 2, 0x100000, 0x12000, 0x11000, 0))));
        malformed("protocol features RARP were not offered", c -> c.send(VhostUserRequest.SET_PROTOCOL_FEATURES, false,
                VhostUserCodec.u64(VhostUserProtocolFeature.bit(VhostUserProtocolFeature.RARP))));
        malformed("REPLY flag is set on a request", c -> c.send(VhostUserMessage.reply(1, new byte[0])));
        malformed("SET_FEATURES (2): feature bits 0x1 were not offered",
                c -> c.send(VhostUserRequest.SET_FEATURES, false, VhostUserCodec.u64(1)));
        malformed("queue 0: descriptor table at user address 0x100000 (256 bytes) is not inside guest memory", c -> {
            int a = memfd(64 << 10);
            c.send(VhostUserRequest.SET_MEM_TABLE, false, VhostUserCodec.memTable(List.of(
                    new MemRegion(0, 64 << 10, 0x10000, 0))), a);
            FileIo.close(a);
            c.send(VhostUserRequest.SET_VRING_NUM, false, VhostUserCodec.vringState(0, 16));
            c.send(VhostUserRequest.SET_VRING_ADDR, false, VhostUserCodec.vringAddr(
                    new VhostUserCodec.VringAddr(0, 0, 0x100000, 0x12000, 0x11000, 0)));
            int k = EventFds.eventfd(0, EventFds.EFD_CLOEXEC);
            c.send(VhostUserRequest.SET_VRING_KICK, false, VhostUserCodec.u64(0), k);
            FileIo.close(k);
        });
        assertThat(device.calls).contains("reset");
    }

    private static int memfd(long size) {
        int fd = Mmap.memfdCreate("test", Mmap.MFD_CLOEXEC);
        FileIo.ftruncate(fd, size);
        return fd;
    }

    @Test
    void replyAckConfigSpaceAndStatus() throws Exception {
        try (RawClient c = new RawClient(sock)) {
            c.send(VhostUserRequest.SET_PROTOCOL_FEATURES, false, VhostUserCodec.u64(VhostUserSession.OFFERED_PROTOCOL_FEATURES));
            c.send(VhostUserRequest.SET_OWNER, true, new byte[0]);
            assertThat(VhostUserCodec.decodeU64(c.reply(5000))).isZero();
            // A front-end with a longer virtio_blk_config than the device's: the rest reads as zero.
            c.send(VhostUserRequest.GET_CONFIG, false, VhostUserCodec.config(0, 0, new byte[96]));
            VhostUserMessage r = c.reply(5000);
            VhostUserCodec.ConfigSpace cs = VhostUserCodec.decodeConfig(r);
            assertThat(cs.size()).isEqualTo(96);
            ByteBuffer b = ByteBuffer.wrap(cs.data()).order(ByteOrder.LITTLE_ENDIAN);
            assertThat(b.getLong(0)).isEqualTo(2048);
            assertThat(b.getShort(34)).isEqualTo((short) 2);
            assertThat(java.util.Arrays.copyOfRange(cs.data(), 60, 96)).containsOnly(0);
            // Beyond the 256-byte config space: an empty reply means "error".
            c.send(VhostUserRequest.GET_CONFIG, false, VhostUserCodec.config(200, 0, new byte[100]));
            assertThat(c.reply(5000).size()).isZero();
            // The writeback byte is writable; capacity is not (refused, acked non-zero, connection stays).
            c.send(VhostUserRequest.SET_CONFIG, true, VhostUserCodec.config(32, 0, new byte[]{1}));
            assertThat(VhostUserCodec.decodeU64(c.reply(5000))).isZero();
            c.send(VhostUserRequest.SET_CONFIG, true, VhostUserCodec.config(0, 0, new byte[8]));
            assertThat(VhostUserCodec.decodeU64(c.reply(5000))).isEqualTo(1);
            assertThat(on(() -> device.writeback)).isEqualTo((byte) 1);
            // Status: what was set, plus NEEDS_RESET once the device needs it; the error eventfd fires.
            c.send(VhostUserRequest.SET_STATUS, false, VhostUserCodec.u64(0xb));
            int err = EventFds.eventfd(0, EventFds.EFD_CLOEXEC | EventFds.EFD_NONBLOCK);
            c.send(VhostUserRequest.SET_VRING_ERR, true, VhostUserCodec.u64(1), err);
            assertThat(VhostUserCodec.decodeU64(c.reply(5000))).isZero();
            c.send(VhostUserRequest.GET_STATUS, false, new byte[0]);
            assertThat(VhostUserCodec.decodeU64(c.reply(5000))).isEqualTo(0xb);
            run(() -> device.breakDevice("test: descriptor loop"));
            assertThat(EventFds.eventfdRead(err)).isEqualTo(1);
            c.send(VhostUserRequest.GET_STATUS, false, new byte[0]);
            assertThat(VhostUserCodec.decodeU64(c.reply(5000))).isEqualTo(0xb | 0x40);
            c.send(VhostUserRequest.GET_QUEUE_NUM, false, new byte[0]);
            assertThat(VhostUserCodec.decodeU64(c.reply(5000))).isEqualTo(2);
            // SET_STATUS 0 resets the device (virtio 2.1), acked once done.
            c.send(VhostUserRequest.SET_STATUS, true, VhostUserCodec.u64(0));
            assertThat(VhostUserCodec.decodeU64(c.reply(5000))).isZero();
            assertThat(on(device::needsReset)).isFalse();
            FileIo.close(err);
        }
        assertThat(nextReason()).isEqualTo("front-end disconnected");
    }

    @Test
    void memorySlotsAddAndRemoveRegionsWhileAQueueRuns() throws Exception {
        try (RawClient c = new RawClient(sock)) {
            int a = memfd(64 << 10);
            c.send(VhostUserRequest.ADD_MEM_REG, true, VhostUserCodec.memReg(new MemRegion(0, 64 << 10, 0x10000, 0)), a);
            FileIo.close(a);
            assertThat(VhostUserCodec.decodeU64(c.reply(5000))).isZero();
            c.send(VhostUserRequest.SET_VRING_NUM, false, VhostUserCodec.vringState(0, 16));
            c.send(VhostUserRequest.SET_VRING_ADDR, false, VhostUserCodec.vringAddr(
                    new VhostUserCodec.VringAddr(0, 0, 0x10000, 0x12000, 0x11000, 0)));
            int k = EventFds.eventfd(0, EventFds.EFD_CLOEXEC);
            c.send(VhostUserRequest.SET_VRING_KICK, true, VhostUserCodec.u64(0), k);
            FileIo.close(k);
            assertThat(VhostUserCodec.decodeU64(c.reply(5000))).isZero();
            assertThat(on(() -> device.started[0])).isTrue();
            assertThat(on(() -> device.layouts[0])).isEqualTo(new QueueLayout(16, 0, 0x1000, 0x2000, 0));
            // A second region: the running queue is stopped, the map swapped, the queue restarted.
            run(() -> device.nextAvail[0] = 3);
            int b = memfd(64 << 10);
            c.send(VhostUserRequest.ADD_MEM_REG, true, VhostUserCodec.memReg(new MemRegion(1 << 20, 64 << 10, 0x90000, 0)), b);
            FileIo.close(b);
            assertThat(VhostUserCodec.decodeU64(c.reply(5000))).isZero();
            assertThat(on(() -> device.memory.regionCount())).isEqualTo(2);
            assertThat(on(() -> device.started[0])).isTrue();
            assertThat(on(() -> device.layouts[0].nextAvailIdx())).isEqualTo(3);
            c.send(VhostUserRequest.REM_MEM_REG, true, VhostUserCodec.memReg(new MemRegion(1 << 20, 64 << 10, 0x90000, 77)));
            assertThat(VhostUserCodec.decodeU64(c.reply(5000))).isZero();
            assertThat(on(() -> device.memory.regionCount())).isEqualTo(1);
            // Removing a region that is not there is a protocol error.
            assertClosesWith("REM_MEM_REG (38): no region", () -> c.send(VhostUserRequest.REM_MEM_REG, false,
                    VhostUserCodec.memReg(new MemRegion(1 << 20, 64 << 10, 0x90000, 0))), c);
        }
        assertThat(device.calls).containsSubsequence("start 0", "stop 0", "stopped 0", "memory 2", "start 0", "stop 0",
                "memory 1", "start 0", "stop 0", "reset", "memory 0");
    }
}
