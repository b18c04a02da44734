package io.vblk.guest;

import io.vblk.aio.AioContext;
import io.vblk.drivers.nullblk.NullDriver;
import io.vblk.virtio.blk.BlkDeviceConfig;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.ValueSource;

import java.time.Duration;
import java.util.HashSet;
import java.util.Set;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** Closed-loop workloads through the real device and null driver. */
@Timeout(60)
class WorkloadRunTest {
    private GuestRig rig;

    @AfterEach
    void tearDown() {
        if (rig != null) {
            rig.close();
        }
    }

    @ParameterizedTest
    @EnumSource(Workload.Pattern.class)
    void everyPatternCompletesExactlyTheRequestsAsked(Workload.Pattern p) throws Exception {
        rig = GuestRig.nullDevice(NullDriver.Completion.ASYNC, new BlkDeviceConfig(), 1,
                GuestBlkDriver.Options.defaults().withSlots(32).withMaxDataBytes(4096));
        WorkloadResult r = WorkloadRun.start(rig.guest, Workload.of(p).withRequests(5000).withQueueDepth(32))
                .await(Duration.ofSeconds(30));
        assertThat(r.error()).isNull();
        QueueStats t = r.total();
        assertThat(t.completed).isEqualTo(5000);
        assertThat(t.posted).isEqualTo(5000);
        assertThat(t.latency.count()).isEqualTo(5000);
        assertThat(t.reads + t.writes).isEqualTo(5000);
        if (!p.writes()) {
            assertThat(t.writes).isZero();
        }
        if (!p.reads()) {
            assertThat(t.reads).isZero();
        }
        if (p.reads() && p.writes()) {
            // rwmixread 50 over 5000 requests: far from either end.
            assertThat(t.reads).isBetween(2000L, 3000L);
        }
        assertThat(t.bytesRead + t.bytesWritten).isEqualTo(5000L * 4096);
        assertThat(t.inFlightAtEnd).isZero();
        // Device-side counts agree with the guest's.
        assertThat(rig.dev.device().queueStats(0).completed()).isEqualTo(5000);
    }

    @ParameterizedTest
    @ValueSource(booleans = {true, false})
    void interruptAndPollingGuestsBothRun(boolean interrupts) throws Exception {
        rig = GuestRig.nullDevice(NullDriver.Completion.SYNC, new BlkDeviceConfig(), 1,
                GuestBlkDriver.Options.defaults().withSlots(16).withMaxDataBytes(4096).withInterrupts(interrupts));
        WorkloadResult r = WorkloadRun.start(rig.guest, Workload.of(Workload.Pattern.RANDREAD).withRequests(20_000)
                .withQueueDepth(16)).await(Duration.ofSeconds(30));
        assertThat(r.error()).isNull();
        assertThat(r.total().completed).isEqualTo(20_000);
        if (interrupts) {
            assertThat(r.total().wakeups).isPositive();
            // Batching and EVENT_IDX: far fewer notifications than requests.
            assertThat(r.total().notifications).isLessThan(20_000);
        } else {
            assertThat(r.total().notifications).isZero();
        }
    }

    @Test
    void durationBoundsTheRun() throws Exception {
        rig = GuestRig.nullDevice(NullDriver.Completion.SYNC, new BlkDeviceConfig(), 1,
                GuestBlkDriver.Options.defaults().withSlots(8).withMaxDataBytes(4096));
        long t0 = System.nanoTime();
        WorkloadResult r = WorkloadRun.start(rig.guest, Workload.of(Workload.Pattern.RANDWRITE)
                .withDuration(Duration.ofMillis(300).toNanos()).withQueueDepth(8)).await(Duration.ofSeconds(10));
        long took = System.nanoTime() - t0;
        assertThat(r.error()).isNull();
        assertThat(r.total().completed).isPositive();
        assertThat(took).isBetween(Duration.ofMillis(300).toNanos(), Duration.ofSeconds(5).toNanos());
    }

    @Test
    void closingTheGuestUnderARunningWorkloadIsRefusedUntilItsThreadsEnd() throws Exception {
        rig = GuestRig.nullDevice(NullDriver.Completion.SYNC, new BlkDeviceConfig(), 1,
                GuestBlkDriver.Options.defaults());
        WorkloadRun run = WorkloadRun.start(rig.guest, Workload.of(Workload.Pattern.RANDREAD)
                .withQueueDepth(8).withDuration(Duration.ofSeconds(30).toNanos()));
        assertThatThrownBy(rig.guest::close).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("stop() and await()");
        run.stop();
        WorkloadResult r = run.await(Duration.ofSeconds(20));
        assertThat(r.error()).isNull();
        assertThat(run.isDone()).isTrue();
        rig.guest.close(); // now it goes; the rig's own close is a no-op for it
    }

    @Test
    void multiqueueOverSeveralIoThreadsSpreadsQueuesRoundRobin() throws Exception {
        int queues = 4;
        rig = GuestRig.nullDevice(NullDriver.Completion.ASYNC, new BlkDeviceConfig().numQueues(queues), 2,
                GuestBlkDriver.Options.defaults().withQueues(queues).withSlots(16).withMaxDataBytes(8192));
        assertThat(rig.guest.queueCount()).isEqualTo(queues);
        Set<AioContext> ctxs = new HashSet<>();
        for (int i = 0; i < queues; i++) {
            AioContext c = rig.dev.queueContext(i);
            assertThat(c).isSameAs(rig.dev.ioThreads().get(i % 2).ctx());
            ctxs.add(c);
        }
        assertThat(ctxs).hasSize(2);
        WorkloadResult r = WorkloadRun.start(rig.guest, Workload.of(Workload.Pattern.RANDRW).withBlockSize(8192)
                .withRequests(40_000).withQueueDepth(16)).await(Duration.ofSeconds(30));
        assertThat(r.error()).isNull();
        assertThat(r.perQueue()).hasSize(queues);
        for (QueueStats s : r.perQueue()) {
            assertThat(s.completed).isEqualTo(10_000);
            assertThat(rig.dev.device().queueStats(s.queue).completed()).isEqualTo(10_000);
        }
    }

    @Test
    void askingForMoreQueuesThanTheDeviceHasFailsNamingBoth() {
        InProcessBlk dev = InProcessBlk.start(new NullDriver(1 << 20, NullDriver.Completion.SYNC),
                new BlkDeviceConfig().numQueues(2), 1, io.vblk.aio.AioOptions.DEFAULT);
        try {
            org.assertj.core.api.Assertions.assertThatThrownBy(() -> GuestBlkDriver.attach(dev.transport(),
                            GuestBlkDriver.Options.defaults().withQueues(3)))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("3 queues")
                    .hasMessageContaining("has 2");
        } finally {
            dev.close();
        }
    }
}
