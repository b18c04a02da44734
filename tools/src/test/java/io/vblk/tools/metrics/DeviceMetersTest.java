package io.vblk.tools.metrics;

import io.vblk.aio.AioOptions;
import io.vblk.aio.IoThread;
import io.vblk.aio.metrics.LatencyHistogram;
import io.vblk.aio.metrics.Meter;
import io.vblk.drivers.spec.DriverSpec;
import io.vblk.virtio.blk.BlkDeviceConfig;
import io.vblk.guest.GuestBlkDriver;
import io.vblk.guest.InProcessBlk;
import io.vblk.guest.Workload;
import io.vblk.guest.WorkloadResult;
import io.vblk.guest.WorkloadRun;

import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The request, latency, queue and notification meters of a real virtio-blk device, driven by the
 * in-process guest harness: each moves by what the guest sent.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class DeviceMetersTest {
    @TempDir
    Path dir;
    private VblkMetrics metrics;
    private InProcessBlk blk;
    private GuestBlkDriver guest;

    @BeforeEach
    void setUp() {
        metrics = new VblkMetrics();
    }

    @AfterEach
    void tearDown() {
        metrics.close();
        if (guest != null) {
            guest.close();
        }
        if (blk != null) {
            blk.close();
        }
    }

    private void start(String spec, BlkDeviceConfig cfg, int queues) {
        blk = InProcessBlk.start(DriverSpec.parse(spec).open(), cfg.numQueues(queues), 1, AioOptions.DEFAULT);
        metrics.bindDevice("vda", blk.device());
        metrics.bindLoop(blk.control().ctx());
        for (IoThread t : blk.ioThreads()) {
            metrics.bindLoop(t.ctx());
        }
        guest = GuestBlkDriver.attach(blk.transport(),
                GuestBlkDriver.Options.defaults().withQueues(queues).withSlots(8).withMaxDataBytes(4096));
    }

    private WorkloadResult run(Workload w) throws Exception {
        WorkloadResult r = WorkloadRun.start(guest, w).await(Duration.ofSeconds(30));
        assertThat(r.error()).isNull();
        settleIoThreads();
        return r;
    }

    /**
     * Waits until each IoThread has finished what it was doing when the guest saw its last completion:
     * the guest wakes on the call eventfd write, before the IoThread has counted that write and ended
     * its section. A task handed over to each IoThread runs only after that.
     */
    private void settleIoThreads() {
        for (IoThread t : blk.ioThreads()) {
            io.vblk.aio.AioContext.await(t.ctx().callOn(() -> null), Duration.ofSeconds(10));
        }
    }

    /** A run the device fails: the workload stops at the first error status and says so. */
    private WorkloadResult runFailing(Workload w) throws Exception {
        WorkloadResult r = WorkloadRun.start(guest, w).await(Duration.ofSeconds(30));
        assertThat(r.error()).contains("IOERR");
        return r;
    }

    private double sumQueues(Meter m, int queues, String... tail) {
        double s = 0;
        String t = blk.ioThreads().get(0).name();
        for (int q = 0; q < queues; q++) {
            String[] v = new String[3 + tail.length];
            v[0] = "vda";
            v[1] = Integer.toString(q);
            v[2] = t;
            System.arraycopy(tail, 0, v, 3, tail.length);
            s += metrics.value(m, v);
        }
        return s;
    }

    @Test
    void engineAndGuardMetersAppearWithTheFirstChannelAndGoWithTheDevice() throws Exception {
        Path img = dir.resolve("img");
        try (java.io.RandomAccessFile f = new java.io.RandomAccessFile(img.toFile(), "rw")) {
            f.setLength(8 << 20);
        }
        blk = InProcessBlk.start(DriverSpec.parse("file:" + img + ",aio=native,cache=none").open(),
                new BlkDeviceConfig().numQueues(1), 1, AioOptions.DEFAULT);
        metrics.bindDevice("vda", blk.device());
        String t = blk.ioThreads().get(0).name();
        // Bound at start-up, as vblk serve does: no queue has started, so no engine exists yet.
        assertThat(metrics.value(Meter.AIO_IO_SUBMIT_CALLS, t)).isNaN();
        guest = GuestBlkDriver.attach(blk.transport(),
                GuestBlkDriver.Options.defaults().withQueues(1).withSlots(8).withMaxDataBytes(4096));
        run(Workload.of(Workload.Pattern.RANDREAD).withRequests(200).withQueueDepth(8).withRegion(0, 8 << 20));
        assertThat(metrics.value(Meter.AIO_IO_SUBMIT_CALLS, t)).as("io_submit calls, bound when the channel opened")
                .isPositive();
        assertThat(metrics.value(Meter.GUARD_SUBMIT_MAX_DEPTH, t, "linux-aio")).as("seed-000 guard depth")
                .isGreaterThanOrEqualTo(1);
        guest.close();
        guest = null;
        blk.close();
        blk = null;
        assertThat(metrics.value(Meter.AIO_IO_SUBMIT_CALLS, t)).as("unbound before the engine went").isNaN();
    }

    @Test
    void requestsBytesLatencyQueueAndNotificationMeters() throws Exception {
        Path img = dir.resolve("img");
        try (java.io.RandomAccessFile f = new java.io.RandomAccessFile(img.toFile(), "rw")) {
            f.setLength(8 << 20);
        }
        start("file:" + img + ",aio=native,cache=none", new BlkDeviceConfig(), 2);
        assertThat(metrics.bindLinuxAioOf(blk.ioThreads().get(0).ctx())).isNotNull();
        String t = blk.ioThreads().get(0).name();
        WorkloadResult w = run(Workload.of(Workload.Pattern.RANDWRITE).withRequests(400).withQueueDepth(8)
                .withRegion(0, 8 << 20));
        WorkloadResult r = run(Workload.of(Workload.Pattern.RANDREAD).withRequests(600).withQueueDepth(8)
                .withRegion(0, 8 << 20));
        long writes = w.total().completed;
        long reads = r.total().completed;
        assertThat(writes).isEqualTo(400);
        assertThat(reads).isEqualTo(600);

        assertThat(sumQueues(Meter.REQUESTS, 2, "write")).isEqualTo(writes);
        assertThat(sumQueues(Meter.REQUESTS, 2, "read")).isEqualTo(reads);
        assertThat(sumQueues(Meter.REQUESTS, 2, "flush")).isZero();
        assertThat(sumQueues(Meter.REQUEST_BYTES, 2, "read")).isEqualTo(reads * 4096);
        assertThat(sumQueues(Meter.REQUEST_BYTES, 2, "write")).isEqualTo(writes * 4096);
        assertThat(sumQueues(Meter.REQUEST_ERRORS, 2, "ioerr", "driver")).isZero();
        assertThat(sumQueues(Meter.QUEUE_IN_FLIGHT, 2)).isZero();
        assertThat(sumQueues(Meter.QUEUE_PASSES, 2)).isPositive();
        assertThat(sumQueues(Meter.QUEUE_KICKS, 2)).isPositive();
        assertThat(sumQueues(Meter.DRIVER_SUBMITS, 2) + sumQueues(Meter.REQUESTS_MERGED, 2))
                .isEqualTo(reads + writes);
        // Latency: every completed request timed once, in its operation's histogram.
        LatencyHistogram.Snapshot lat = LatencyHistogram.Snapshot.empty();
        for (int q = 0; q < 2; q++) {
            lat = lat.plus(metrics.histogramSnapshot(Meter.REQUEST_LATENCY, "vda", Integer.toString(q), t, "read"));
        }
        assertThat(lat.count()).isEqualTo(reads);
        assertThat(lat.quantile(0.5)).isPositive().isLessThan(TimeUnit.SECONDS.toNanos(5));
        assertThat(sumQueues(Meter.QUEUE_DEPTH_AT_POP, 2)).as("passes that popped").isPositive();
        // Notifications: each completion asks; sends are eventfd writes, coalesced or suppressed.
        double requested = sumQueues(Meter.NOTIFY_REQUESTED, 2);
        double writesFd = sumQueues(Meter.NOTIFY_EVENTFD_WRITES, 2);
        assertThat(requested).isGreaterThanOrEqualTo(reads + writes - sumQueues(Meter.REQUESTS_MERGED, 2));
        assertThat(writesFd).isPositive().isLessThanOrEqualTo(requested);
        assertThat(writesFd + sumQueues(Meter.NOTIFY_COALESCED, 2) + sumQueues(Meter.NOTIFY_SUPPRESSED, 2)
                + sumQueues(Meter.NOTIFY_NO_FD, 2)).isEqualTo(requested);
        assertThat(metrics.value(Meter.AIO_SUBMITTED, t)).isPositive();
        assertThat(metrics.value(Meter.CHANNEL_COMPLETED, "vda", t, "file")).isEqualTo(sumQueues(Meter.DRIVER_SUBMITS, 2));
        assertThat(metrics.value(Meter.CHANNEL_IN_FLIGHT, "vda", t, "file")).isZero();
        assertThat(metrics.value(Meter.DEVICE_NEEDS_RESET, "vda")).isZero();

        String body = metrics.scrape(null).body();
        assertThat(body).contains("vblk_request_latency_seconds_bucket{export=\"vda\",iothread=\"" + t
                + "\",op=\"read\",queue=\"0\",le=\"+Inf\"}");
        assertThat(body).contains("vblk_notify_eventfd_writes_total{export=\"vda\",iothread=\"" + t + "\",queue=\"1\"}");
    }

    @Test
    void errorsByStatusAndCause() throws Exception {
        // Every 5th read fails in the driver with EIO; writes to a read-only device are refused at parse.
        start("fault:rule=op:read,nth:5,error:EIO;inner=null:size=8M", new BlkDeviceConfig().readOnly(true), 1);
        WorkloadResult r = runFailing(Workload.of(Workload.Pattern.RANDREAD).withRequests(100).withQueueDepth(1));
        WorkloadResult w = runFailing(Workload.of(Workload.Pattern.RANDWRITE).withRequests(10).withQueueDepth(1));
        String t = blk.ioThreads().get(0).name();
        assertThat(metrics.value(Meter.REQUEST_ERRORS, "vda", "0", t, "ioerr", "driver"))
                .isEqualTo(r.total().ioErrors).isPositive();
        assertThat(metrics.value(Meter.REQUEST_ERRORS, "vda", "0", t, "ioerr", "request"))
                .isEqualTo(w.total().ioErrors).isPositive();
        assertThat(metrics.value(Meter.REQUEST_ERRORS, "vda", "0", t, "unsupp", "type")).isZero();
        assertThat(metrics.value(Meter.REQUESTS, "vda", "0", t, "write")).isEqualTo(w.total().completed);
        assertThat(metrics.value(Meter.REQUESTS, "vda", "0", t, "read")).isEqualTo(r.total().completed);
    }
}
