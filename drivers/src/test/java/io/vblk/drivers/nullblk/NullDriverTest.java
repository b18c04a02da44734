package io.vblk.drivers.nullblk;

import io.vblk.aio.AioContext;
import io.vblk.aio.DeferCall;
import io.vblk.aio.Guard;
import io.vblk.aio.linuxaio.LoopSteps;
import io.vblk.aio.engine.SubmitGuard;
import io.vblk.drivers.BlockIo;
import io.vblk.drivers.IoCompletion;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import static org.assertj.core.api.Assertions.assertThat;

@Timeout(value = 30, unit = TimeUnit.SECONDS)
class NullDriverTest {
    private AioContext ctx;
    private Arena arena;

    @BeforeEach
    void setUp() {
        ctx = AioContext.forCurrentThread("null-test");
        arena = Arena.ofConfined();
    }

    @AfterEach
    void tearDown() {
        arena.close();
        ctx.close();
    }

    /** Each completion submits the next read at once, until {@code total} or a depth limit. */
    private static final class ClosedLoop implements IoCompletion {
        final NullChannel ch;
        final int total;
        final int depthLimit;
        int issued;
        int completed;

        ClosedLoop(NullChannel ch, int total, int depthLimit) {
            this.ch = ch;
            this.total = total;
            this.depthLimit = depthLimit;
        }

        @Override
        public void ioCompleted(BlockIo io, long result) {
            completed++;
            if (issued < total && ch.engine().submitGuard().depth() < depthLimit) {
                issued++;
                long base = io.iov.base(0);
                io.rw(BlockIo.READ, 0, this);
                io.iov.add(base, 512);
                ch.submit(io);
            }
        }
    }

    private BlockIo readIo() {
        BlockIo io = new BlockIo(arena, 1);
        MemorySegment b = arena.allocate(512);
        io.rw(BlockIo.READ, 0, null);
        io.iov.add(b.address(), 512);
        return io;
    }

    @Test
    void syncCompletionBatchesASectionIntoOneSubmit() {
        NullDriver d = new NullDriver(1 << 20, NullDriver.Completion.SYNC);
        NullChannel ch = (NullChannel) d.openChannel(ctx);
        int[] done = {0};
        DeferCall dc = ctx.deferCall();
        dc.begin();
        for (int i = 0; i < 10; i++) {
            BlockIo io = readIo();
            io.completion = (q, r) -> done[0]++;
            ch.submit(io);
        }
        assertThat(done[0]).isZero();
        dc.end();
        assertThat(done[0]).isEqualTo(10);
        assertThat(ch.engine().submitCalls()).isEqualTo(1);
        ch.close();
    }

    @Test
    void readsFillZeroesOrLeaveTheBufferUntouched() {
        for (NullDriver.Completion c : NullDriver.Completion.values()) {
            for (boolean zeroes : new boolean[] {true, false}) {
                NullDriver d = new NullDriver(1 << 20, c, 32, false, zeroes);
                var ch = d.openChannel(ctx);
                BlockIo io = readIo();
                MemorySegment buf = MemorySegment.ofAddress(io.iov.base(0)).reinterpret(512);
                buf.fill((byte) 0x5a);
                long[] result = {-1};
                io.completion = (q, r) -> result[0] = r;
                ch.submit(io);
                LoopSteps.pollUntil(ctx, () -> result[0] >= 0, c + " read");
                assertThat(result[0]).isEqualTo(512);
                byte expected = zeroes ? 0 : (byte) 0x5a;
                for (long i = 0; i < 512; i++) {
                    assertThat(buf.get(java.lang.foreign.ValueLayout.JAVA_BYTE, i)).as(c + " zeroes=" + zeroes + " byte " + i)
                            .isEqualTo(expected);
                }
                ch.close();
            }
        }
    }

    @Test
    void closedLoopRecursesWithoutTheGuard() {
        ctx.setGuard(Guard.SUBMIT_DEPTH, false);
        NullChannel ch = (NullChannel) new NullDriver(1 << 20, NullDriver.Completion.SYNC).openChannel(ctx);
        ClosedLoop loop = new ClosedLoop(ch, 1000, 100);
        BlockIo io = readIo();
        io.completion = loop;
        DeferCall dc = ctx.deferCall();
        dc.begin();
        loop.issued++;
        ch.submit(io);
        dc.end();
        assertThat(ch.engine().submitGuard().maxDepth()).isEqualTo(100);
        assertThat(ch.engine().submitGuard().capHits()).isZero();
        assertThat(loop.completed).isEqualTo(loop.issued);
        ch.close();
    }

    @Test
    void closedLoopIsCappedWithTheGuardAndLosesNothing() {
        NullChannel ch = (NullChannel) new NullDriver(1 << 20, NullDriver.Completion.SYNC).openChannel(ctx);
        ClosedLoop loop = new ClosedLoop(ch, 1000, Integer.MAX_VALUE);
        BlockIo io = readIo();
        io.completion = loop;
        DeferCall dc = ctx.deferCall();
        dc.begin();
        loop.issued++;
        ch.submit(io);
        dc.end();
        assertThat(ch.engine().submitGuard().depth()).isZero();
        LoopSteps.pollUntil(ctx, () -> loop.completed == 1000, "1000 chained requests");
        assertThat(ch.engine().submitGuard().maxDepth()).isEqualTo(SubmitGuard.DEFAULT_CAP);
        assertThat(ch.engine().submitGuard().capHits()).isPositive();
        assertThat(loop.issued).isEqualTo(1000);
        assertThat(ch.inFlight()).isZero();
        ch.close();
    }

    @Test
    void asyncCompletionWaitsForTheLoop() {
        NullDriver d = new NullDriver(1 << 20, NullDriver.Completion.ASYNC);
        var ch = d.openChannel(ctx);
        int[] done = {0};
        BlockIo io = readIo();
        io.completion = (q, r) -> done[0]++;
        ch.submit(io);
        assertThat(done[0]).isZero();
        assertThat(ctx.poll(false)).isTrue();
        assertThat(done[0]).isEqualTo(1);
        ch.close();
    }
}
