package io.vblk.guest;

import io.vblk.aio.AioContext;
import io.vblk.aio.Timer;
import io.vblk.drivers.nullblk.NullDriver;
import io.vblk.virtio.blk.BlkDeviceConfig;
import io.vblk.virtio.blk.BlkQueueStats;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Drained sections on every IoThread while the guest keeps every queue busy: inside a section no
 * queue on that context hands a new request to the driver; after it, every request the guest
 * posted meanwhile completes (seed 003's guard, seen from the guest).
 */
@Timeout(120)
class GuestDrainedTest {

    /** One drained section of {@code holdNanos} on {@code ctx}; the future gets the driver submits made inside. */
    private static CompletableFuture<Long> section(AioContext ctx, List<BlkQueueStats> queuesHere, long holdNanos) {
        CompletableFuture<Long> f = new CompletableFuture<>();
        ctx.runOn(() -> {
            ctx.drainedBegin();
            long before = submits(queuesHere);
            Timer[] t = new Timer[1];
            t[0] = ctx.timer("test.drained-section", () -> {
                long inside = submits(queuesHere) - before;
                ctx.drainedEnd();
                f.complete(inside);
            });
            t[0].armIn(holdNanos);
        });
        return f;
    }

    private static long submits(List<BlkQueueStats> stats) {
        long n = 0;
        for (BlkQueueStats s : stats) {
            n += s.driverSubmits();
        }
        return n;
    }

    @Test
    void noQueueTakesRequestsInsideADrainedSectionAndNoneIsLost() throws Exception {
        int queues = 4;
        try (GuestRig rig = GuestRig.nullDevice(NullDriver.Completion.ASYNC, new BlkDeviceConfig().numQueues(queues), 2,
                GuestBlkDriver.Options.defaults().withQueues(queues).withSlots(16).withMaxDataBytes(4096))) {
            WorkloadRun run = WorkloadRun.start(rig.guest, Workload.of(Workload.Pattern.RANDWRITE).withQueueDepth(16)
                    .withDuration(Duration.ofSeconds(60).toNanos()).withStallNanos(Duration.ofSeconds(5).toNanos()));
            List<AioContext> ctxs = new ArrayList<>();
            List<List<BlkQueueStats>> statsOf = new ArrayList<>();
            for (int i = 0; i < 2; i++) {
                AioContext c = rig.dev.ioThreads().get(i).ctx();
                ctxs.add(c);
                List<BlkQueueStats> l = new ArrayList<>();
                for (int q = 0; q < queues; q++) {
                    if (rig.dev.queueContext(q) == c) {
                        l.add(rig.dev.device().queueStats(q));
                    }
                }
                statsOf.add(l);
            }
            int heldBack = 0;
            for (int round = 0; round < 100; round++) {
                long completedBefore = run.completed();
                List<CompletableFuture<Long>> fs = new ArrayList<>();
                for (int i = 0; i < 2; i++) {
                    fs.add(section(ctxs.get(i), statsOf.get(i), 2_000_000));
                }
                long postedBefore = run.posted();
                for (CompletableFuture<Long> f : fs) {
                    assertThat(AioContext.await(f, Duration.ofSeconds(10))).as("driver submits inside the section")
                            .isZero();
                }
                if (run.posted() > postedBefore) {
                    heldBack++;
                }
                // The guest makes progress between sections.
                long end = System.nanoTime() + Duration.ofSeconds(10).toNanos();
                while (run.completed() < completedBefore + 64 && System.nanoTime() < end) {
                    Thread.onSpinWait();
                }
                assertThat(run.completed()).isGreaterThanOrEqualTo(completedBefore + 64);
            }
            run.stop();
            WorkloadResult r = run.await(Duration.ofSeconds(20));
            assertThat(r.error()).isNull();
            assertThat(r.total().posted).isEqualTo(r.total().completed).isPositive();
            assertThat(r.total().inFlightAtEnd).isZero();
            // Sections did hold requests back: the guest posted while they were open (the device
            // takes nothing then, so those requests waited for the section's end).
            assertThat(heldBack).isPositive();
        }
    }
}
