package io.vblk.virtio.vhost.socket;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioOptions;
import io.vblk.aio.IoThread;
import io.vblk.aio.sys.EventFds;
import io.vblk.aio.sys.FileIo;
import io.vblk.aio.sys.Mmap;
import io.vblk.virtio.queue.QueueLayout;
import io.vblk.virtio.vhost.RawClient;
import io.vblk.virtio.vhost.RecordingDevice;
import io.vblk.virtio.vhost.server.VhostUserSession;
import io.vblk.virtio.vhost.wire.InflightLayout;
import io.vblk.virtio.vhost.wire.VhostUserCodec;
import io.vblk.virtio.vhost.wire.VhostUserCodec.Inflight;
import io.vblk.virtio.vhost.wire.VhostUserCodec.MemRegion;
import io.vblk.virtio.vhost.wire.VhostUserCodec.VringAddr;
import io.vblk.virtio.vhost.wire.VhostUserMessage;
import io.vblk.virtio.vhost.wire.VhostUserProtocolFeature;
import io.vblk.virtio.vhost.wire.VhostUserRequest;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.lang.foreign.MemorySegment;
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
 * Session rules of the vhost-user server, driven message by message with a raw client: ring
 * start conditions (kick, enable, protocol features), live changes to a running ring, the
 * inflight buffer, a disconnect while a reply is pending, and several exports side by side.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class VhostUserSessionTest {
    private static final Duration T = Duration.ofSeconds(10);
    private static final long VERSION_1 = 1L << 32;
    private static final long PROTOCOL_FEATURES = 1L << 30;

    @TempDir
    Path dir;
    private IoThread io;
    private AioContext ctx;
    private RecordingDevice device;
    private VhostUserExport export;
    private String sock;
    private final BlockingQueue<String> reasons = new LinkedBlockingQueue<>();

    private <T> T on(Callable<T> c) {
        return AioContext.await(ctx.callOn(c), T);
    }

    @BeforeEach
    void setUp() {
        io = IoThread.start("vhost-main", AioOptions.DEFAULT);
        ctx = io.ctx();
        sock = dir.resolve("a.sock").toString();
        device = on(() -> new RecordingDevice(ctx, 2, 4096));
        export = on(() -> {
            VhostUserExport e = VhostUserExport.listen("a", ctx, device, sock);
            e.onConnectionClosed(reasons::add);
            return e;
        });
    }

    @AfterEach
    void tearDown() {
        CompletableFuture<Void> idle = new CompletableFuture<>();
        on(() -> {
            export.close(() -> idle.complete(null));
            return null;
        });
        AioContext.await(idle, T);
        on(() -> {
            device.close();
            return null;
        });
        io.close();
    }

    private static int memfd(long size) {
        int fd = Mmap.memfdCreate("test", Mmap.MFD_CLOEXEC);
        FileIo.ftruncate(fd, size);
        return fd;
    }

    private static long ack(RawClient c) throws Exception {
        return VhostUserCodec.decodeU64(c.reply(5000));
    }

    /** Memory at gpa 0 (uaddr 0x10000), queue {@code q} of size 16 described; not kicked. */
    private static void describeRing(RawClient c, int q) {
        int m = memfd(64 << 10);
        c.send(VhostUserRequest.SET_MEM_TABLE, false, VhostUserCodec.memTable(List.of(new MemRegion(0, 64 << 10, 0x10000, 0))), m);
        FileIo.close(m);
        c.send(VhostUserRequest.SET_VRING_NUM, false, VhostUserCodec.vringState(q, 16));
        c.send(VhostUserRequest.SET_VRING_BASE, false, VhostUserCodec.vringState(q, 0));
        c.send(VhostUserRequest.SET_VRING_ADDR, false, VhostUserCodec.vringAddr(new VringAddr(q, 0, 0x10000, 0x12000, 0x11000, 0)));
    }

    private static void kick(RawClient c, int q, boolean needReply) {
        int k = EventFds.eventfd(0, EventFds.EFD_CLOEXEC);
        c.send(VhostUserRequest.SET_VRING_KICK, needReply, VhostUserCodec.u64(q), k);
        FileIo.close(k);
    }

    @Test
    void withProtocolFeaturesARingRunsOnlyOnceEnabledAndStopsWhenDisabled() throws Exception {
        try (RawClient c = new RawClient(sock)) {
            c.send(VhostUserRequest.SET_FEATURES, false, VhostUserCodec.u64(VERSION_1 | PROTOCOL_FEATURES));
            describeRing(c, 0);
            kick(c, 0, true);
            assertThat(ack(c)).isZero();
            assertThat(on(() -> device.started[0])).as("started but disabled").isFalse();
            c.send(VhostUserRequest.SET_VRING_ENABLE, true, VhostUserCodec.vringState(0, 1));
            assertThat(ack(c)).isZero();
            assertThat(on(() -> device.started[0])).isTrue();
            on(() -> device.nextAvail[0] = 6);
            c.send(VhostUserRequest.SET_VRING_ENABLE, true, VhostUserCodec.vringState(0, 0));
            assertThat(ack(c)).isZero();
            assertThat(on(() -> device.started[0])).isFalse();
            c.send(VhostUserRequest.SET_VRING_ENABLE, true, VhostUserCodec.vringState(0, 1));
            assertThat(ack(c)).isZero();
            assertThat(on(() -> device.layouts[0].nextAvailIdx())).as("resumes where it stopped").isEqualTo(6);
            // A ring is stopped by GET_VRING_BASE and needs a new kick to start again.
            c.send(VhostUserRequest.GET_VRING_BASE, false, VhostUserCodec.vringState(0, 0));
            assertThat(VhostUserCodec.decodeVringState(c.reply(5000))).isEqualTo(new VhostUserCodec.VringState(0, 6));
            c.send(VhostUserRequest.SET_VRING_ENABLE, true, VhostUserCodec.vringState(0, 1));
            assertThat(ack(c)).isZero();
            assertThat(on(() -> device.started[0])).isFalse();
        }
        assertThat(reasons.poll(10, TimeUnit.SECONDS)).isEqualTo("front-end disconnected");
    }

    @Test
    void withoutProtocolFeaturesTheKickStartsTheRing() throws Exception {
        try (RawClient c = new RawClient(sock)) {
            c.send(VhostUserRequest.SET_FEATURES, false, VhostUserCodec.u64(VERSION_1));
            describeRing(c, 1);
            kick(c, 1, false);
            c.send(VhostUserRequest.GET_FEATURES, false, new byte[0]);
            c.reply(5000);
            assertThat(on(() -> device.started[1])).isTrue();
            assertThat(on(() -> device.layouts[1])).isEqualTo(new QueueLayout(16, 0, 0x1000, 0x2000, 0));
        }
        assertThat(reasons.poll(10, TimeUnit.SECONDS)).isEqualTo("front-end disconnected");
    }

    @Test
    void aNewCallFdOnARunningRingIsSwitchedInPlace() throws Exception {
        try (RawClient c = new RawClient(sock)) {
            c.send(VhostUserRequest.SET_FEATURES, false, VhostUserCodec.u64(VERSION_1));
            describeRing(c, 0);
            kick(c, 0, true);
            assertThat(ack(c)).isZero();
            on(() -> device.nextAvail[0] = 2);
            int call = EventFds.eventfd(0, EventFds.EFD_CLOEXEC | EventFds.EFD_NONBLOCK);
            c.send(VhostUserRequest.SET_VRING_CALL, true, VhostUserCodec.u64(0), call);
            assertThat(ack(c)).isZero();
            assertThat(on(() -> device.started[0])).isTrue();
            on(() -> EventFds.eventfdWrite(device.call[0], 5));
            assertThat(EventFds.eventfdRead(call)).isEqualTo(5);
            FileIo.close(call);
            // The queue never stopped: the device got the new fds while running.
            assertThat(device.calls).containsSubsequence("start 0", "fds 0").doesNotContain("stop 0");
            // VRING_NOFD: the ring runs without a call fd (a polling peer).
            c.send(VhostUserRequest.SET_VRING_CALL, true, VhostUserCodec.u64(0x100));
            assertThat(ack(c)).isZero();
            assertThat(on(() -> device.call[0])).isEqualTo(-1);
        }
        assertThat(reasons.poll(10, TimeUnit.SECONDS)).isEqualTo("front-end disconnected");
    }

    @Test
    void numOrBaseOnARunningRingIsAProtocolError() throws Exception {
        try (RawClient c = new RawClient(sock)) {
            c.send(VhostUserRequest.SET_FEATURES, false, VhostUserCodec.u64(VERSION_1));
            describeRing(c, 0);
            kick(c, 0, false);
            c.send(VhostUserRequest.SET_VRING_BASE, false, VhostUserCodec.vringState(0, 3));
            c.awaitClosedByServer(5000);
        }
        assertThat(reasons.poll(10, TimeUnit.SECONDS))
                .isEqualTo("malformed message: SET_VRING_BASE (10): queue 0 is running; stop it with GET_VRING_BASE first");
    }

    @Test
    void disconnectWhileGetVringBaseIsPendingTearsDownAfterTheStop() throws Exception {
        try (RawClient c = new RawClient(sock)) {
            c.send(VhostUserRequest.SET_FEATURES, false, VhostUserCodec.u64(VERSION_1));
            describeRing(c, 0);
            kick(c, 0, true);
            assertThat(ack(c)).isZero();
            on(() -> device.holdStops = true);
            c.send(VhostUserRequest.GET_VRING_BASE, false, VhostUserCodec.vringState(0, 0));
            AioContext.await(device.stopRequested, T);
            // Messages behind the pending one wait: no reply to GET_FEATURES either.
            c.send(VhostUserRequest.GET_FEATURES, false, new byte[0]);
            assertThat(c.silentFor(200)).isTrue();
        }
        // The front-end is gone while its reply is pending; nothing is torn down before the stop ends.
        assertThat(reasons.poll(300, TimeUnit.MILLISECONDS)).isNull();
        assertThat(on(device::releaseStops)).isEqualTo(1);
        assertThat(reasons.poll(10, TimeUnit.SECONDS)).isEqualTo("front-end disconnected before the reply to GET_VRING_BASE (11)");
        assertThat(device.calls).containsSubsequence("stop 0", "stopped 0", "reset", "memory 0");
        on(() -> device.holdStops = false);
        try (RawClient c = new RawClient(sock)) {
            c.send(VhostUserRequest.GET_QUEUE_NUM, false, new byte[0]);
            assertThat(ack(c)).isEqualTo(2);
        }
    }

    @Test
    void inflightBufferIsCreatedSizedAndTakenBack() throws Exception {
        try (RawClient c = new RawClient(sock)) {
            c.send(VhostUserRequest.SET_PROTOCOL_FEATURES, false, VhostUserCodec.u64(
                    VhostUserProtocolFeature.bit(VhostUserProtocolFeature.INFLIGHT_SHMFD)));
            c.send(VhostUserRequest.GET_INFLIGHT_FD, false, VhostUserCodec.inflight(new Inflight(0, 0, 2, 128)));
            VhostUserMessage r = c.reply(5000);
            Inflight in = VhostUserCodec.decodeInflight(r);
            assertThat(r.fds()).hasSize(1);
            assertThat(in.mmapSize()).isEqualTo(2 * InflightLayout.queueRegionBytes(128)).isEqualTo(2 * 2112);
            assertThat(in.mmapOffset()).isZero();
            long addr = Mmap.mmap(0, in.mmapSize(), Mmap.PROT_READ | Mmap.PROT_WRITE, Mmap.MAP_SHARED, r.fds()[0], 0);
            assertThat(addr).isPositive();
            MemorySegment buf = MemorySegment.ofAddress(addr).reinterpret(in.mmapSize());
            assertThat(buf.asSlice(0, in.mmapSize()).toArray(java.lang.foreign.ValueLayout.JAVA_BYTE)).containsOnly(0);
            Mmap.munmap(addr, in.mmapSize());
            c.send(VhostUserRequest.SET_INFLIGHT_FD, true, VhostUserCodec.inflight(in), r.fds()[0]);
            assertThat(ack(c)).isZero();
            // Handed back too small for its geometry: a protocol error.
            c.send(VhostUserRequest.SET_INFLIGHT_FD, false, VhostUserCodec.inflight(new Inflight(4096, 0, 2, 128)), r.fds()[0]);
            FileIo.close(r.fds()[0]);
            c.awaitClosedByServer(5000);
        }
        assertThat(reasons.poll(10, TimeUnit.SECONDS)).startsWith("malformed message: SET_INFLIGHT_FD: mmap_size 4096 at offset 0"
                + " cannot hold 2 queues of 128");
        try (RawClient c = new RawClient(sock)) {
            c.send(VhostUserRequest.GET_INFLIGHT_FD, false, VhostUserCodec.inflight(new Inflight(0, 0, 3, 128)));
            c.awaitClosedByServer(5000);
        }
        assertThat(reasons.poll(10, TimeUnit.SECONDS)).isEqualTo("malformed message: GET_INFLIGHT_FD (31): num_queues 3, the device has 2");
    }

    /** Found by fuzzing: the record was read through a mapping past the fd's end (SIGBUS, an InternalError). */
    @Test
    void anInflightFdShorterThanItsMmapSizeIsRefusedNotMapped() throws Exception {
        int shortFd = memfd(4096);
        try (RawClient c = new RawClient(sock)) {
            c.send(VhostUserRequest.SET_PROTOCOL_FEATURES, false, VhostUserCodec.u64(
                    VhostUserProtocolFeature.bit(VhostUserProtocolFeature.INFLIGHT_SHMFD)));
            c.send(VhostUserRequest.SET_INFLIGHT_FD, false,
                    VhostUserCodec.inflight(new Inflight(2 * InflightLayout.queueRegionBytes(128), 0, 2, 128)), shortFd);
            c.awaitClosedByServer(5000);
        } finally {
            FileIo.close(shortFd);
        }
        assertThat(reasons.poll(10, TimeUnit.SECONDS)).isEqualTo("malformed message: SET_INFLIGHT_FD: mmap_offset + mmap_size = "
                + 2 * InflightLayout.queueRegionBytes(128) + " bytes lies beyond the end of its fd (4096 bytes)");
    }

    @Test
    void twoExportsServeSideBySideEachOnItsOwnSocket() throws Exception {
        String sockB = dir.resolve("b.sock").toString();
        RecordingDevice devB = on(() -> new RecordingDevice(ctx, 1, 8192));
        VhostUserExport b = on(() -> VhostUserExport.listen("b", ctx, devB, sockB));
        try (RawClient ca = new RawClient(sock); RawClient cb = new RawClient(sockB)) {
            ca.send(VhostUserRequest.GET_QUEUE_NUM, false, new byte[0]);
            cb.send(VhostUserRequest.GET_QUEUE_NUM, false, new byte[0]);
            assertThat(ack(ca)).isEqualTo(2);
            assertThat(ack(cb)).isEqualTo(1);
            cb.send(VhostUserRequest.GET_FEATURES, false, new byte[]{1});
            cb.awaitClosedByServer(5000);
            // b's bad message did not touch a.
            ca.send(VhostUserRequest.GET_QUEUE_NUM, false, new byte[0]);
            assertThat(ack(ca)).isEqualTo(2);
        }
        CompletableFuture<Void> idle = new CompletableFuture<>();
        on(() -> {
            b.close(() -> idle.complete(null));
            return null;
        });
        AioContext.await(idle, T);
        assertThat(java.nio.file.Files.exists(Path.of(sockB))).as("socket file removed").isFalse();
        on(() -> {
            devB.close();
            return null;
        });
        assertThat(reasons.poll(10, TimeUnit.SECONDS)).isEqualTo("front-end disconnected");
    }

    @Test
    void offeredProtocolFeaturesIncludeTheBackendChannel() {
        assertThat(VhostUserProtocolFeature.describe(VhostUserSession.OFFERED_PROTOCOL_FEATURES))
                .isEqualTo("MQ|LOG_SHMFD|REPLY_ACK|BACKEND_REQ|CONFIG|INFLIGHT_SHMFD|RESET_DEVICE|CONFIGURE_MEM_SLOTS|STATUS");
    }
}
