package io.vblk.drivers.fault;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioOptions;
import io.vblk.aio.ManualClock;
import io.vblk.aio.linuxaio.LoopSteps;
import io.vblk.aio.sys.Errno;
import io.vblk.drivers.BlockChannel;
import io.vblk.drivers.BlockDriver;
import io.vblk.drivers.BlockIo;
import io.vblk.drivers.spec.DriverSpec;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import static org.assertj.core.api.Assertions.assertThat;

@Timeout(value = 30, unit = TimeUnit.SECONDS)
@SuppressWarnings("restricted")
class FaultDriverTest {
    private final ManualClock clock = new ManualClock();
    private AioContext ctx;
    private Arena arena;

    @BeforeEach
    void setUp() {
        ctx = new AioContext("fault-test", Thread.currentThread(), clock, AioOptions.DEFAULT);
        arena = Arena.ofConfined();
    }

    @AfterEach
    void tearDown() {
        arena.close();
        ctx.close();
    }

    private final List<Long> results = new ArrayList<>();

    private BlockIo io(int op, long off, long len) {
        BlockIo io = new BlockIo(arena, 2);
        if (op == BlockIo.READ || op == BlockIo.WRITE) {
            io.rw(op, off, (q, r) -> results.add(r));
            MemorySegment b = arena.allocate(len, 4096);
            b.fill((byte) 0x5a);
            io.iov.add(b.address(), len);
        } else {
            io.range(op, off, len, 0, (q, r) -> results.add(r));
        }
        return io;
    }

    private List<Long> runAll(BlockChannel ch, BlockIo... ios) {
        results.clear();
        for (BlockIo io : ios) {
            ch.submit(io);
        }
        LoopSteps.pollUntil(ctx, () -> results.size() == ios.length, "all complete");
        ctx.poll(false);
        assertThat(results).hasSize(ios.length);
        return List.copyOf(results);
    }

    @Test
    void errorByOpAndRange() {
        try (BlockDriver d = DriverSpec.open("fault:rule=op:write,range:1M-2M,error:ENOSPC;inner=null:size=4M")) {
            BlockChannel ch = d.openChannel(ctx);
            List<Long> r = runAll(ch,
                    io(BlockIo.WRITE, 0, 4096),              // outside the range
                    io(BlockIo.WRITE, (1 << 20) - 2048, 4096), // overlaps its start
                    io(BlockIo.READ, 1 << 20, 4096),         // not a write
                    io(BlockIo.WRITE, (2 << 20) - 4096, 4096));
            assertThat(r).containsExactlyInAnyOrder(4096L, (long) -Errno.ENOSPC, 4096L, (long) -Errno.ENOSPC);
            ch.close();
        }
    }

    /** SECURE_ERASE passes through the fault driver (and its support with it) and can be failed by op. */
    @Test
    void secureEraseIsForwardedAndCanBeFailed(@org.junit.jupiter.api.io.TempDir java.nio.file.Path dir) {
        String img = io.vblk.drivers.TestImages.create(dir, "f.img", 1 << 20);
        try (BlockDriver d = DriverSpec.open("fault:rule=op:secure-erase,nth:2,error:EIO;inner=file:" + img
                + ",aio=threads,cache=writeback")) {
            assertThat(d.supportsSecureErase()).isTrue();
            BlockChannel ch = d.openChannel(ctx);
            assertThat(runAll(ch, io(BlockIo.SECURE_ERASE, 0, 4096))).containsExactly(0L);
            assertThat(runAll(ch, io(BlockIo.SECURE_ERASE, 0, 4096))).containsExactly((long) -Errno.EIO);
            assertThat(runAll(ch, io(BlockIo.DISCARD, 0, 4096))).as("another op").containsExactly(0L);
            ch.close();
        }
        try (BlockDriver d = DriverSpec.open("fault:rule=op:any,error:EIO;inner=null")) {
            assertThat(d.supportsSecureErase()).as("the null device does not erase").isFalse();
        }
    }

    @Test
    void nthEveryAndCount() {
        try (BlockDriver d = DriverSpec.open("fault:rule=op:read,nth:3,error:EIO;rule=op:write,every:2,count:2,error:EIO;"
                + "inner=null:size=1M,completion=sync")) {
            BlockChannel ch = d.openChannel(ctx);
            for (int i = 1; i <= 5; i++) {
                long r = runAll(ch, io(BlockIo.READ, 0, 512)).getFirst();
                assertThat(r).as("read %d", i).isEqualTo(i == 3 ? -Errno.EIO : 512);
            }
            for (int i = 1; i <= 8; i++) {
                long r = runAll(ch, io(BlockIo.WRITE, 0, 512)).getFirst();
                assertThat(r).as("write %d", i).isEqualTo(i == 2 || i == 4 ? -Errno.EIO : 512);
            }
            ch.close();
        }
    }

    @Test
    void probabilityIsRepeatableForASeed() {
        String spec = "fault:seed=42;rule=prob:0.5,error:EIO;inner=null";
        List<Long> first = new ArrayList<>();
        List<Long> second = new ArrayList<>();
        for (List<Long> out : List.of(first, second)) {
            try (BlockDriver d = DriverSpec.open(spec)) {
                BlockChannel ch = d.openChannel(ctx);
                for (int i = 0; i < 64; i++) {
                    out.add(runAll(ch, io(BlockIo.FLUSH, 0, 0)).getFirst());
                }
                ch.close();
            }
        }
        assertThat(first).isEqualTo(second);
        long failed = first.stream().filter(r -> r < 0).count();
        assertThat(failed).isBetween(16L, 48L);
    }

    @Test
    void shortReadTransfersOnlyThePrefix() {
        try (BlockDriver d = DriverSpec.open("fault:rule=op:read,short:1000;inner=null")) {
            BlockChannel ch = d.openChannel(ctx);
            BlockIo r = io(BlockIo.READ, 0, 4096);
            assertThat(runAll(ch, r)).containsExactly(1000L);
            MemorySegment b = MemorySegment.ofAddress(r.iov.base(0)).reinterpret(4096);
            assertThat(b.get(ValueLayout.JAVA_BYTE, 999)).isZero();        // read by the null device
            assertThat(b.get(ValueLayout.JAVA_BYTE, 1000)).isEqualTo((byte) 0x5a); // untouched
            ch.close();
        }
    }

    @Test
    void delayHoldsTheRequestUntilTheClockPassesIt() {
        try (BlockDriver d = DriverSpec.open("fault:rule=op:flush,delay:20ms;inner=null:completion=async")) {
            BlockChannel ch = d.openChannel(ctx);
            results.clear();
            ch.submit(io(BlockIo.FLUSH, 0, 0));
            ch.submit(io(BlockIo.READ, 0, 512));
            for (int i = 0; i < 3; i++) {
                ctx.poll(false);
            }
            assertThat(results).containsExactly(512L); // the read, not the delayed flush
            clock.advance(19_000_000);
            ctx.poll(false);
            ctx.poll(false);
            assertThat(results).hasSize(1);
            clock.advance(1_000_000);
            LoopSteps.pollUntil(ctx, () -> results.size() == 2, "delayed flush");
            assertThat(results).containsExactly(512L, 0L);
            assertThat(ch.inFlight()).isZero();
            ch.close();
        }
    }
}
