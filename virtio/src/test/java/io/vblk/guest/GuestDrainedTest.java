package io.vblk.guest;

import io.vblk.aio.AioContext;
import io.vblk.aio.Timer;
import io.vblk.drivers.node.BlockNode;
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
 * Drained sections of the device's block node, begun on the main loop while the guest keeps every
 * queue on two IoThreads busy: once the section has quiesced no queue hands a new request to the
 * driver until it ends; after it, every request the guest posted meanwhile completes (seed 003's
 * guard, seen from the guest).
 */
@Timeout(120)
class GuestDrainedTest {

    /**
     * One drained section of the node, held {@code holdNanos} after it quiesced; the future gets
     * the driver submits made between quiescence and the end. Everything runs on the main loop,
     * and each queue's counter is read on its own IoThread.
     */
    private static CompletableFuture<Long> section(InProcessBlk dev, long holdNanos) {
        AioContext main = dev.control().ctx();
        BlockNode node = dev.device().node();
        CompletableFuture<Long> f = new CompletableFuture<>();
        main.runOn(() -> node.drainedBegin().whenComplete((v, e) -> submits(dev).whenComplete((before, e2) ->
                main.runOn(() -> {
                    Timer t = main.timer("test.drained-section", () -> submits(dev).whenComplete((after, e3) ->
                            main.runOn(() -> {
                                node.drainedEnd();
                                f.complete(after - before);
                            })));
                    t.armIn(holdNanos);
                }))));
        return f;
    }

    /** Driver submits of every queue, each read on the queue's IoThread. */
    private static CompletableFuture<Long> submits(InProcessBlk dev) {
        List<CompletableFuture<Long>> parts = new ArrayList<>();
        for (int q = 0; q < dev.device().numQueues(); q++) {
            BlkQueueStats st = dev.device().queueStats(q);
            parts.add(dev.queueContext(q).callOn(st::driverSubmits));
        }
        return CompletableFuture.allOf(parts.toArray(new CompletableFuture<?>[0]))
                .thenApply(v -> parts.stream().mapToLong(CompletableFuture::join).sum());
    }

    @Test
    void noQueueTakesRequestsInsideADrainedSectionAndNoneIsLost() throws Exception {
        int queues = 4;
        try (GuestRig rig = GuestRig.nullDevice(NullDriver.Completion.ASYNC, new BlkDeviceConfig().numQueues(queues), 2,
                GuestBlkDriver.Options.defaults().withQueues(queues).withSlots(16).withMaxDataBytes(4096))) {
            WorkloadRun run = WorkloadRun.start(rig.guest, Workload.of(Workload.Pattern.RANDWRITE).withQueueDepth(16)
                    .withDuration(Duration.ofSeconds(60).toNanos()).withStallNanos(Duration.ofSeconds(5).toNanos()));
            int heldBack = 0;
            for (int round = 0; round < 100; round++) {
                long completedBefore = run.completed();
                CompletableFuture<Long> f = section(rig.dev, 2_000_000);
                long postedBefore = run.posted();
                assertThat(AioContext.await(f, Duration.ofSeconds(10))).as("driver submits inside the section")
                        .isZero();
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
