package io.vblk.virtio.blk;

import io.vblk.aio.AioContext;
import io.vblk.aio.sys.EventFds;
import io.vblk.guest.GuestFeatures;
import io.vblk.guest.GuestRam;
import io.vblk.virtio.device.IoThreadMapping;
import io.vblk.virtio.queue.DescriptorLayout;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.lang.foreign.Arena;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** Control-plane behaviour: fd swaps on a running queue, NEEDS_RESET isolation, misuse refused. */
@Timeout(20)
class BlkDeviceLifecycleTest {
    static final long MIB = 1 << 20;
    /** The features these devices offer and the mock guest drives with. */
    static final long ALL = GuestFeatures.bits(GuestFeatures.F_VERSION_1, GuestFeatures.F_EVENT_IDX,
            GuestFeatures.F_INDIRECT_DESC);

    /** Makes {@code g} carry a chain that loops on itself. */
    static void postLoop(GuestQueue g) {
        int last = g.size() - 1;
        g.vring.forgeDescriptor(last, g.ram.allocate(16, 16), 16, DescriptorLayout.F_NEXT, last);
        g.vring.forgeAvail(last);
    }

    @Test
    void aRunningQueueTakesNewCallAndKickFds() {
        try (BlkFixture f = new BlkFixture(new MemDriver(MIB))) {
            int call2 = EventFds.eventfd(0, EventFds.EFD_NONBLOCK | EventFds.EFD_CLOEXEC);
            int kick2 = EventFds.eventfd(0, EventFds.EFD_NONBLOCK | EventFds.EFD_CLOEXEC);
            int oldCall = f.guest.deviceCallFd();
            f.dev.setQueueFds(0, kick2, call2);
            f.settle();
            assertThat(EventFds.eventfdRead(oldCall)).as("the device closed the old call fd").isNegative();
            f.guest.read(0, 512);
            EventFds.eventfdWrite(kick2, 1);
            f.settle();
            assertThat(f.guest.reap()).hasSize(1);
            assertThat(EventFds.eventfdRead(call2)).as("notified through the new fd").isEqualTo(1);
        }
    }

    @Test
    void aViolationLeavesOtherDevicesRunning() {
        AioContext ctx = AioContext.forCurrentThread("shared");
        MemDriver da = new MemDriver(MIB);
        MemDriver db = new MemDriver(MIB);
        GuestRam ra = ram("a");
        GuestRam rb = ram("b");
        GuestQueue ga = new GuestQueue(ra, 0, 16, 8, ALL);
        GuestQueue gb = new GuestQueue(rb, 0, 16, 8, ALL);
        try {
            BlkDevice a = device("a", da, ra, ga, ctx, 1);
            BlkDevice b = device("b", db, rb, gb, ctx, 1);
            settle(ctx);
            postLoop(ga);
            ga.kick();
            gb.read(0, 512);
            gb.kick();
            settle(ctx);
            assertThat(a.needsReset()).isTrue();
            assertThat(b.needsReset()).isFalse();
            assertThat(gb.reap()).hasSize(1).allMatch(d -> d.status() == BlkStatus.OK);
            gb.write(8, new byte[512]);
            gb.kick();
            settle(ctx);
            assertThat(gb.reap()).hasSize(1).allMatch(d -> d.status() == BlkStatus.OK);
            for (BlkDevice d : List.of(a, b)) {
                d.stopQueue(0, n -> { });
                settle(ctx);
                d.close();
                settle(ctx);
            }
        } finally {
            ctx.close();
            ga.close();
            gb.close();
            ra.close();
            rb.close();
            da.close();
            db.close();
        }
    }

    @Test
    void aViolationOnOneQueueStopsTheDevicesOtherQueues() {
        AioContext ctx = AioContext.forCurrentThread("mq");
        MemDriver drv = new MemDriver(MIB);
        GuestRam mem = ram("mq");
        GuestQueue g0 = new GuestQueue(mem, 0, 16, 8, ALL);
        GuestQueue g1 = new GuestQueue(mem, 1, 16, 8, ALL);
        try {
            BlkDevice dev = new BlkDevice("mq", drv, new BlkDeviceConfig().numQueues(2).queueSize(16)
                    .ioThreads(IoThreadMapping.single(ctx)), ctx);
            dev.setDriverFeatures(GuestQueue.ringFeatures(dev.deviceFeatures()));
            GuestQueue.giveMemory(dev, mem);
            GuestQueue[] gs = {g0, g1};
            for (int q = 0; q < 2; q++) {
                gs[q].attach(dev);
                dev.startQueue(q, () -> { });
            }
            settle(ctx);
            postLoop(g0);
            g0.kick();
            settle(ctx);
            assertThat(dev.needsReset()).isTrue();
            g1.read(0, 512);
            g1.kick();
            settle(ctx);
            assertThat(g1.reap()).as("2.1.2: a device that needs a reset takes no more buffers").isEmpty();
            int[] next = {-1, -1};
            dev.stopQueue(0, n -> next[0] = n);
            dev.stopQueue(1, n -> next[1] = n);
            settle(ctx);
            assertThat(next).containsExactly(1, 0);
            dev.reset();
            // After reset the driver renegotiates and the device serves again.
            dev.setDriverFeatures(GuestQueue.ringFeatures(dev.deviceFeatures()));
            dev.configureQueue(1, g1.layout());
            dev.setQueueFds(1, EventFds.eventfd(0, EventFds.EFD_NONBLOCK), EventFds.eventfd(0, EventFds.EFD_NONBLOCK));
            dev.startQueue(1, () -> { });
            settle(ctx);
            assertThat(g1.reap()).hasSize(1).allMatch(d -> d.status() == BlkStatus.OK);
            dev.stopQueue(1, n -> { });
            settle(ctx);
            dev.close();
            settle(ctx);
        } finally {
            ctx.close();
            g0.close();
            g1.close();
            mem.close();
            drv.close();
        }
    }

    @Test
    void anAvailIndexJumpNeedsReset() {
        try (BlkFixture f = new BlkFixture(new MemDriver(MIB))) {
            // 2.7.6.1: the index moves more than the queue size past what the device has seen.
            f.guest.read(0, 512);
            f.guest.vring.forgeAvailIdx(1000);
            f.guest.kick();
            f.settle();
            assertThat(f.dev.needsResetReason()).contains("AVAIL_INDEX_JUMP");
        }
    }

    @Test
    void misuseFromTheControlSideIsRefused() {
        try (BlkFixture f = new BlkFixture(new MemDriver(MIB))) {
            assertThatThrownBy(() -> f.dev.startQueue(0, () -> { })).hasMessageContaining("already started");
            assertThatThrownBy(() -> GuestQueue.giveMemory(f.dev, f.ram)).hasMessageContaining("old memory map");
            assertThatThrownBy(() -> f.dev.reset()).hasMessageContaining("stop it first");
            assertThatThrownBy(() -> f.dev.close()).hasMessageContaining("stop it first");
            assertThatThrownBy(() -> f.dev.setDriverFeatures(0)).hasMessageContaining("queue runs");
            assertThatThrownBy(() -> f.dev.configureQueue(1, f.guest.layout())).isInstanceOf(IndexOutOfBoundsException.class);
        }
    }

    @Test
    void controlMethodsBelongToTheControlThread() throws Exception {
        try (BlkFixture f = new BlkFixture(new MemDriver(MIB));
             io.vblk.aio.IoThread other = io.vblk.aio.IoThread.start("other", io.vblk.aio.AioOptions.DEFAULT)) {
            var fut = other.ctx().callOn(() -> {
                f.dev.configureQueue(0, f.guest.layout());
                return null;
            });
            assertThatThrownBy(() -> fut.get(5, java.util.concurrent.TimeUnit.SECONDS))
                    .satisfies(e -> assertThat(e.getCause()).isInstanceOf(IllegalStateException.class)
                            .hasMessageContaining("home thread"));
        }
    }

    private static GuestRam ram(String name) {
        return GuestRam.ofArena(name, Arena.ofShared(), GuestRam.DEFAULT_GPA_BASE, 4 * MIB);
    }

    private static BlkDevice device(String name, MemDriver drv, GuestRam ram, GuestQueue g, AioContext ctx,
                                    int queues) {
        BlkDevice d = new BlkDevice(name, drv, new BlkDeviceConfig().numQueues(queues).queueSize(16)
                .ioThreads(IoThreadMapping.single(ctx)), ctx);
        d.setDriverFeatures(GuestQueue.ringFeatures(d.deviceFeatures()));
        GuestQueue.giveMemory(d, ram);
        g.attach(d);
        d.startQueue(0, () -> { });
        return d;
    }

    private static void settle(AioContext ctx) {
        for (int i = 0; i < 10_000; i++) {
            if (!ctx.poll(false)) {
                return;
            }
        }
        throw new AssertionError("loop did not settle");
    }
}
