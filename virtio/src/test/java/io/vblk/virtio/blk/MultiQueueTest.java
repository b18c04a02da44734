package io.vblk.virtio.blk;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioOptions;
import io.vblk.aio.IoThread;
import io.vblk.guest.GuestRam;
import io.vblk.virtio.device.IoThreadMapping;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.locks.LockSupport;
import java.util.function.BooleanSupplier;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Multiqueue over real IoThreads: each queue runs on the IoThread its mapping names, the control
 * context (the test thread) hears back, and data written through one queue reads back through
 * another.
 */
@Timeout(60)
class MultiQueueTest {
    static final long MIB = 1 << 20;
    /** Requests in flight per queue: 3 descriptors each in a 128-entry ring. */
    static final int BATCH = 40;

    /** Waits (bounded) for {@code cond}, stepping the control context meanwhile. */
    static void await(AioContext control, BooleanSupplier cond, String what) {
        long deadline = System.nanoTime() + 20_000_000_000L;
        while (!cond.getAsBoolean()) {
            control.poll(false);
            if (System.nanoTime() - deadline > 0) {
                throw new AssertionError("timed out waiting for " + what);
            }
            LockSupport.parkNanos(200_000);
        }
    }

    /** Kicks and waits (bounded) for {@code expected} completions on guest {@code g}. */
    static List<GuestQueue.Done> runAll(GuestQueue g, int expected) {
        g.kick();
        List<GuestQueue.Done> done = new ArrayList<>(g.reap());
        int more = expected - done.size();
        if (more > 0 && g.q.awaitCompletions(more, 20_000) < more) {
            throw new AssertionError("only " + (expected - more) + " of " + expected + " completed in 20 s");
        }
        done.addAll(g.reap());
        return done;
    }

    @Test
    void roundRobinQueuesOnTwoIoThreadsWithVerifiedData() {
        runMultiQueue(4, ctxs -> IoThreadMapping.roundRobin(ctxs), new int[] {0, 1, 0, 1});
    }

    @Test
    void explicitMappingPlacesEachQueue() {
        runMultiQueue(3, ctxs -> IoThreadMapping.explicit(List.of(ctxs.get(1), ctxs.get(1), ctxs.get(0))),
                new int[] {1, 1, 0});
    }

    private void runMultiQueue(int queues, java.util.function.Function<List<AioContext>, IoThreadMapping> mapping,
                               int[] expectThread) {
        long seed = Long.getLong("vblk.seed", System.nanoTime());
        System.out.println("runMultiQueue: seed " + seed);
        SplittableRandom rnd = new SplittableRandom(seed);
        AioContext control = AioContext.forCurrentThread("control");
        IoThread io0 = IoThread.start("io0", AioOptions.DEFAULT);
        IoThread io1 = IoThread.start("io1", AioOptions.DEFAULT);
        MemDriver drv = new MemDriver(16 * MIB);
        drv.mode = MemDriver.Mode.ASYNC;
        GuestRam ram = GuestRam.ofArena("multi-queue", Arena.ofShared(), GuestRam.DEFAULT_GPA_BASE, 16 * MIB);
        GuestQueue[] g = new GuestQueue[queues];
        try {
            IoThreadMapping m = mapping.apply(List.of(io0.ctx(), io1.ctx()));
            BlkDevice dev = new BlkDevice("vdb", drv, new BlkDeviceConfig().numQueues(queues).queueSize(128)
                    .ioThreads(m), control);
            dev.setDriverFeatures(GuestQueue.ringFeatures(dev.deviceFeatures()));
            GuestQueue.giveMemory(dev, ram);
            int[] started = {0};
            for (int q = 0; q < queues; q++) {
                g[q] = new GuestQueue(ram, q, 128, BATCH, GuestQueue.ringFeatures(dev.deviceFeatures()));
                g[q].rearm = true;
                g[q].attach(dev);
                dev.startQueue(q, () -> started[0]++);
                assertThat(dev.queueContext(q).name()).isEqualTo(expectThread[q] == 0 ? "io0" : "io1");
            }
            await(control, () -> started[0] == queues, "queues to start");

            // Each queue writes its own 1 MiB stripe in random-sized chunks.
            Map<Long, byte[]> written = new HashMap<>();
            for (int q = 0; q < queues; q++) {
                long sector = q * 2048L;
                int n = 0;
                while (sector < (q + 1) * 2048L) {
                    int sectors = (int) Math.min(rnd.nextInt(1, 33), (q + 1) * 2048L - sector);
                    byte[] data = new byte[sectors * 512];
                    rnd.nextBytes(data);
                    g[q].write(sector, data);
                    written.put(sector, data);
                    sector += sectors;
                    n++;
                    if (g[q].inFlight() == BATCH) {
                        assertThat(runAll(g[q], BATCH)).allMatch(d -> d.status() == BlkStatus.OK);
                        g[q].recycle();
                    }
                }
                int left = g[q].inFlight();
                assertThat(runAll(g[q], left)).allMatch(d -> d.status() == BlkStatus.OK);
                g[q].recycle();
            }
            // The driver saw each queue's requests on that queue's IoThread.
            for (MemDriver.Op op : drv.ops) {
                int q = (int) (op.offset() / MIB);
                assertThat(op.thread()).isEqualTo(expectThread[q] == 0 ? "io0" : "io1");
            }
            // Read every chunk back through a different queue than wrote it.
            for (Map.Entry<Long, byte[]> e : written.entrySet()) {
                int writer = (int) (e.getKey() / 2048);
                int q = (writer + 1) % queues;
                g[q].read(e.getKey(), e.getValue().length);
                if (g[q].inFlight() == BATCH) {
                    verify(g[q], written);
                }
            }
            for (GuestQueue gq : g) {
                verify(gq, written);
            }
            long total = 0;
            for (int q = 0; q < queues; q++) {
                total += dev.queueStats(q).completed();
                assertThat(dev.queueStats(q).inFlight()).isZero();
            }
            assertThat(total).isEqualTo(2L * written.size());

            int[] stopped = {0};
            for (int q = 0; q < queues; q++) {
                dev.stopQueue(q, next -> stopped[0]++);
            }
            await(control, () -> stopped[0] == queues, "queues to stop");
            boolean[] closed = {false};
            dev.close(() -> closed[0] = true);
            await(control, () -> closed[0], "device to close");
            assertThat(drv.channels).hasSize(2).allMatch(c -> c.closed);
        } finally {
            io0.close();
            io1.close();
            control.close();
            for (GuestQueue gq : g) {
                if (gq != null) {
                    gq.close();
                }
            }
            ram.close();
            drv.close();
        }
    }

    private static void verify(GuestQueue g, Map<Long, byte[]> written) {
        int n = g.inFlight();
        for (GuestQueue.Done d : runAll(g, n)) {
            assertThat(d.status()).isEqualTo(BlkStatus.OK);
            long sector = d.slot().sector();
            assertThat(Arrays.equals(GuestQueue.data(d.slot()), written.get(sector))).as("sector %d", sector).isTrue();
        }
        g.recycle();
    }
}
