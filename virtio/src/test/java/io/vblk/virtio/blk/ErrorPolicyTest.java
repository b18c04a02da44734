package io.vblk.virtio.blk;

import io.vblk.aio.sys.Errno;
import io.vblk.drivers.BlockIo;
import io.vblk.drivers.fault.FaultDriver;
import io.vblk.drivers.fault.FaultRule;
import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Home thread: the test thread (the fixture's one step-driven context).
 *
 * <p>werror / rerror through the fault driver: each policy for reads and writes, the events, the
 * stop that holds the failed request and those that follow, and the resume that re-submits them in
 * order with nothing acknowledged lost.
 */
class ErrorPolicyTest {
    private static final long MIB = 1 << 20;
    private static final int READ = FaultRule.opBit(BlockIo.READ);
    private static final int WRITE = FaultRule.opBit(BlockIo.WRITE);

    private final List<BlockIoError> events = new ArrayList<>();

    /** A device over the RAM driver behind a fault driver failing {@code ops} in the first 64 KiB {@code count} times. */
    private BlkFixture fixture(MemDriver mem, int ops, int errno, long count, Consumer<BlkDeviceConfig> tweak) {
        FaultRule rule = new FaultRule(ops, 0, 64 * 1024, 0, 0, 1, count, FaultRule.Action.ERROR, errno, 0, 0);
        FaultDriver d = new FaultDriver(mem, List.of(rule), 1);
        return new BlkFixture(d, c -> tweak.accept(c.merge(false).events(events::add)), -1);
    }

    private static byte[] pattern(int len, int seed) {
        return BlkDeviceTest.pattern(len, seed);
    }

    private static byte[] disk(MemDriver mem, long off, int len) {
        return mem.disk.asSlice(off, len).toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
    }

    @Test
    void defaultsAreQemusEnospcForWritesAndReportForReads() {
        BlkDeviceConfig c = new BlkDeviceConfig();
        assertThat(c.werror).isEqualTo(ErrorPolicy.ENOSPC);
        assertThat(c.rerror).isEqualTo(ErrorPolicy.REPORT);
        assertThat(ErrorPolicy.ENOSPC.action(Errno.ENOSPC)).isEqualTo(BlockErrorAction.STOP);
        assertThat(ErrorPolicy.ENOSPC.action(Errno.EIO)).isEqualTo(BlockErrorAction.REPORT);
        assertThat(ErrorPolicy.parse("werror", "stop")).isEqualTo(ErrorPolicy.STOP);
        org.assertj.core.api.Assertions.assertThatThrownBy(() -> ErrorPolicy.parse("rerror", "halt"))
                .hasMessageContaining("rerror").hasMessageContaining("ignore, report, stop or enospc");
    }

    @Test
    void reportGivesIoerrAndAnEvent() {
        MemDriver mem = new MemDriver(MIB);
        try (BlkFixture f = fixture(mem, READ | WRITE, Errno.EIO, 0, c -> { })) {
            f.guest.read(0, 4096);
            assertThat(f.one().status()).isEqualTo(BlkStatus.IOERR);
            f.guest.write(8, pattern(4096, 1));
            assertThat(f.one().status()).as("werror=enospc reports EIO").isEqualTo(BlkStatus.IOERR);
            assertThat(events).containsExactly(
                    new BlockIoError("vda", "vda", "read", BlockErrorAction.REPORT, false, "EIO"),
                    new BlockIoError("vda", "vda", "write", BlockErrorAction.REPORT, false, "EIO"));
            assertThat(f.dev.ioErrorCount(BlockErrorAction.REPORT)).isEqualTo(2);
            assertThat(f.dev.ioErrorStopped()).isFalse();
        }
    }

    @Test
    void ignoreCompletesAsSuccess() {
        MemDriver mem = new MemDriver(MIB);
        try (BlkFixture f = fixture(mem, READ | WRITE, Errno.EIO, 0,
                c -> c.werror(ErrorPolicy.IGNORE).rerror(ErrorPolicy.IGNORE))) {
            f.guest.write(0, pattern(4096, 2));
            assertThat(f.one().status()).isEqualTo(BlkStatus.OK);
            f.guest.read(0, 4096);
            assertThat(f.one().status()).isEqualTo(BlkStatus.OK);
            assertThat(events).extracting(BlockIoError::action).containsExactly(BlockErrorAction.IGNORE,
                    BlockErrorAction.IGNORE);
            assertThat(f.stats().ioErrors()).isZero();
        }
    }

    @Test
    void enospcStopsHoldsAndResumesInOrderWithNothingLost() {
        MemDriver mem = new MemDriver(MIB);
        // The first write fails with ENOSPC; after the resume the disk has room again.
        try (BlkFixture f = fixture(mem, WRITE, Errno.ENOSPC, 1, c -> { })) {
            f.guest.write(0, pattern(4096, 10));
            f.guest.kick();
            f.settle();
            assertThat(f.guest.reap()).as("the failed write is held, not answered").isEmpty();
            assertThat(f.dev.ioErrorStopped()).isTrue();
            assertThat(f.stats().held()).isEqualTo(1);
            assertThat(events).containsExactly(new BlockIoError("vda", "vda", "write", BlockErrorAction.STOP, true,
                    "ENOSPC"));
            // Requests that follow stay in the ring while the device is stopped.
            for (int i = 1; i <= 4; i++) {
                f.guest.write(8L * i, pattern(4096, 10 + i));
            }
            f.guest.kick();
            f.settle();
            assertThat(f.guest.reap()).isEmpty();
            assertThat(f.guest.inFlight()).isEqualTo(5);

            f.dev.resume();
            f.settle();
            List<GuestQueue.Done> done = f.guest.reap();
            assertThat(done).hasSize(5).allSatisfy(d -> assertThat(d.status()).isEqualTo(BlkStatus.OK));
            assertThat(done).extracting(d -> GuestQueue.sector(d.slot())).as("held first, then the rest in order")
                    .containsExactly(0L, 8L, 16L, 24L, 32L);
            for (int i = 0; i <= 4; i++) {
                assertThat(disk(mem, 4096L * i, 4096)).isEqualTo(pattern(4096, 10 + i));
            }
            assertThat(f.dev.ioErrorStopped()).isFalse();
            assertThat(f.stats().held()).isZero();
        }
    }

    @Test
    void stopPolicyForReadsAndWritesHoldsEveryFailureUntilResume() {
        MemDriver mem = new MemDriver(MIB);
        mem.disk.asSlice(0, 4096).copyFrom(MemorySegment.ofArray(pattern(4096, 3)));
        try (BlkFixture f = fixture(mem, READ | WRITE, Errno.EIO, 2,
                c -> c.werror(ErrorPolicy.STOP).rerror(ErrorPolicy.STOP))) {
            f.guest.read(0, 4096);
            f.guest.kick();
            f.settle();
            assertThat(f.guest.reap()).isEmpty();
            assertThat(events).extracting(BlockIoError::operation, BlockIoError::action, BlockIoError::nospace)
                    .containsExactly(org.assertj.core.groups.Tuple.tuple("read", BlockErrorAction.STOP, false));
            f.dev.resume();
            f.settle();
            // The re-submitted read fails again (the rule fires twice): held again, one more event.
            assertThat(f.guest.reap()).isEmpty();
            assertThat(f.dev.ioErrorStopped()).isTrue();
            assertThat(events).hasSize(2);
            f.dev.resume();
            f.settle();
            List<GuestQueue.Done> done = f.guest.reap();
            assertThat(done).singleElement().satisfies(d -> {
                assertThat(d.status()).isEqualTo(BlkStatus.OK);
                assertThat(GuestQueue.data(d.slot())).startsWith(pattern(4096, 3));
            });
            assertThat(f.dev.ioErrorCount(BlockErrorAction.STOP)).isEqualTo(2);
        }
    }

    @Test
    void resumeOfADeviceThatIsNotStoppedDoesNothing() {
        MemDriver mem = new MemDriver(MIB);
        try (BlkFixture f = fixture(mem, WRITE, Errno.EIO, 0, c -> { })) {
            f.dev.resume();
            f.settle();
            f.guest.write(200, pattern(512, 1));
            assertThat(f.one().status()).isEqualTo(BlkStatus.OK);
            assertThat(events).isEmpty();
        }
    }

    @Test
    void stoppingTheQueueWhileRequestsAreHeldRetriesThemOnceAndReports() {
        MemDriver mem = new MemDriver(MIB);
        try (BlkFixture f = fixture(mem, WRITE, Errno.ENOSPC, 0, c -> { })) {
            f.guest.write(0, pattern(4096, 4));
            f.guest.kick();
            f.settle();
            assertThat(f.stats().held()).isEqualTo(1);
            int next = f.stop();
            assertThat(next).as("the stop finished").isEqualTo(1);
            assertThat(f.guest.reap()).singleElement().extracting(GuestQueue.Done::status).isEqualTo(BlkStatus.IOERR);
            assertThat(events).extracting(BlockIoError::action).containsExactly(BlockErrorAction.STOP,
                    BlockErrorAction.REPORT);
        }
    }

    @Test
    void multiSegmentDiscardAndWriteZeroesRunEverySegment() {
        MemDriver mem = new MemDriver(MIB);
        mem.disk.fill((byte) 0x5a);
        try (BlkFixture f = new BlkFixture(mem, c -> c.maxDiscardSeg(3).maxWriteZeroesSeg(3), -1)) {
            byte[] cfg = new byte[4];
            f.dev.readConfig(BlkConfigLayout.MAX_DISCARD_SEG, cfg, 4);
            assertThat(cfg[0]).isEqualTo((byte) 3);
            f.guest.segments(BlkRequestType.WRITE_ZEROES, new long[] {0, 8, 0}, new long[] {64, 0, 0},
                    new long[] {128, 16, DiscardWriteZeroesLayout.FLAG_UNMAP});
            assertThat(f.one().status()).isEqualTo(BlkStatus.OK);
            assertThat(mem.ops).containsExactly(
                    new MemDriver.Op(BlockIo.WRITE_ZEROES, 0, 4096, 0, 0, "main"),
                    new MemDriver.Op(BlockIo.WRITE_ZEROES, 128 * 512, 8192, BlockIo.FLAG_MAY_UNMAP, 0, "main"));
            assertThat(disk(mem, 0, 4096)).containsOnly(0);
            assertThat(disk(mem, 4096, 512)).containsOnly(0x5a);
            assertThat(disk(mem, 128 * 512, 8192)).containsOnly(0);
            mem.ops.clear();
            f.guest.segments(BlkRequestType.DISCARD, new long[] {0, 8, 0}, new long[] {8, 8, 0},
                    new long[] {16, 8, 0}, new long[] {24, 8, 0});
            assertThat(f.one().status()).as("more than max_discard_seg: UNSUPP").isEqualTo(BlkStatus.UNSUPP);
            f.guest.segments(BlkRequestType.DISCARD, new long[] {0, 8, 0}, new long[] {4096, 8, 0});
            assertThat(f.one().status()).as("one segment past capacity fails the whole request")
                    .isEqualTo(BlkStatus.IOERR);
            f.guest.segments(BlkRequestType.DISCARD, new long[] {0, 8, 0}, new long[] {8, 8, 2});
            assertThat(f.one().status()).as("unknown flag in a later segment").isEqualTo(BlkStatus.UNSUPP);
            assertThat(mem.ops).as("parse before execute: nothing ran").isEmpty();
            f.guest.segments(BlkRequestType.DISCARD, new long[] {300, 8, 0}, new long[] {400, 8, 0},
                    new long[] {500, 8, 0});
            assertThat(f.one().status()).isEqualTo(BlkStatus.OK);
            assertThat(mem.ops).extracting(MemDriver.Op::offset).containsExactly(300L * 512, 400L * 512, 500L * 512);
        }
    }

    @Test
    void writeZeroesUnmapIsDroppedWhenTheNodeCannotDiscard() {
        MemDriver mem = new MemDriver(MIB, false, false, true, 1);
        try (BlkFixture f = new BlkFixture(mem)) {
            f.guest.writeZeroes(0, 8, DiscardWriteZeroesLayout.FLAG_UNMAP);
            assertThat(f.one().status()).isEqualTo(BlkStatus.OK);
            assertThat(mem.ops).containsExactly(new MemDriver.Op(BlockIo.WRITE_ZEROES, 0, 4096, 0, 0, "main"));
        }
    }

    @Test
    void aFailedSegmentFollowsThePolicyAndResumesWhereItStopped() {
        MemDriver mem = new MemDriver(MIB);
        mem.disk.fill((byte) 0x5a);
        // Write zeroes on [0, 64 KiB) fails once with ENOSPC: the first segment is held.
        try (BlkFixture f = fixture(mem, FaultRule.opBit(BlockIo.WRITE_ZEROES), Errno.ENOSPC, 1, c -> { })) {
            f.guest.segments(BlkRequestType.WRITE_ZEROES, new long[] {0, 8, 0}, new long[] {1000, 8, 0});
            f.guest.kick();
            f.settle();
            assertThat(f.guest.reap()).isEmpty();
            assertThat(f.dev.ioErrorStopped()).isTrue();
            f.dev.resume();
            f.settle();
            assertThat(f.guest.reap()).singleElement().extracting(GuestQueue.Done::status).isEqualTo(BlkStatus.OK);
            assertThat(disk(mem, 0, 4096)).containsOnly(0);
            assertThat(disk(mem, 1000 * 512, 4096)).containsOnly(0);
        }
    }
}
