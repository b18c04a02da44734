package io.vblk.tools.metrics;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioOptions;
import io.vblk.aio.IoThread;
import io.vblk.aio.metrics.Meter;
import io.vblk.aio.sys.FileIo;
import io.vblk.aio.sys.UnixSockets;
import io.vblk.drivers.BlockDriver;
import io.vblk.drivers.spec.DriverSpec;
import io.vblk.virtio.blk.BlkDevice;
import io.vblk.virtio.blk.BlkDeviceConfig;
import io.vblk.virtio.device.IoThreadMapping;
import io.vblk.guest.GuestBlkDriver;
import io.vblk.guest.Workload;
import io.vblk.guest.WorkloadResult;
import io.vblk.guest.WorkloadRun;
import io.vblk.guest.vhost.VhostUserTransport;
import io.vblk.virtio.vhost.socket.VhostUserExport;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The vhost-user meters, and {@link VblkMetrics#bindServe} binding a whole export (device, loops,
 * vhost-user counters), with vblk's server on one side of a UNIX socket and the guest harness's
 * vhost-user front-end on the other.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class VhostMetersTest {
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
    private final VblkMetrics metrics = new VblkMetrics();

    @AfterEach
    void tearDown() {
        metrics.close();
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

    private double v(Meter m, String... tags) {
        return metrics.value(m, tags);
    }

    @Test
    void connectionsMessagesProtocolErrorsAndTheServedDevice() throws Exception {
        control = IoThread.start("main-loop", AioOptions.DEFAULT);
        io0 = IoThread.start("io0", AioOptions.DEFAULT);
        io1 = IoThread.start("io1", AioOptions.DEFAULT);
        driver = DriverSpec.open("null:size=64M");
        sock = dir.resolve("vblk.sock").toString();
        AioContext c = control.ctx();
        export = AioContext.await(c.callOn(() -> {
            device = new BlkDevice("vda", driver, new BlkDeviceConfig().numQueues(2)
                    .ioThreads(IoThreadMapping.roundRobin(List.of(io0.ctx(), io1.ctx()))), c);
            VhostUserExport e = VhostUserExport.listen("vda", c, device, sock);
            e.onConnectionClosed(reasons::add);
            return e;
        }), T);
        metrics.bindServe(c, List.of(export));
        assertThat(v(Meter.VHOST_CONNECTIONS, "vda")).isZero();

        try (VhostUserTransport t = VhostUserTransport.connect(sock, T);
             GuestBlkDriver g = GuestBlkDriver.attach(t, GuestBlkDriver.Options.defaults().withQueues(2))) {
            WorkloadResult r = WorkloadRun.start(g, Workload.of(Workload.Pattern.RANDREAD).withQueueDepth(16)
                    .withRequests(1000)).await(T);
            assertThat(r.error()).isNull();
            assertThat(v(Meter.VHOST_CONNECTIONS, "vda")).isEqualTo(1);
            assertThat(v(Meter.REQUESTS, "vda", "0", "io0", "read") + v(Meter.REQUESTS, "vda", "1", "io1", "read"))
                    .isEqualTo(1000);
            assertThat(v(Meter.NOTIFY_EVENTFD_WRITES, "vda", "0", "io0")).isPositive();
        }
        assertThat(reasons.poll(10, TimeUnit.SECONDS)).isEqualTo("front-end disconnected");
        assertThat(v(Meter.VHOST_CONNECTIONS, "vda")).isZero();
        assertThat(v(Meter.VHOST_CONNECTIONS_ACCEPTED, "vda")).isEqualTo(1);
        assertThat(v(Meter.VHOST_MESSAGES, "vda", "set_mem_table")).isEqualTo(1);
        assertThat(v(Meter.VHOST_MESSAGES, "vda", "set_vring_kick")).isEqualTo(2);
        assertThat(v(Meter.VHOST_MESSAGES, "vda", "get_features")).isGreaterThanOrEqualTo(1);
        assertThat(v(Meter.VHOST_PROTOCOL_ERRORS, "vda")).isZero();
        for (String loop : new String[] {"main-loop", "io0", "io1"}) {
            assertThat(v(Meter.LOOP_ITERATIONS, loop)).as(loop).isPositive();
        }
        assertThat(v(Meter.DEVICE_NEEDS_RESET, "vda")).isZero();

        // A header announcing a payload larger than any request may carry: a protocol error.
        int fd = UnixSockets.unixConnect(sock, false);
        assertThat(fd).isGreaterThanOrEqualTo(0);
        try (Arena a = Arena.ofConfined()) {
            MemorySegment hdr = a.allocate(12, 8);
            hdr.set(ValueLayout.JAVA_INT, 0, 1);           // VHOST_USER_GET_FEATURES
            hdr.set(ValueLayout.JAVA_INT, 4, 1);           // version 1
            hdr.set(ValueLayout.JAVA_INT, 8, 1 << 20);     // size: far over the largest payload
            assertThat(FileIo.write(fd, hdr.address(), 12)).isEqualTo(12);
            assertThat(reasons.poll(10, TimeUnit.SECONDS)).startsWith("malformed message");
        } finally {
            FileIo.close(fd);
        }
        assertThat(v(Meter.VHOST_PROTOCOL_ERRORS, "vda")).isEqualTo(1);
        assertThat(v(Meter.VHOST_CONNECTIONS_ACCEPTED, "vda")).isEqualTo(2);
    }
}
