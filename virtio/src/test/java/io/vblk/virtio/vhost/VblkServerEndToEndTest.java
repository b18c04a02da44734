package io.vblk.virtio.vhost;

import io.vblk.aio.AioContext;
import io.vblk.virtio.blk.BlkDevice;
import io.vblk.guest.BlkSlot;
import io.vblk.guest.GuestBlkDriver;
import io.vblk.guest.GuestBlkQueue;
import io.vblk.guest.Workload;
import io.vblk.guest.WorkloadResult;
import io.vblk.guest.WorkloadRun;
import io.vblk.guest.vhost.VhostUserTransport;
import org.junit.jupiter.api.AutoClose;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.BlockingQueue;
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
    @AutoClose
    private VhostRig rig;
    private BlkDevice device;
    private String sock;
    private BlockingQueue<String> reasons;

    /** Serves {@code driverSpec} as "vda" with {@code queues} queues over two I/O threads. */
    private void serve(String driverSpec, int queues) {
        rig = new VhostRig(dir);
        VhostRig.Served served = rig.serve(driverSpec, queues, 2);
        device = served.device();
        sock = served.sock();
        reasons = served.reasons();
    }

    @Test
    void guestWorkloadWithVerifyOverTwoQueuesAndAFile() throws Exception {
        Path img = VhostRig.image(dir, 16L << 20);
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
        assertThat(AioContext.await(rig.control().callOn(device::needsReset), T)).isFalse();
    }

    @Test
    void packedRingGuestWithVerifyOverVhostUser() throws Exception {
        Path img = VhostRig.image(dir, 16L << 20);
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
        assertThat(AioContext.await(rig.control().callOn(device::needsReset), T)).isFalse();
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
        assertThat(AioContext.await(rig.control().callOn(() -> device.queueStarted(0)), T)).isFalse();
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
