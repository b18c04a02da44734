package io.vblk.virtio.blk;

import io.vblk.aio.engine.AioMode;
import io.vblk.aio.sys.Errno;
import io.vblk.drivers.BlockDriver;
import io.vblk.drivers.BlockIo;
import io.vblk.drivers.TestImages;
import io.vblk.drivers.fault.FaultDriver;
import io.vblk.drivers.fault.FaultRule;
import io.vblk.drivers.file.FileDriver;
import io.vblk.drivers.nullblk.NullDriver;
import io.vblk.guest.BlkSlot;
import io.vblk.virtio.queue.VirtioFeatures;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The device over the project's real drivers: {@code null} (synchronous and asynchronous
 * completion), {@code fault} around {@code null} for the error mapping, and {@code file} (Linux AIO
 * with O_DIRECT, worker threads with the page cache) for data that must come back.
 */
@Timeout(60)
class RealDriverDeviceTest {
    static final long MIB = 1 << 20;

    @TempDir
    Path dir;

    @ParameterizedTest
    @EnumSource(NullDriver.Completion.class)
    void nullDriverServesEveryRequestType(NullDriver.Completion c) {
        try (BlkFixture f = new BlkFixture(new NullDriver(MIB, c))) {
            List<BlkSlot> posted = List.of(
                    f.guest.read(8, 4096),
                    f.guest.write(16, BlkDeviceTest.pattern(4096, 1)),
                    f.guest.flush(),
                    f.guest.getId(20),
                    f.guest.discard(0, 8, 0),
                    f.guest.writeZeroes(32, 8, DiscardWriteZeroesLayout.FLAG_UNMAP),
                    f.guest.post(BlkRequestType.SECURE_ERASE, 0, 0),
                    f.guest.read(4096, 512), // past capacity
                    f.guest.discard(0, 8, DiscardWriteZeroesLayout.FLAG_UNMAP));
            BlkSlot r = posted.get(0);
            BlkSlot id = posted.get(3);
            List<GuestQueue.Done> done = f.kickAndWait(9);
            assertThat(done).hasSize(9);
            int[] want = {BlkStatus.OK, BlkStatus.OK, BlkStatus.OK, BlkStatus.OK, BlkStatus.OK, BlkStatus.OK,
                          BlkStatus.UNSUPP, BlkStatus.IOERR, BlkStatus.UNSUPP};
            for (GuestQueue.Done d : done) {
                int i = posted.indexOf(d.slot());
                assertThat(d.status()).as("request %d (%s)", i, BlkRequestType.name(d.slot().type())).isEqualTo(want[i]);
            }
            assertThat(GuestQueue.data(r)).as("null reads zeroes").containsOnly(0);
            assertThat(new String(GuestQueue.data(id), 0, 16, java.nio.charset.StandardCharsets.US_ASCII))
                    .isEqualTo("vblk-serial-0001");
            assertThat(f.stats().completed()).isEqualTo(9);
            assertThat(f.stats().inFlight()).isZero();
        }
    }

    @ParameterizedTest
    @EnumSource(NullDriver.Completion.class)
    void nullDriverCompletionsOfOnePassNotifyOnce(NullDriver.Completion c) {
        try (BlkFixture f = new BlkFixture(new NullDriver(MIB, c))) {
            f.guest.takeCalls();
            for (int i = 0; i < 16; i++) {
                f.guest.read(i * 16L, 4096);
            }
            assertThat(f.kickAndWait(16)).hasSize(16).allMatch(d -> d.status() == BlkStatus.OK);
            assertThat(f.guest.takeCalls()).as("16 completions, one eventfd write").isEqualTo(1);
            assertThat(f.dev.notifier(0).writes()).isEqualTo(1);
            assertThat(f.dev.notifier(0).requested()).isEqualTo(16);
        }
    }

    @ParameterizedTest
    @EnumSource(NullDriver.Completion.class)
    void nullDriverEventIdxSuppression(NullDriver.Completion c) {
        try (BlkFixture f = new BlkFixture(new NullDriver(MIB, c))) {
            f.guest.takeCalls();
            f.guest.read(0, 512);
            assertThat(f.kickAndWait(1)).hasSize(1);
            assertThat(f.guest.takeCalls()).isEqualTo(1);
            f.guest.read(0, 512); // used_event still 0: the guest asked for no more
            assertThat(f.kickAndWait(1)).hasSize(1);
            assertThat(f.guest.takeCalls()).isZero();
            assertThat(f.dev.notifier(0).suppressed()).isEqualTo(1);
        }
    }

    @ParameterizedTest
    @EnumSource(NullDriver.Completion.class)
    void nullDriverMergesAdjacentRequests(NullDriver.Completion c) {
        try (BlkFixture f = new BlkFixture(new NullDriver(MIB, c))) {
            for (int i = 7; i >= 0; i--) {
                f.guest.write(i * 8L, new byte[4096]);
            }
            assertThat(f.kickAndWait(8)).hasSize(8).allMatch(d -> d.status() == BlkStatus.OK);
            assertThat(f.stats().merged()).isEqualTo(7);
            assertThat(f.stats().driverSubmits()).isEqualTo(1);
            assertThat(f.stats().writtenBytes()).isEqualTo(8 * 4096);
        }
    }

    @ParameterizedTest
    @EnumSource(NullDriver.Completion.class)
    void nullDriverDrainedSectionHoldsRequestsBack(NullDriver.Completion c) {
        try (BlkFixture f = new BlkFixture(new NullDriver(MIB, c))) {
            f.dev.node().drainedBegin();
            f.settle(); // the queue stops on its thread (here the same one)
            f.guest.read(0, 512);
            f.guest.kick();
            f.settle();
            assertThat(f.stats().passes()).as("no pass inside the section").isEqualTo(1); // the start pass
            assertThat(f.guest.reap()).isEmpty();
            f.dev.node().drainedEnd();
            assertThat(f.waitDone(1)).hasSize(1);
        }
    }

    @Test
    void readOnlyNullDeviceRefusesWrites() {
        try (BlkFixture f = new BlkFixture(new NullDriver(MIB, NullDriver.Completion.SYNC, 32, true))) {
            assertThat(VirtioFeatures.has(f.dev.deviceFeatures(), BlkFeatures.RO)).isTrue();
            f.guest.write(0, new byte[512]);
            f.guest.read(0, 512);
            List<GuestQueue.Done> d = f.kickAndWait(2);
            assertThat(d).extracting(GuestQueue.Done::status).containsExactlyInAnyOrder(BlkStatus.IOERR, BlkStatus.OK);
        }
    }

    @Test
    void stopWaitsForRequestsTheDriverStillHolds() {
        // fault:delay around null keeps the requests in flight on a timer while the queue stops.
        FaultDriver drv = new FaultDriver(new NullDriver(MIB, NullDriver.Completion.ASYNC), List.of(
                new FaultRule(FaultRule.opBit(BlockIo.READ), 0, MIB, 0, 0, 1, 0, FaultRule.Action.DELAY, 0, 0,
                        1_000_000_000L)), 1);
        try (BlkFixture f = new BlkFixture(drv)) {
            for (int i = 0; i < 8; i++) {
                f.guest.read(i * 16L, 512);
            }
            f.guest.kick();
            f.settle();
            assertThat(f.stats().inFlight()).isEqualTo(8);
            int[] next = {-1};
            f.dev.stopQueue(0, n -> next[0] = n);
            f.settle();
            assertThat(next[0]).as("not before the requests in flight complete").isEqualTo(-1);
            assertThat(f.waitDone(8)).hasSize(8).allMatch(d -> d.status() == BlkStatus.OK);
            f.settle();
            assertThat(next[0]).isEqualTo(8);
            assertThat(f.dev.queueStarted(0)).isFalse();
        }
    }

    @Test
    void faultDriverErrorsMapToStatusBytes() {
        BlockDriver inner = new NullDriver(MIB, NullDriver.Completion.SYNC);
        FaultDriver drv = new FaultDriver(inner, List.of(
                FaultRule.error(FaultRule.opBit(BlockIo.READ), 0, 4096, Errno.EIO),
                FaultRule.error(FaultRule.opBit(BlockIo.WRITE), 4096, 8192, Errno.ENOSPC),
                FaultRule.error(FaultRule.opBit(BlockIo.DISCARD), 0, MIB, Errno.EOPNOTSUPP),
                new FaultRule(FaultRule.opBit(BlockIo.READ), 65536, 69632, 0, 0, 1, 0, FaultRule.Action.SHORT, 0, 512,
                        0)), 1);
        try (BlkFixture f = new BlkFixture(drv, c -> c.werror(ErrorPolicy.REPORT), -1)) {
            f.guest.read(0, 512);
            assertThat(f.kickAndWait(1).get(0).status()).isEqualTo(BlkStatus.IOERR);
            f.guest.write(8, new byte[512]);
            assertThat(f.kickAndWait(1).get(0).status()).isEqualTo(BlkStatus.IOERR);
            f.guest.discard(0, 8, 0);
            assertThat(f.kickAndWait(1).get(0).status()).isEqualTo(BlkStatus.UNSUPP);
            f.guest.read(128, 4096);
            assertThat(f.kickAndWait(1).get(0).status()).as("short read").isEqualTo(BlkStatus.IOERR);
            f.guest.read(16, 4096);
            assertThat(f.kickAndWait(1).get(0).status()).isEqualTo(BlkStatus.OK);
            assertThat(f.stats().ioErrors()).isEqualTo(3);
            assertThat(f.stats().unsupported()).isEqualTo(1);
        }
    }

    enum FileMode { NATIVE_DIRECT, THREADS_WRITEBACK }

    @ParameterizedTest
    @EnumSource(FileMode.class)
    void fileDriverDataRoundTrip(FileMode mode) {
        String img = TestImages.create(dir, "disk-" + mode + ".img", 4 * MIB);
        FileDriver drv = mode == FileMode.NATIVE_DIRECT
                ? FileDriver.open(img, AioMode.NATIVE, FileDriver.Cache.NONE, false)
                : FileDriver.open(img, AioMode.THREADS, FileDriver.Cache.WRITEBACK, false);
        long seed = Long.getLong("vblk.seed", System.nanoTime());
        System.out.println("fileDriverDataRoundTrip(" + mode + "): seed " + seed);
        SplittableRandom rnd = new SplittableRandom(seed);
        try (BlkFixture f = new BlkFixture(drv)) {
            byte[][] chunks = new byte[16][];
            long[] sectors = new long[16];
            for (int i = 0; i < 16; i++) {
                chunks[i] = new byte[(1 + rnd.nextInt(8)) * 512];
                rnd.nextBytes(chunks[i]);
                sectors[i] = i * 64L + rnd.nextInt(0, 8); // 512-aligned, mostly not 4K-aligned
                f.guest.write(sectors[i], chunks[i]);
            }
            assertThat(f.kickAndWait(16)).hasSize(16).allMatch(d -> d.status() == BlkStatus.OK);
            f.guest.flush();
            assertThat(f.kickAndWait(1).get(0).status()).isEqualTo(BlkStatus.OK);
            f.guest.recycle();
            List<BlkSlot> reads = new java.util.ArrayList<>();
            for (int i = 0; i < 16; i++) {
                reads.add(f.guest.read(sectors[i], chunks[i].length));
            }
            List<GuestQueue.Done> r = f.kickAndWait(16);
            assertThat(r).hasSize(16).allMatch(d -> d.status() == BlkStatus.OK);
            for (GuestQueue.Done d : r) {
                int i = reads.indexOf(d.slot());
                assertThat(Arrays.equals(GuestQueue.data(d.slot()), chunks[i])).as("chunk %d", i).isTrue();
            }
            f.guest.writeZeroes(0, 8, 0);
            f.guest.discard(64, 8, 0);
            assertThat(f.kickAndWait(2)).allMatch(d -> d.status() == BlkStatus.OK);
        }
    }
}
