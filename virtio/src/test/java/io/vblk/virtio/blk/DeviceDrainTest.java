package io.vblk.virtio.blk;

import io.vblk.aio.AioContext;
import io.vblk.guest.GuestRam;
import io.vblk.aio.AioOptions;
import io.vblk.aio.IoThread;
import io.vblk.drivers.node.BlockNode;
import io.vblk.virtio.device.IoThreadMapping;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Home thread: the test thread (the device's control context and the node's main loop).
 *
 * <p>The virtio-blk device as a parent of its block node (seed 003, per node and device): the
 * node's drained section stops every queue from popping, on the queue's own thread, waits for the
 * requests the device has in flight, and its end re-checks every ring so no kick is lost.
 */
@Timeout(60)
class DeviceDrainTest {
    static final long MIB = 1 << 20;

    @Test
    void sectionsNestAndOnlyTheOutermostEndResumesTheQueue() {
        MemDriver drv = new MemDriver(MIB);
        try (BlkFixture f = new BlkFixture(drv)) {
            BlockNode node = f.dev.node();
            assertThat(node.parents()).hasSize(1);
            CompletableFuture<Void> q = node.drainedBegin();
            node.drainedBegin();
            f.settle();
            assertThat(q).as("nothing in flight: quiet once the queue stopped").isDone();
            f.guest.read(0, 512);
            f.guest.kick();
            f.settle();
            node.drainedEnd();
            f.settle();
            assertThat(drv.ops).as("still drained after the inner end").isEmpty();
            node.drainedEnd();
            f.settle();
            assertThat(drv.ops).hasSize(1);
            assertThat(f.guest.reap()).as("the kick of the section is not lost").hasSize(1);
            // The drained-section meters: the kick handler paused once, re-run once.
            assertThat(f.ctx.drainedSections()).isEqualTo(1);
            assertThat(f.ctx.drainRechecks()).isEqualTo(1);
        }
    }

    @Test
    void aHeldRequestKeepsTheDrainOpenUntilItCompletes() {
        MemDriver drv = new MemDriver(MIB);
        drv.mode = MemDriver.Mode.HOLD;
        try (BlkFixture f = new BlkFixture(drv)) {
            f.guest.read(0, 512);
            f.guest.kick();
            f.settle();
            assertThat(f.stats().inFlight()).isEqualTo(1);
            CompletableFuture<Void> q = f.dev.node().drainedBegin();
            f.settle();
            assertThat(q).as("a request is in flight").isNotDone();
            f.guest.read(8, 512);
            f.guest.kick();
            f.settle();
            assertThat(drv.ops).as("the queue pops nothing while drained").hasSize(1);
            drv.channels.get(0).releaseHeld();
            f.settle();
            assertThat(q).isDone();
            assertThat(f.guest.reap()).hasSize(1);
            f.dev.node().drainedEnd();
            f.settle();
            assertThat(drv.ops).as("the end re-checks the ring").hasSize(2);
            drv.channels.get(0).releaseHeld();
            f.settle();
            assertThat(f.guest.reap()).hasSize(1);
        }
    }

    @Test
    void aQueueRestartedInsideASectionStaysQuietUntilTheEnd() {
        MemDriver drv = new MemDriver(MIB);
        try (BlkFixture f = new BlkFixture(drv)) {
            f.dev.node().drainedBegin();
            f.settle();
            int next = f.stop();
            assertThat(next).isZero();
            f.guest.read(0, 512);
            boolean[] started = {false};
            f.dev.startQueue(0, () -> started[0] = true);
            f.guest.kick();
            f.settle();
            assertThat(started[0]).isTrue();
            assertThat(drv.ops).as("the start's own pass takes nothing while drained").isEmpty();
            f.dev.node().drainedEnd();
            f.settle();
            assertThat(f.guest.reap()).hasSize(1);
        }
    }

    @Test
    void aDeviceOnTwoIoThreadsDrainsBothQueues() {
        AioContext control = AioContext.forCurrentThread("control");
        IoThread io0 = IoThread.start("io0", AioOptions.DEFAULT);
        IoThread io1 = IoThread.start("io1", AioOptions.DEFAULT);
        MemDriver drv = new MemDriver(16 * MIB);
        drv.mode = MemDriver.Mode.HOLD;
        GuestRam ram = GuestRam.ofArena("drain-two-threads", Arena.ofShared(), GuestRam.DEFAULT_GPA_BASE, 16 * MIB);
        List<GuestQueue> g = new ArrayList<>();
        try {
            BlkDevice dev = new BlkDevice("vdb", drv, new BlkDeviceConfig().numQueues(2).queueSize(64)
                    .ioThreads(IoThreadMapping.roundRobin(List.of(io0.ctx(), io1.ctx()))), control);
            dev.setDriverFeatures(GuestQueue.ringFeatures(dev.deviceFeatures()));
            GuestQueue.giveMemory(dev, ram);
            int[] started = {0};
            for (int q = 0; q < 2; q++) {
                GuestQueue gq = new GuestQueue(ram, q, 64, 8, GuestQueue.ringFeatures(dev.deviceFeatures()));
                g.add(gq);
                gq.attach(dev);
                dev.startQueue(q, () -> started[0]++);
            }
            MultiQueueTest.await(control, () -> started[0] == 2, "queues to start");
            for (GuestQueue gq : g) {
                gq.read(0, 512);
                gq.kick();
            }
            MultiQueueTest.await(control, () -> drv.ops.size() == 2, "one request held per queue");

            CompletableFuture<Void> q = dev.node().drainedBegin();
            // Each queue stops on its own IoThread; the meters there say when.
            MultiQueueTest.await(control, () -> onThread(io0, io0.ctx()::drainedSections) == 1
                    && onThread(io1, io1.ctx()::drainedSections) == 1, "both queues to stop");
            for (GuestQueue gq : g) {
                gq.read(8, 512);
                gq.kick();
            }
            assertThat(q).as("two requests in flight, one per IoThread").isNotDone();
            releaseOn(drv, io0);
            MultiQueueTest.await(control, () -> onThread(io0, () -> dev.queueStats(0).inFlight()) == 0,
                    "io0's request to complete");
            for (int i = 0; i < 20; i++) {
                control.poll(false);
            }
            assertThat(q).as("io1 still has one in flight").isNotDone();
            releaseOn(drv, io1);
            MultiQueueTest.await(control, q::isDone, "the drain to complete");
            // The kicks of the section reached each IoThread; neither queue popped.
            onThread(io0, () -> 0L);
            onThread(io1, () -> 0L);
            assertThat(drv.ops).as("no queue pops inside the section").hasSize(2);

            dev.node().drainedEnd();
            MultiQueueTest.await(control, () -> drv.ops.size() == 4, "both rings re-checked at the end");
            releaseOn(drv, io0);
            releaseOn(drv, io1);
            List<GuestQueue.Done> done = new ArrayList<>();
            for (GuestQueue gq : g) {
                done.addAll(MultiQueueTest.runAll(gq, 2));
            }
            assertThat(done).hasSize(4).allMatch(d -> d.status() == BlkStatus.OK);
            assertThat(onThread(io0, io0.ctx()::drainRechecks)).isEqualTo(1);
            assertThat(onThread(io1, io1.ctx()::drainRechecks)).isEqualTo(1);

            int[] stopped = {0};
            for (int i = 0; i < 2; i++) {
                dev.stopQueue(i, n -> stopped[0]++);
            }
            MultiQueueTest.await(control, () -> stopped[0] == 2, "queues to stop");
            boolean[] closed = {false};
            dev.close(() -> closed[0] = true);
            MultiQueueTest.await(control, () -> closed[0], "device to close");
            assertThat(dev.node().parents()).as("the closed device left its node").isEmpty();
        } finally {
            io0.close();
            io1.close();
            control.close();
            for (GuestQueue gq : g) {
                gq.close();
            }
            ram.close();
            drv.close();
        }
    }

    /** Reads {@code value} on {@code t}'s thread and waits for it (the test thread steps no loop meanwhile). */
    private static long onThread(IoThread t, java.util.function.LongSupplier value) {
        CompletableFuture<Long> f = t.ctx().callOn(value::getAsLong);
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (!f.isDone()) {
            if (System.nanoTime() - deadline > 0) {
                throw new AssertionError("no answer from " + t.name());
            }
            Thread.onSpinWait();
        }
        return f.join();
    }

    /** Completes the held requests of the channel on {@code t}, on its thread. */
    private static void releaseOn(MemDriver drv, IoThread t) {
        onThread(t, () -> {
            for (MemDriver.Channel c : List.copyOf(drv.channels)) {
                if (c.context() == t.ctx()) {
                    c.releaseHeld();
                }
            }
            return 0;
        });
    }
}
