package io.vblk.drivers.fault;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioOptions;
import io.vblk.aio.ManualClock;
import io.vblk.aio.linuxaio.LoopSteps;
import io.vblk.aio.sys.Errno;
import io.vblk.drivers.BlockChannel;
import io.vblk.drivers.BlockDriver;
import io.vblk.drivers.BlockIo;
import io.vblk.drivers.fault.BlkdebugRules.Event;
import io.vblk.drivers.fault.BlkdebugRules.InjectError;
import io.vblk.drivers.fault.BlkdebugRules.SetState;
import io.vblk.drivers.nullblk.NullDriver;
import io.vblk.drivers.spec.DriverSpec;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** Home thread: the test thread. QEMU blkdebug rules on the fault driver: events, sector, iotype, once, immediately, states. */
@Timeout(value = 30, unit = TimeUnit.SECONDS)
class BlkdebugRulesTest {
    private static final int ANY = BlkdebugRules.IOTYPE_DEFAULT;
    private final ManualClock clock = new ManualClock();
    private final List<Long> results = new ArrayList<>();
    private AioContext ctx;
    private Arena arena;

    @BeforeEach
    void setUp() {
        ctx = new AioContext("blkdebug-test", Thread.currentThread(), clock, AioOptions.DEFAULT);
        arena = Arena.ofConfined();
    }

    @AfterEach
    void tearDown() {
        arena.close();
        ctx.close();
    }

    private BlockIo io(int op, long off, long len) {
        BlockIo io = new BlockIo(arena, 2);
        if (op == BlockIo.READ || op == BlockIo.WRITE) {
            io.rw(op, off, (q, r) -> results.add(r));
            MemorySegment b = arena.allocate(len, 4096);
            io.iov.add(b.address(), len);
        } else {
            io.range(op, off, len, 0, (q, r) -> results.add(r));
        }
        return io;
    }

    private long run(BlockChannel ch, BlockIo io) {
        results.clear();
        ch.submit(io);
        LoopSteps.pollUntil(ctx, () -> results.size() == 1, "complete");
        return results.getFirst();
    }

    private BlockDriver driver(List<InjectError> inject, List<SetState> set) {
        return new DriverSpec.Blkdebug(new BlkdebugRules(inject, set),
                new DriverSpec.Null(1 << 20, NullDriver.Completion.SYNC, 32, false)).open();
    }

    @Test
    void eventsSelectTheRequestsAndSectorNarrowsThem() {
        try (BlockDriver d = driver(List.of(
                new InjectError(Event.WRITE_AIO, 0, ANY, Errno.ENOSPC, 16, false, false),
                new InjectError(Event.FLUSH_TO_DISK, 0, ANY, Errno.EIO, -1, false, false)), List.of())) {
            assertThat(d.kind()).isEqualTo("blkdebug");
            BlockChannel ch = d.openChannel(ctx);
            assertThat(run(ch, io(BlockIo.WRITE, 0, 4096))).as("sector 16 not covered").isEqualTo(4096);
            assertThat(run(ch, io(BlockIo.WRITE, 4096, 8192))).isEqualTo(-Errno.ENOSPC);
            assertThat(run(ch, io(BlockIo.READ, 8192, 512))).as("a read raises no write_aio").isEqualTo(512);
            assertThat(run(ch, io(BlockIo.FLUSH, 0, 0))).isEqualTo(-Errno.EIO);
            assertThat(run(ch, io(BlockIo.DISCARD, 8192, 512))).as("discard raises no event").isEqualTo(0);
            ch.close();
        }
    }

    @Test
    void onceFiresOnceAndImmediatelyCompletesInsideSubmit() {
        try (BlockDriver d = driver(List.of(new InjectError(Event.READ_AIO, 0, ANY, Errno.EIO, -1, true, true)),
                List.of())) {
            BlockChannel ch = d.openChannel(ctx);
            results.clear();
            ch.submit(io(BlockIo.READ, 0, 512));
            assertThat(results).as("completed inside submit").containsExactly((long) -Errno.EIO);
            assertThat(run(ch, io(BlockIo.READ, 0, 512))).isEqualTo(512);
            ch.close();
        }
    }

    @Test
    void iotypeFiltersTheOperation() {
        try (BlockDriver d = driver(List.of(new InjectError(Event.PWRITEV, 0, 1 << BlockIo.READ, Errno.EIO, -1,
                false, false), new InjectError(Event.PWRITEV_ZERO, 0, 1 << BlockIo.WRITE_ZEROES, Errno.EIO, -1,
                false, false)), List.of())) {
            BlockChannel ch = d.openChannel(ctx);
            assertThat(run(ch, io(BlockIo.WRITE, 0, 512))).isEqualTo(512);
            assertThat(run(ch, io(BlockIo.WRITE_ZEROES, 0, 512))).isEqualTo(-Errno.EIO);
            ch.close();
        }
    }

    @Test
    void setStateMovesBetweenStatesAndGatesRules() {
        // State 1: the first write moves to 2; in state 2 reads fail; a flush moves back to 1.
        BlkdebugRules rules = new BlkdebugRules(
                List.of(new InjectError(Event.READ_AIO, 2, ANY, Errno.EIO, -1, false, false)),
                List.of(new SetState(Event.WRITE_AIO, 1, 2), new SetState(Event.FLUSH_TO_DISK, 2, 1)));
        try (BlockDriver d = new DriverSpec.Blkdebug(rules,
                new DriverSpec.Null(1 << 20, NullDriver.Completion.SYNC, 32, false)).open()) {
            BlockChannel ch = d.openChannel(ctx);
            assertThat(run(ch, io(BlockIo.READ, 0, 512))).isEqualTo(512);
            assertThat(rules.state()).isEqualTo(1);
            run(ch, io(BlockIo.WRITE, 0, 512));
            assertThat(rules.state()).isEqualTo(2);
            assertThat(run(ch, io(BlockIo.READ, 0, 512))).isEqualTo(-Errno.EIO);
            run(ch, io(BlockIo.FLUSH, 0, 0));
            assertThat(rules.state()).isEqualTo(1);
            assertThat(run(ch, io(BlockIo.READ, 0, 512))).isEqualTo(512);
            ch.close();
        }
    }

    @Test
    void badRulesAreRefusedWithTheirName() {
        assertThatThrownBy(() -> new InjectError(null, 0, ANY, 5, -1, false, false))
                .hasMessageContaining("event is required").hasMessageContaining("read_aio");
        assertThatThrownBy(() -> new InjectError(Event.READ_AIO, 0, ANY, 0, -1, false, false))
                .hasMessageContaining("errno > 0");
        assertThatThrownBy(() -> new SetState(Event.READ_AIO, -1, 2)).hasMessageContaining("set-state");
        assertThat(Event.byName("l2_load")).isNull();
    }
}
