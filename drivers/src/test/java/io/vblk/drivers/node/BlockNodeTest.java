package io.vblk.drivers.node;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioOptions;
import io.vblk.aio.IoThread;
import io.vblk.aio.ManualClock;
import io.vblk.aio.linuxaio.LoopSteps;
import io.vblk.drivers.BlockChannel;
import io.vblk.drivers.BlockDriver;
import io.vblk.drivers.BlockIo;
import io.vblk.drivers.fault.FaultDriver;
import io.vblk.drivers.fault.FaultRule;
import io.vblk.drivers.nullblk.NullDriver;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * Home thread: the test thread, which is the node's main loop, stepped by hand.
 *
 * <p>Drained sections of a block node: nesting, the parents' begin/end, and the asynchronous wait
 * for the parents to stop and for every channel's in-flight requests, on the main loop and on
 * IoThreads.
 */
@Timeout(60)
class BlockNodeTest {
    /** Long enough that a delayed request is held until the manual clock moves. */
    private static final long HOLD_NANOS = 1_000_000_000L;

    private final ManualClock clock = new ManualClock();
    private final AioContext main = new AioContext("main", Thread.currentThread(), clock, AioOptions.DEFAULT);
    private final Arena arena = Arena.ofShared();
    private final List<IoThread> threads = new ArrayList<>();

    /** A parent that records the node's calls and reports stopped only when told. */
    private static final class Parent implements DrainParent {
        int begins;
        int ends;
        Runnable stopped;

        @Override
        public String drainName() {
            return "test parent";
        }

        @Override
        public void drainedBegin(Runnable stopped) {
            begins++;
            this.stopped = stopped;
        }

        @Override
        public void drainedEnd() {
            ends++;
        }
    }

    @AfterEach
    void tearDown() {
        for (IoThread t : threads) {
            t.close();
        }
        main.close();
        arena.close();
    }

    /** Null driver behind a fault driver that holds every request until the clock moves. */
    private static BlockDriver holdingDriver() {
        FaultRule hold = new FaultRule(FaultRule.ALL_OPS, 0, Long.MAX_VALUE, 0, 0, 1, 0, FaultRule.Action.DELAY, 0, 0,
                HOLD_NANOS);
        return new FaultDriver(new NullDriver(1 << 20, NullDriver.Completion.ASYNC), List.of(hold), 1);
    }

    private BlockIo flush(int[] completions) {
        return new BlockIo(arena, 1).range(BlockIo.FLUSH, 0, 0, 0, (io, result) -> completions[0]++);
    }

    private void settle() {
        for (int i = 0; i < 1000 && main.poll(false); i++) {
            // step until nothing more happens
        }
    }

    @Test
    void sectionsNestAndOnlyTheOutermostTellsTheParents() {
        BlockNode node = new BlockNode("n0", new NullDriver(1 << 20, NullDriver.Completion.ASYNC), main);
        Parent p = new Parent();
        node.attach(p);
        CompletableFuture<Void> outer = node.drainedBegin();
        CompletableFuture<Void> inner = node.drainedBegin();
        assertThat(p.begins).isEqualTo(1);
        assertThat(inner).as("a nested begin waits for the outermost section").isSameAs(outer);
        p.stopped.run();
        settle();
        assertThat(outer).isDone();
        node.drainedEnd();
        assertThat(node.isDrained()).as("still drained after the inner end").isTrue();
        assertThat(node.quiesceCounter()).isEqualTo(1);
        assertThat(p.ends).isZero();
        node.drainedEnd();
        assertThat(node.isDrained()).isFalse();
        assertThat(p.ends).isEqualTo(1);
        assertThat(node.sections()).isEqualTo(1);
        assertThatThrownBy(node::drainedEnd).isInstanceOf(IllegalStateException.class);
        node.detach(p);
        node.close();
    }

    @Test
    void theWaitEndsOnlyAfterEveryParentHasStopped() {
        BlockNode node = new BlockNode("n0", new NullDriver(1 << 20, NullDriver.Completion.ASYNC), main);
        Parent a = new Parent();
        Parent b = new Parent();
        node.attach(a);
        node.attach(b);
        CompletableFuture<Void> q = node.drainedBegin();
        a.stopped.run();
        settle();
        assertThat(q).as("one parent still takes requests").isNotDone();
        Thread[] completedOn = {null};
        q.thenRun(() -> completedOn[0] = Thread.currentThread());
        b.stopped.run();
        settle();
        assertThat(q).isDone();
        assertThat(completedOn[0]).as("completed on the node's home thread").isSameAs(Thread.currentThread());
        node.drainedEnd();
        node.detach(a);
        node.detach(b);
        node.close();
    }

    @Test
    void aHeldRequestKeepsTheWaitOpenUntilItCompletes() {
        BlockNode node = new BlockNode("n0", holdingDriver(), main);
        BlockChannel ch = node.openChannel(main);
        int[] done = {0};
        ch.submit(flush(done));
        settle();
        assertThat(inFlight(node)).isEqualTo(1);
        CompletableFuture<Void> q = node.drainedBegin();
        settle();
        assertThat(q).as("one request is still in flight").isNotDone();
        clock.advance(HOLD_NANOS);
        LoopSteps.pollUntil(main, q::isDone, "drain completes once the held request completed");
        assertThat(done[0]).isEqualTo(1);
        assertThat(inFlight(node)).isZero();
        node.drainedEnd();
        node.closeChannel(ch);
        node.close();
    }

    @Test
    void theWaitCoversChannelsOnTwoIoThreads() {
        BlockNode node = new BlockNode("n0", holdingDriver(), main);
        List<BlockChannel> channels = new ArrayList<>();
        int[] done = {0, 0};
        for (int i = 0; i < 2; i++) {
            IoThread t = IoThread.start("io" + i, clock, AioOptions.DEFAULT);
            threads.add(t);
            int slot = i;
            CompletableFuture<BlockChannel> f = t.ctx().callOn(() -> {
                BlockChannel ch = node.openChannel(t.ctx());
                ch.submit(new BlockIo(arena, 1).range(BlockIo.FLUSH, 0, 0, 0, (io, r) -> done[slot]++));
                return ch;
            });
            LoopSteps.pollUntil(main, f::isDone, "channel opened on io" + i);
            channels.add(f.join());
        }
        assertThat(inFlight(node)).isEqualTo(2);
        CompletableFuture<Void> q = node.drainedBegin();
        for (int i = 0; i < 5; i++) {
            main.poll(false);
        }
        assertThat(q).isNotDone();
        clock.advance(HOLD_NANOS);
        for (IoThread t : threads) {
            t.ctx().notifyLoop(); // its timer is due on the moved clock
        }
        LoopSteps.pollUntil(main, q::isDone, "drain completes once both IoThreads are idle");
        assertThat(inFlight(node)).isZero();
        node.drainedEnd();
        for (int i = 0; i < 2; i++) {
            BlockChannel ch = channels.get(i);
            CompletableFuture<Void> closed = threads.get(i).ctx().callOn(() -> {
                node.closeChannel(ch);
                return null;
            });
            LoopSteps.pollUntil(main, closed::isDone, "channel closed");
        }
        node.close();
    }

    @Test
    void aParentAttachedInsideASectionIsDrainedAndADetachedOneResumes() {
        BlockNode node = new BlockNode("n0", new NullDriver(1 << 20, NullDriver.Completion.ASYNC), main);
        node.drainedBegin();
        Parent p = new Parent();
        node.attach(p);
        assertThat(p.begins).isEqualTo(1);
        node.detach(p);
        assertThat(p.ends).isEqualTo(1);
        node.drainedEnd();
        assertThat(p.ends).as("a detached parent hears no more").isEqualTo(1);
        node.close();
    }

    @Test
    void anEndBeforeTheWaitCompletedResumesAndTheWaitStillCompletes() {
        BlockNode node = new BlockNode("n0", new NullDriver(1 << 20, NullDriver.Completion.ASYNC), main);
        Parent p = new Parent();
        node.attach(p);
        CompletableFuture<Void> q = node.drainedBegin();
        node.drainedEnd();
        assertThat(p.ends).isEqualTo(1);
        p.stopped.run();
        settle();
        assertThat(q).isDone();
        CompletableFuture<Void> next = node.drainedBegin();
        assertThat(next).as("a new section waits afresh").isNotSameAs(q).isNotDone();
        p.stopped.run();
        settle();
        assertThat(next).isDone();
        node.drainedEnd();
        node.detach(p);
        node.close();
    }

    @Test
    void aNodeInUseDoesNotClose() {
        BlockNode node = new BlockNode("n0", new NullDriver(1 << 20, NullDriver.Completion.ASYNC), main);
        Parent p = new Parent();
        node.attach(p);
        assertThatThrownBy(node::close).isInstanceOf(IllegalStateException.class).hasMessageContaining("1 parent");
        assertThatThrownBy(() -> node.attach(p)).isInstanceOf(IllegalStateException.class);
        node.detach(p);
        node.close();
        assertThatThrownBy(node::drainedBegin).isInstanceOf(IllegalStateException.class);
    }

    private long inFlight(BlockNode node) {
        CompletableFuture<Long> f = node.inFlight();
        LoopSteps.pollUntil(main, f::isDone, "in-flight count");
        return f.join();
    }
}
