package io.vblk.tools.metrics;

import io.vblk.aio.AioContext;
import io.vblk.aio.metrics.Meter;
import io.vblk.aio.sys.FileIo;
import io.vblk.aio.sys.UnixSockets;
import io.vblk.guest.GuestBlkDriver;
import io.vblk.guest.Workload;
import io.vblk.guest.WorkloadResult;
import io.vblk.guest.WorkloadRun;
import io.vblk.guest.vhost.VhostUserTransport;
import io.vblk.virtio.vhost.VhostRig;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.BlockingQueue;
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
    private static final Duration T = VhostRig.T;

    @TempDir
    Path dir;
    private VhostRig rig;
    private final VblkMetrics metrics = new VblkMetrics();

    @AfterEach
    void tearDown() {
        metrics.close();
        if (rig != null) {
            rig.close();
        }
    }

    private double v(Meter m, String... tags) {
        return metrics.value(m, tags);
    }

    @Test
    void connectionsMessagesProtocolErrorsAndTheServedDevice() throws Exception {
        rig = new VhostRig(dir);
        VhostRig.Served served = rig.serve("null:size=64M", 2, 2);
        String sock = served.sock();
        BlockingQueue<String> reasons = served.reasons();
        AioContext c = rig.control();
        metrics.bindServe(c, List.of(served.export()));
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
