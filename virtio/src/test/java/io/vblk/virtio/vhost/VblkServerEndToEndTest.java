package io.vblk.virtio.vhost;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioOptions;
import io.vblk.aio.IoThread;
import io.vblk.drivers.BlockDriver;
import io.vblk.drivers.spec.DriverSpec;
import io.vblk.virtio.blk.BlkDevice;
import io.vblk.virtio.blk.BlkDeviceConfig;
import io.vblk.virtio.device.IoThreadMapping;
import io.vblk.guest.BlkSlot;
import io.vblk.guest.GuestBlkDriver;
import io.vblk.guest.GuestBlkQueue;
import io.vblk.guest.Workload;
import io.vblk.guest.WorkloadResult;
import io.vblk.guest.WorkloadRun;
import io.vblk.guest.vhost.VhostUserTransport;
import io.vblk.virtio.vhost.socket.VhostUserExport;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.RandomAccessFile;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * vblk end to end over vhost-user in one process: the guest harness (emulated guest driver and
 * workloads) on the front-end side, vblk's server with the real virtio-blk device and drivers on
 * the other, a UNIX socket between them. Data written is read back and verified; a front-end that
 * vanishes with requests in flight leaves the export serving the next guest.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class VblkServerEndToEndTest {
    private static final Duration T = Duration.ofSeconds(20);

    @TempDir
    Path dir;
    private IoThread control;
    private IoThread io0;
    private IoThread io1;
    private BlockDriver driver;
    private BlkDevice device;
    private VhostUserExport export;
    private String sock;
    private final BlockingQueue<String> reasons = new LinkedBlockingQueue<>();

    private void serve(String driverSpec, int queues) {
        control = IoThread.start("main-loop", AioOptions.DEFAULT);
        io0 = IoThread.start("io0", AioOptions.DEFAULT);
        io1 = IoThread.start("io1", AioOptions.DEFAULT);
        driver = DriverSpec.open(driverSpec);
        sock = dir.resolve("vblk.sock").toString();
        AioContext c = control.ctx();
        export = AioContext.await(c.callOn(() -> {
            device = new BlkDevice("vda", driver, new BlkDeviceConfig().numQueues(queues)
                    .ioThreads(IoThreadMapping.roundRobin(List.of(io0.ctx(), io1.ctx()))), c);
            VhostUserExport e = VhostUserExport.listen("vda", c, device, sock);
            e.onConnectionClosed(reasons::add);
            return e;
        }), T);
    }

    @AfterEach
    void tearDown() {
        if (control == null) {
            return;
        }
        CompletableFuture<Void> idle = new CompletableFuture<>();
        AioContext.await(control.ctx().callOn(() -> {
            export.close(() -> device.close(() -> idle.complete(null)));
            return null;
        }), T);
        AioContext.await(idle, T);
        io1.close();
        io0.close();
        control.close();
        driver.close();
    }

    @Test
    void guestWorkloadWithVerifyOverTwoQueuesAndAFile() throws Exception {
        Path img = dir.resolve("disk.img");
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
            f.setLength(16L << 20);
        }
        serve("file:" + img + ",aio=threads,cache=writeback", 2);
        try (VhostUserTransport t = VhostUserTransport.connect(sock, T);
             GuestBlkDriver g = GuestBlkDriver.attach(t, GuestBlkDriver.Options.defaults().withQueues(2).withSlots(16)
                     .withMaxDataBytes(16384))) {
            assertThat(g.config().capacitySectors()).isEqualTo((16L << 20) / 512);
            WorkloadResult r = WorkloadRun.start(g, Workload.of(Workload.Pattern.RANDRW).withBlockSize(16384).withQueueDepth(16)
                    .withRequests(3000).withVerify(true).withSegments(4).withSeed(7)).await(Duration.ofSeconds(60));
            assertThat(r.error()).isNull();
            assertThat(r.total().verifyFailures).isZero();
            assertThat(r.total().verifiedSectors).isPositive();
            assertThat(r.perQueue()).allSatisfy(s -> assertThat(s.completed).isPositive());
        }
        assertThat(reasons.poll(10, TimeUnit.SECONDS)).isEqualTo("front-end disconnected");
        assertThat(AioContext.await(control.ctx().callOn(device::needsReset), T)).isFalse();
    }

    @Test
    void packedRingGuestWithVerifyOverVhostUser() throws Exception {
        Path img = dir.resolve("disk.img");
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
            f.setLength(16L << 20);
        }
        serve("file:" + img + ",aio=threads,cache=writeback", 2);
        // Rings of 64 entries: 3000 requests of up to 6 descriptors wrap them many times.
        try (VhostUserTransport t = VhostUserTransport.connect(sock, T);
             GuestBlkDriver g = GuestBlkDriver.attach(t, GuestBlkDriver.Options.defaults().withQueues(2).withSlots(16)
                     .withMaxDataBytes(16384).withQueueSize(64).withFeatures(io.vblk.guest.GuestFeatures.WITH_PACKED))) {
            assertThat(g.negotiated(io.vblk.guest.GuestFeatures.F_RING_PACKED)).isTrue();
            assertThat(g.queue(0).ring().packed()).isTrue();
            WorkloadResult r = WorkloadRun.start(g, Workload.of(Workload.Pattern.RANDRW).withBlockSize(16384).withQueueDepth(16)
                    .withRequests(3000).withVerify(true).withSegments(4).withSeed(11)).await(Duration.ofSeconds(60));
            assertThat(r.error()).isNull();
            assertThat(r.total().verifyFailures).isZero();
            assertThat(r.total().verifiedSectors).isPositive();
            assertThat(r.perQueue()).allSatisfy(s -> assertThat(s.completed).isPositive());
            // GET_VRING_BASE on a packed ring: both halves are index | wrap << 15 and, with nothing in flight, equal.
            int base = t.stopQueue(0);
            assertThat(base & 0xffff).isEqualTo(base >>> 16);
            assertThat(base & 0x7fff).isLessThan(64);
        }
        assertThat(reasons.poll(10, TimeUnit.SECONDS)).isEqualTo("front-end disconnected");
        assertThat(AioContext.await(control.ctx().callOn(device::needsReset), T)).isFalse();
    }

    @Test
    void nullDriverRandomReadsThenTheSameExportServesASecondGuest() throws Exception {
        serve("null:size=64M", 2);
        for (int round = 0; round < 2; round++) {
            try (VhostUserTransport t = VhostUserTransport.connect(sock, T);
                 GuestBlkDriver g = GuestBlkDriver.attach(t, GuestBlkDriver.Options.defaults().withQueues(2))) {
                WorkloadResult r = WorkloadRun.start(g, Workload.of(Workload.Pattern.RANDREAD).withQueueDepth(32)
                        .withRequests(5000)).await(Duration.ofSeconds(60));
                assertThat(r.error()).isNull();
                assertThat(r.total().completed).isEqualTo(5000);
                assertThat(r.total().ioErrors).isZero();
            }
            assertThat(reasons.poll(10, TimeUnit.SECONDS)).isEqualTo("front-end disconnected");
        }
    }

    @Test
    void aGuestThatVanishesWithRequestsInFlightLeavesTheExportServing() throws Exception {
        // Every read is held 300 ms by the fault driver: the disconnect finds them in flight.
        serve("fault:rule=op:read,delay:300ms;inner=null:size=64M", 1);
        VhostUserTransport t = VhostUserTransport.connect(sock, T);
        GuestBlkDriver g = GuestBlkDriver.attach(t, GuestBlkDriver.Options.defaults().withSlots(8));
        GuestBlkQueue q = g.queue(0);
        for (int i = 0; i < 8; i++) {
            BlkSlot s = q.acquire();
            q.postRead(s, i * 8L, 4096, 1);
        }
        q.kick();
        // The front-end vanishes (socket closed) without stopping its queue.
        t.close();
        String reason = reasons.poll(10, TimeUnit.SECONDS);
        assertThat(reason).isEqualTo("front-end disconnected");
        assertThat(AioContext.await(control.ctx().callOn(() -> device.queueStarted(0)), T)).isFalse();
        try (VhostUserTransport t2 = VhostUserTransport.connect(sock, T);
             GuestBlkDriver g2 = GuestBlkDriver.attach(t2, GuestBlkDriver.Options.defaults())) {
            WorkloadResult r = WorkloadRun.start(g2, Workload.of(Workload.Pattern.RANDWRITE).withQueueDepth(8)
                    .withRequests(500)).await(Duration.ofSeconds(60));
            assertThat(r.error()).isNull();
            assertThat(r.total().completed).isEqualTo(500);
        }
        assertThat(reasons.poll(10, TimeUnit.SECONDS)).isEqualTo("front-end disconnected");
        g.ram().close();
    }
}
