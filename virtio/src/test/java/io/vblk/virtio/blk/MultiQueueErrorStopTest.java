package io.vblk.virtio.blk;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioOptions;
import io.vblk.aio.IoThread;
import io.vblk.aio.sys.Errno;
import io.vblk.drivers.BlockIo;
import io.vblk.drivers.fault.FaultDriver;
import io.vblk.drivers.fault.FaultRule;
import io.vblk.guest.GuestRam;
import io.vblk.virtio.device.IoThreadMapping;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.lang.foreign.Arena;
import java.lang.foreign.ValueLayout;
import java.util.List;

import static io.vblk.virtio.blk.MultiQueueTest.await;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * Home thread: the test thread (the control context); the queues run on two IoThreads.
 *
 * <p>werror=enospc stops the whole device: a failure on queue 0 (on io0) stops queue 1 (on io1)
 * too; resuming from another thread re-runs the held write and lets queue 1 go on.
 */
@Timeout(60)
class MultiQueueErrorStopTest {
    private static final long MIB = 1 << 20;

    @Test
    void aStopOnOneQueueStopsEveryQueueAndResumeRestartsThemAll() throws Exception {
        AioContext control = AioContext.forCurrentThread("control");
        IoThread io0 = IoThread.start("io0", AioOptions.DEFAULT);
        IoThread io1 = IoThread.start("io1", AioOptions.DEFAULT);
        MemDriver mem = new MemDriver(4 * MIB);
        mem.mode = MemDriver.Mode.ASYNC;
        FaultDriver drv = new FaultDriver(mem, List.of(new FaultRule(FaultRule.opBit(BlockIo.WRITE), 0, 65536, 0, 0, 1,
                1, FaultRule.Action.ERROR, Errno.ENOSPC, 0, 0)), 1);
        GuestRam ram = GuestRam.ofArena("mq-stop", Arena.ofShared(), GuestRam.DEFAULT_GPA_BASE, 8 * MIB);
        GuestQueue g0 = null;
        GuestQueue g1 = null;
        try {
            BlkDevice dev = new BlkDevice("vdc", drv, new BlkDeviceConfig().numQueues(2).queueSize(64)
                    .ioThreads(IoThreadMapping.roundRobin(List.of(io0.ctx(), io1.ctx()))), control);
            dev.setDriverFeatures(GuestQueue.ringFeatures(dev.deviceFeatures()));
            GuestQueue.giveMemory(dev, ram);
            g0 = new GuestQueue(ram, 0, 64, 8, GuestQueue.ringFeatures(dev.deviceFeatures()));
            g1 = new GuestQueue(ram, 1, 64, 8, GuestQueue.ringFeatures(dev.deviceFeatures()));
            int[] started = {0};
            for (GuestQueue g : List.of(g0, g1)) {
                g.attach(dev);
            }
            dev.startQueue(0, () -> started[0]++);
            dev.startQueue(1, () -> started[0]++);
            await(control, () -> started[0] == 2, "queues to start");

            byte[] a = BlkDeviceTest.pattern(4096, 1);
            g0.write(0, a);
            g0.kick();
            await(control, dev::ioErrorStopped, "the device to stop");
            assertThat(dev.queueStats(0).held()).isEqualTo(1);
            // The stop reached io1 before anything we post now (its task queue is in order).
            boolean[] seen = {false};
            io1.ctx().runOn(() -> seen[0] = true);
            await(control, () -> seen[0], "io1 to take the stop");
            byte[] b = BlkDeviceTest.pattern(4096, 2);
            g1.write(4096, b);
            g1.kick();
            assertThat(g1.q.awaitCompletions(1, 300)).as("queue 1 takes nothing while stopped").isZero();

            Thread resumer = Thread.ofPlatform().start(dev::resume); // any thread may resume
            resumer.join();
            // The resume runs on the control context (this thread's): step it until it has.
            await(control, () -> !dev.ioErrorStopped(), "the device to resume");
            assertThat(g0.q.awaitCompletions(1, 20_000)).isEqualTo(1);
            assertThat(g1.q.awaitCompletions(1, 20_000)).isEqualTo(1);
            assertThat(g0.reap()).singleElement().extracting(GuestQueue.Done::status).isEqualTo(BlkStatus.OK);
            assertThat(g1.reap()).singleElement().extracting(GuestQueue.Done::status).isEqualTo(BlkStatus.OK);
            assertThat(mem.disk.asSlice(0, 4096).toArray(ValueLayout.JAVA_BYTE)).isEqualTo(a);
            assertThat(mem.disk.asSlice(4096L * 512, 4096).toArray(ValueLayout.JAVA_BYTE)).isEqualTo(b);

            int[] stopped = {0};
            dev.stopQueue(0, n -> stopped[0]++);
            dev.stopQueue(1, n -> stopped[0]++);
            await(control, () -> stopped[0] == 2, "queues to stop");
            boolean[] closed = {false};
            dev.close(() -> closed[0] = true);
            await(control, () -> closed[0], "device to close");
        } finally {
            io0.close();
            io1.close();
            control.close();
            if (g0 != null) {
                g0.close();
            }
            if (g1 != null) {
                g1.close();
            }
            ram.close();
            drv.close();
        }
    }
}
