package io.vblk.guest;

import io.vblk.aio.AioContext;
import io.vblk.aio.Timer;
import io.vblk.drivers.node.BlockNode;
import io.vblk.drivers.nullblk.NullDriver;
import io.vblk.virtio.blk.BlkDeviceConfig;
import io.vblk.virtio.blk.BlkQueueStats;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Drained sections of the device's node hammered from the main loop — nested, ended before they
 * quiesced, held for random times — while the guest keeps two queues on two IoThreads busy: no
 * request starts between a section's quiescence and its end, and none is lost. Seeded; prints
 * its seed ({@code -Dvblk.seed=N} repeats a run).
 */
@Tag("slow")
@Timeout(300)
class GuestDrainStressTest {
    private static final int SECTIONS = 3000;

    /**
     * The hammer. Home thread: the main loop (the device's control context and its node's home).
     * The queues' counters are read on their own IoThreads; the answers come back here.
     */
    private static final class Hammer {
        private final InProcessBlk dev;
        private final AioContext main;
        private final BlockNode node;
        private final SplittableRandom rnd;
        private final Timer timer;
        private final CompletableFuture<Void> done = new CompletableFuture<>();
        private Runnable onTimer;
        int sections;
        int quiesced;
        int endedEarly;
        int nested;
        long startedInside;

        Hammer(InProcessBlk dev, long seed) {
            this.dev = dev;
            this.main = dev.control().ctx();
            this.node = dev.device().node();
            this.rnd = new SplittableRandom(seed);
            this.timer = main.timer("drain-stress", () -> onTimer.run());
        }

        void round() {
            if (sections == SECTIONS) {
                done.complete(null);
                return;
            }
            sections++;
            CompletableFuture<Void> q = node.drainedBegin();
            int depth = 1;
            if (rnd.nextInt(3) == 0) {
                node.drainedBegin(); // nested: must change nothing
                depth++;
                nested++;
                if (rnd.nextBoolean()) {
                    node.drainedEnd();
                    depth--;
                }
            }
            int open = depth;
            if (rnd.nextInt(4) == 0) {
                // Ended before it quiesced: the queues must resume and lose nothing.
                endedEarly++;
                end(open);
                later(rnd.nextLong(0, 100_000), this::round);
                return;
            }
            q.whenComplete((v, e) -> submits().whenComplete((before, e2) -> main.runOn(() -> {
                quiesced++;
                later(rnd.nextLong(0, 300_000), () -> submits().whenComplete((after, e3) -> main.runOn(() -> {
                    startedInside += after - before;
                    end(open);
                    later(rnd.nextLong(0, 200_000), this::round);
                })));
            })));
        }

        private void end(int open) {
            for (int i = 0; i < open; i++) {
                node.drainedEnd();
            }
        }

        private void later(long nanos, Runnable r) {
            onTimer = r;
            timer.armIn(Math.max(1, nanos));
        }

        /** Driver submits of every queue, each read on the queue's IoThread. */
        private CompletableFuture<Long> submits() {
            List<CompletableFuture<Long>> parts = new ArrayList<>();
            for (int q = 0; q < dev.device().numQueues(); q++) {
                BlkQueueStats st = dev.device().queueStats(q);
                parts.add(dev.queueContext(q).callOn(st::driverSubmits));
            }
            return CompletableFuture.allOf(parts.toArray(new CompletableFuture<?>[0]))
                    .thenApply(v -> parts.stream().mapToLong(CompletableFuture::join).sum());
        }
    }

    @Test
    void noRequestStartsInsideAQuiescedSectionAndNoneIsLost() throws Exception {
        long seed = Long.getLong("vblk.seed", System.nanoTime());
        System.out.println("GuestDrainStressTest: seed " + seed);
        int queues = 2;
        try (GuestRig rig = GuestRig.nullDevice(NullDriver.Completion.ASYNC, new BlkDeviceConfig().numQueues(queues), 2,
                GuestBlkDriver.Options.defaults().withQueues(queues).withSlots(32).withMaxDataBytes(4096))) {
            assertThat(rig.dev.queueContext(0)).isNotSameAs(rig.dev.queueContext(1));
            WorkloadRun run = WorkloadRun.start(rig.guest, Workload.of(Workload.Pattern.RANDRW).withQueueDepth(32)
                    .withSeed(seed).withDuration(Duration.ofSeconds(240).toNanos())
                    .withStallNanos(Duration.ofSeconds(5).toNanos()));
            Hammer h = AioContext.await(rig.dev.control().ctx().callOn(() -> {
                Hammer x = new Hammer(rig.dev, seed);
                x.round();
                return x;
            }), Duration.ofSeconds(10));
            AioContext.await(h.done, Duration.ofSeconds(200));
            run.stop();
            WorkloadResult r = run.await(Duration.ofSeconds(20));
            System.out.println("GuestDrainStressTest: " + h.sections + " sections, " + h.quiesced + " quiesced, "
                    + h.endedEarly + " ended early, " + h.nested + " nested; " + r.total().completed + " requests");
            assertThat(h.startedInside).as("requests started inside quiesced sections").isZero();
            assertThat(h.quiesced + h.endedEarly).isEqualTo(SECTIONS);
            assertThat(r.error()).isNull();
            assertThat(r.total().posted).isEqualTo(r.total().completed).isPositive();
            assertThat(r.total().inFlightAtEnd).isZero();
        }
    }
}
