package io.vblk.virtio.blk;

import io.vblk.aio.sys.Errno;
import io.vblk.drivers.BlockIo;
import io.vblk.guest.BlkSlot;
import io.vblk.virtio.queue.VirtioFeatures;
import io.vblk.virtio.queue.AvailRingLayout;
import io.vblk.virtio.queue.DescriptorLayout;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static io.vblk.virtio.queue.VirtioFeatures.bit;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * Every virtio-blk request type and error path (virtio 1.2 section 5.2.6), step by step on one loop,
 * over a RAM driver that completes inside submit; {@link BlkDeviceAsyncTest} runs them all again
 * with completions that come later, out of order.
 */
@Timeout(20)
class BlkDeviceTest {
    static final long MIB = 1 << 20;

    /** When the RAM driver of these tests completes a request (tests that need HOLD set it themselves). */
    MemDriver.Mode completion() {
        return MemDriver.Mode.SYNC;
    }

    MemDriver mem(long length) {
        return mem(length, false, true, true);
    }

    MemDriver mem(long length, boolean readOnly, boolean discard, boolean writeZeroes) {
        MemDriver d = new MemDriver(length, readOnly, discard, writeZeroes, 1);
        d.mode = completion();
        return d;
    }

    /**
     * What a stopped queue reports after {@code chains} chains of {@code descs} descriptors were
     * taken and completed: the split ring's avail index (the packed variant overrides it).
     */
    int resumePoint(int chains, int descs) {
        return chains;
    }

    static byte[] pattern(int len, int seed) {
        byte[] b = new byte[len];
        for (int i = 0; i < len; i++) {
            b[i] = (byte) (i * 31 + seed * 7 + (i >> 9));
        }
        return b;
    }

    @Test
    void writeThenReadReturnsTheData() {
        try (BlkFixture f = new BlkFixture(mem(MIB))) {
            byte[] data = pattern(8192, 1);
            f.guest.write(8, data);
            GuestQueue.Done w = f.one();
            assertThat(w.status()).isEqualTo(BlkStatus.OK);
            assertThat(w.len()).as("used len of a write: the status byte").isEqualTo(1);
            BlkSlot r = f.guest.read(8, 8192);
            GuestQueue.Done rd = f.one();
            assertThat(rd.status()).isEqualTo(BlkStatus.OK);
            assertThat(rd.len()).as("2.7.8.2: data + status written").isEqualTo(8193);
            assertThat(GuestQueue.data(r)).isEqualTo(data);
            assertThat(f.stats().reads()).isEqualTo(1);
            assertThat(f.stats().writes()).isEqualTo(1);
            assertThat(f.stats().readBytes()).isEqualTo(8192);
            assertThat(f.stats().writtenBytes()).isEqualTo(8192);
            assertThat(f.stats().inFlight()).isZero();
        }
    }

    @Test
    void indirectChainsWork() {
        try (BlkFixture f = new BlkFixture(mem(MIB))) {
            f.guest.setIndirect(true);
            byte[] data = pattern(4096, 2);
            f.guest.write(0, data);
            assertThat(f.one().status()).isEqualTo(BlkStatus.OK);
            BlkSlot r = f.guest.read(0, 4096);
            assertThat(f.one().status()).isEqualTo(BlkStatus.OK);
            assertThat(GuestQueue.data(r)).isEqualTo(data);
        }
    }

    @Test
    void headerDataAndStatusMayShareDescriptors() {
        try (BlkFixture f = new BlkFixture(mem(MIB))) {
            ((MemDriver) f.driver).disk.asSlice(4096, 1024).fill((byte) 0x42);
            // One readable descriptor (header), one writable holding data and status together.
            BlkSlot r = f.guest.beginFramed(BlkRequestType.IN, 0, 8L);
            f.guest.addBuffer(r.hdrGpa(), 16, false);
            f.guest.addBuffer(r.dataGpa(), 1025, true);
            f.guest.commitFramed(r, r.dataGpa() + 1024, 1024);
            GuestQueue.Done d = f.one();
            assertThat(d.status()).isEqualTo(BlkStatus.OK);
            assertThat(d.len()).isEqualTo(1025);
            byte[] got = GuestQueue.data(r);
            byte[] want = new byte[1024];
            Arrays.fill(want, (byte) 0x42);
            assertThat(got).isEqualTo(want);
        }
    }

    @Test
    void flushReachesTheDriver() {
        MemDriver drv = mem(MIB);
        try (BlkFixture f = new BlkFixture(drv)) {
            f.guest.flush();
            assertThat(f.one().status()).isEqualTo(BlkStatus.OK);
            assertThat(drv.ops).extracting(MemDriver.Op::op).containsExactly(BlockIo.FLUSH);
            assertThat(f.stats().flushes()).isEqualTo(1);
        }
    }

    @Test
    void getIdReturnsTheSerialNulPadded() {
        try (BlkFixture f = new BlkFixture(mem(MIB))) {
            BlkSlot r = f.guest.getId(20);
            GuestQueue.Done d = f.one();
            assertThat(d.status()).isEqualTo(BlkStatus.OK);
            assertThat(d.len()).isEqualTo(21);
            byte[] want = new byte[20];
            byte[] s = "vblk-serial-0001".getBytes(StandardCharsets.US_ASCII);
            System.arraycopy(s, 0, want, 0, s.length);
            assertThat(GuestQueue.data(r)).isEqualTo(want);
            // A guest giving less room than 20 bytes gets what fits.
            BlkSlot small = f.guest.getId(4);
            GuestQueue.Done d2 = f.one();
            assertThat(d2.status()).isEqualTo(BlkStatus.OK);
            assertThat(d2.len()).isEqualTo(5);
            assertThat(GuestQueue.data(small)).isEqualTo("vblk".getBytes(StandardCharsets.US_ASCII));
            assertThat(f.stats().getIds()).isEqualTo(2);
        }
    }

    @Test
    void unknownAndUnofferedTypesAreUnsupported() {
        try (BlkFixture f = new BlkFixture(mem(MIB))) {
            // GET_LIFETIME is offered now (LifetimeTest); SECURE_ERASE is not offered for a driver that
            // cannot erase (SecureEraseTest): UNSUPP, counted as a secure erase, not an unknown type.
            for (int type : new int[] {2, 3, BlkRequestType.SECURE_ERASE, 0x7fff_ffff}) {
                f.guest.post(type, 0, 0);
                GuestQueue.Done d = f.one();
                assertThat(d.status()).as("type %d", type).isEqualTo(BlkStatus.UNSUPP);
                assertThat(d.len()).isEqualTo(1);
            }
            assertThat(f.stats().unsupported()).isEqualTo(4);
            assertThat(f.stats().unsupportedTypes()).isEqualTo(3);
            assertThat(f.stats().secureErases()).isEqualTo(1);
        }
    }

    @Test
    void readsAndWritesOutsideCapacityOrMisalignedGetIoerr() {
        MemDriver drv = mem(MIB); // 2048 sectors
        try (BlkFixture f = new BlkFixture(drv)) {
            f.guest.read(2048, 512);
            assertThat(f.one().status()).as("starts at capacity").isEqualTo(BlkStatus.IOERR);
            f.guest.read(2047, 1024);
            assertThat(f.one().status()).as("runs past capacity").isEqualTo(BlkStatus.IOERR);
            f.guest.write(-1L, new byte[512]);
            assertThat(f.one().status()).as("sector 2^64-1").isEqualTo(BlkStatus.IOERR);
            f.guest.write(0, new byte[100]);
            assertThat(f.one().status()).as("5.2.6.1: multiple of 512").isEqualTo(BlkStatus.IOERR);
            f.guest.read(2047, 512);
            assertThat(f.one().status()).as("last sector is fine").isEqualTo(BlkStatus.OK);
            assertThat(drv.ops).hasSize(1);
            assertThat(f.stats().ioErrors()).isEqualTo(4);
        }
    }

    @Test
    void largerLogicalBlockSizeRequiresAlignment() {
        try (BlkFixture f = new BlkFixture(mem(MIB), c -> c.logicalBlockSize(4096), -1)) {
            assertThat(f.dev.blockSize()).isEqualTo(4096);
            f.guest.read(1, 4096);
            assertThat(f.one().status()).isEqualTo(BlkStatus.IOERR);
            f.guest.read(8, 512);
            assertThat(f.one().status()).isEqualTo(BlkStatus.IOERR);
            f.guest.read(8, 4096);
            assertThat(f.one().status()).isEqualTo(BlkStatus.OK);
        }
    }

    @Test
    void readOnlyDeviceRefusesWritesWithIoerrAndWritesNothing() {
        MemDriver drv = mem(MIB);
        drv.disk.fill((byte) 0x11);
        try (BlkFixture f = new BlkFixture(drv, c -> c.readOnly(true), -1)) {
            assertThat(VirtioFeatures.has(f.dev.deviceFeatures(), BlkFeatures.RO)).isTrue();
            assertThat(VirtioFeatures.has(f.dev.deviceFeatures(), BlkFeatures.DISCARD)).isFalse();
            assertThat(VirtioFeatures.has(f.dev.deviceFeatures(), BlkFeatures.WRITE_ZEROES)).isFalse();
            f.guest.write(0, pattern(512, 3));
            assertThat(f.one().status()).isEqualTo(BlkStatus.IOERR);
            assertThat(drv.ops).as("5.2.6.2: MUST NOT write any data").isEmpty();
            assertThat(drv.disk.get(java.lang.foreign.ValueLayout.JAVA_BYTE, 0)).isEqualTo((byte) 0x11);
            f.guest.read(0, 512);
            assertThat(f.one().status()).isEqualTo(BlkStatus.OK);
            f.guest.flush();
            assertThat(f.one().status()).isEqualTo(BlkStatus.OK);
        }
    }

    @Test
    void readOnlyDriverMakesAReadOnlyDevice() {
        try (BlkFixture f = new BlkFixture(mem(MIB, true, true, true))) {
            assertThat(f.dev.readOnly()).isTrue();
            f.guest.write(0, new byte[512]);
            assertThat(f.one().status()).isEqualTo(BlkStatus.IOERR);
        }
    }

    @Test
    void discardChecksFlagsRangeAndSegments() {
        MemDriver drv = mem(MIB);
        try (BlkFixture f = new BlkFixture(drv, c -> c.maxDiscardSectors(64).maxDiscardSeg(1), -1)) {
            f.guest.discard(8, 8, 0);
            assertThat(f.one().status()).isEqualTo(BlkStatus.OK);
            assertThat(drv.ops).containsExactly(new MemDriver.Op(BlockIo.DISCARD, 4096, 4096, 0, 0, "main"));
            f.guest.discard(8, 8, DiscardWriteZeroesLayout.FLAG_UNMAP);
            assertThat(f.one().status()).as("5.2.6.2: unmap on discard").isEqualTo(BlkStatus.UNSUPP);
            f.guest.discard(8, 8, 2);
            assertThat(f.one().status()).as("5.2.6.2: unknown flag").isEqualTo(BlkStatus.UNSUPP);
            f.guest.discard(2047, 2, 0);
            assertThat(f.one().status()).as("past capacity").isEqualTo(BlkStatus.IOERR);
            f.guest.discard(0, 65, 0);
            assertThat(f.one().status()).as("over max_discard_sectors").isEqualTo(BlkStatus.IOERR);
            f.guest.segments(BlkRequestType.DISCARD, new long[] {0, 8, 0}, new long[] {16, 8, 0});
            assertThat(f.one().status()).as("more than max_discard_seg=1: UNSUPP, as QEMU").isEqualTo(BlkStatus.UNSUPP);
            f.guest.post(BlkRequestType.DISCARD, 0, 8);
            assertThat(f.one().status()).as("data not a whole segment").isEqualTo(BlkStatus.IOERR);
            assertThat(drv.ops).hasSize(1);
            assertThat(f.stats().discards()).isEqualTo(7);
        }
    }

    @Test
    void unknownFlagWinsOverRangeErrors() {
        try (BlkFixture f = new BlkFixture(mem(MIB))) {
            // 5.2.6.2 makes UNSUPP a MUST for unknown flags, whatever else is wrong.
            f.guest.writeZeroes(1L << 40, 8, 4);
            assertThat(f.one().status()).isEqualTo(BlkStatus.UNSUPP);
        }
    }

    @Test
    void writeZeroesZeroesAndPassesUnmap() {
        MemDriver drv = mem(MIB);
        drv.disk.fill((byte) 0x55);
        try (BlkFixture f = new BlkFixture(drv, c -> c.writeCache(true), -1)) {
            f.guest.writeZeroes(2, 2, 0);
            assertThat(f.one().status()).isEqualTo(BlkStatus.OK);
            f.guest.writeZeroes(8, 1, DiscardWriteZeroesLayout.FLAG_UNMAP);
            assertThat(f.one().status()).isEqualTo(BlkStatus.OK);
            assertThat(drv.ops.get(0).flags() & BlockIo.FLAG_MAY_UNMAP).isZero();
            assertThat(drv.ops.get(1).flags() & BlockIo.FLAG_MAY_UNMAP).isEqualTo(BlockIo.FLAG_MAY_UNMAP);
            BlkSlot r = f.guest.read(0, 4608);
            assertThat(f.one().status()).isEqualTo(BlkStatus.OK);
            byte[] got = GuestQueue.data(r);
            for (int i = 0; i < got.length; i++) {
                boolean zero = (i >= 1024 && i < 2048) || (i >= 4096 && i < 4608);
                assertThat(got[i]).as("byte %d", i).isEqualTo(zero ? (byte) 0 : (byte) 0x55);
            }
            f.guest.writeZeroes(0, 1, 0x80);
            assertThat(f.one().status()).isEqualTo(BlkStatus.UNSUPP);
        }
    }

    @Test
    void discardAndWriteZeroesWithoutTheFeatureAreUnsupported() {
        long features = new BlkDeviceConfigProbe().features(mem(MIB))
                & ~bit(BlkFeatures.DISCARD) & ~bit(BlkFeatures.WRITE_ZEROES);
        try (BlkFixture f = new BlkFixture(mem(MIB), c -> { }, features)) {
            f.guest.discard(0, 8, 0);
            assertThat(f.one().status()).isEqualTo(BlkStatus.UNSUPP);
            f.guest.writeZeroes(0, 8, 0);
            assertThat(f.one().status()).isEqualTo(BlkStatus.UNSUPP);
        }
        // A driver that cannot discard: the feature is not offered at all.
        try (BlkFixture f = new BlkFixture(mem(MIB, false, false, false))) {
            assertThat(VirtioFeatures.has(f.dev.deviceFeatures(), BlkFeatures.DISCARD)).isFalse();
            assertThat(VirtioFeatures.has(f.dev.deviceFeatures(), BlkFeatures.WRITE_ZEROES)).isFalse();
        }
    }

    @Test
    void driverErrorsMapToStatusBytes() {
        MemDriver drv = mem(MIB);
        // werror=report: ENOSPC too is answered (the default, enospc, would stop: ErrorPolicyTest).
        try (BlkFixture f = new BlkFixture(drv, c -> c.werror(ErrorPolicy.REPORT), -1)) {
            drv.failWith = -Errno.EIO;
            f.guest.read(0, 512);
            GuestQueue.Done d = f.one();
            assertThat(d.status()).isEqualTo(BlkStatus.IOERR);
            assertThat(d.len()).as("a failed read wrote only the status").isEqualTo(1);
            drv.failWith = -Errno.ENOSPC;
            f.guest.write(0, new byte[512]);
            assertThat(f.one().status()).isEqualTo(BlkStatus.IOERR);
            drv.failWith = -Errno.EOPNOTSUPP;
            f.guest.discard(0, 8, 0);
            assertThat(f.one().status()).isEqualTo(BlkStatus.UNSUPP);
            drv.failWith = 0;
            drv.shortBy = 512;
            f.guest.read(0, 1024);
            assertThat(f.one().status()).as("short read").isEqualTo(BlkStatus.IOERR);
            drv.shortBy = 0;
            assertThat(f.stats().ioErrors()).isEqualTo(3);
            assertThat(f.stats().unsupported()).isEqualTo(1);
        }
    }

    @Test
    void statusMappingIsOnePlace() {
        assertThat(BlkStatus.fromResult(4096, 4096)).isEqualTo(BlkStatus.OK);
        assertThat(BlkStatus.fromResult(0, -1)).isEqualTo(BlkStatus.OK);
        assertThat(BlkStatus.fromResult(512, 4096)).isEqualTo(BlkStatus.IOERR);
        assertThat(BlkStatus.fromResult(-Errno.EIO, 4096)).isEqualTo(BlkStatus.IOERR);
        assertThat(BlkStatus.fromResult(-Errno.EOPNOTSUPP, -1)).isEqualTo(BlkStatus.UNSUPP);
    }

    @Test
    void asyncCompletionsInOneSectionNotifyOnce() {
        MemDriver drv = mem(MIB);
        drv.mode = MemDriver.Mode.ASYNC;
        try (BlkFixture f = new BlkFixture(drv)) {
            f.guest.takeCalls();
            for (int i = 0; i < 16; i++) {
                f.guest.read(i * 16, 4096); // not adjacent: 16 driver requests
            }
            List<GuestQueue.Done> done = f.kickAndReap();
            assertThat(done).hasSize(16).allMatch(d -> d.status() == BlkStatus.OK);
            assertThat(f.guest.takeCalls()).as("16 completions in one pass: one eventfd write").isEqualTo(1);
            assertThat(f.dev.notifier(0).writes()).isEqualTo(1);
            assertThat(f.dev.notifier(0).requested()).isEqualTo(16);
            assertThat(f.dev.notifier(0).coalesced()).isEqualTo(15);
        }
    }

    @Test
    void syncCompletionsInsideTheKickPassNotifyOnce() {
        try (BlkFixture f = new BlkFixture(mem(MIB), c -> c.merge(false), -1)) {
            f.guest.takeCalls();
            for (int i = 0; i < 10; i++) {
                f.guest.write(i * 16, pattern(512, i));
            }
            f.guest.getId(20);
            f.guest.post(99, 0, 0);
            List<GuestQueue.Done> done = f.kickAndReap();
            assertThat(done).hasSize(12);
            assertThat(f.guest.takeCalls()).isEqualTo(1);
            assertThat(f.dev.notifier(0).writes()).isEqualTo(1);
        }
    }

    @Test
    void eventIdxSuppressesTheNotificationTheGuestDidNotAskFor() {
        MemDriver drv = mem(MIB);
        try (BlkFixture f = new BlkFixture(drv)) {
            f.guest.takeCalls();
            // First request: the driver asks to hear about used idx 0 passing (used_event 0).
            f.guest.setUsedEvent(0);
            f.guest.read(0, 512);
            assertThat(f.one().status()).isEqualTo(BlkStatus.OK);
            assertThat(f.guest.takeCalls()).isEqualTo(1);
            // Second: used_event stays 0, the used idx moves 1 -> 2: no notification wanted.
            f.guest.read(0, 512);
            assertThat(f.one().status()).isEqualTo(BlkStatus.OK);
            assertThat(f.guest.takeCalls()).as("EVENT_IDX: second completion silent").isZero();
            assertThat(f.dev.notifier(0).suppressed()).isEqualTo(1);
            // The driver re-arms for idx 2: the third completion notifies.
            f.guest.setUsedEvent(2);
            f.guest.read(0, 512);
            assertThat(f.one().status()).isEqualTo(BlkStatus.OK);
            assertThat(f.guest.takeCalls()).isEqualTo(1);
        }
    }

    @Test
    void noInterruptFlagSuppressesWithoutEventIdx() {
        long features = new BlkDeviceConfigProbe().features(mem(MIB)) & ~bit(VirtioFeatures.RING_EVENT_IDX);
        try (BlkFixture f = new BlkFixture(mem(MIB), c -> { }, features)) {
            f.guest.takeCalls();
            f.guest.setAvailFlags(AvailRingLayout.F_NO_INTERRUPT);
            f.guest.read(0, 512);
            assertThat(f.one().status()).isEqualTo(BlkStatus.OK);
            assertThat(f.guest.takeCalls()).isZero();
            f.guest.setAvailFlags(0);
            f.guest.read(0, 512);
            assertThat(f.one().status()).isEqualTo(BlkStatus.OK);
            assertThat(f.guest.takeCalls()).isEqualTo(1);
        }
    }

    @Test
    void kicksAreSuppressedWhileProcessingAndReenabledAfter() {
        try (BlkFixture f = new BlkFixture(mem(MIB))) {
            f.guest.read(0, 512);
            f.guest.read(8, 512);
            f.guest.read(16, 512);
            assertThat(f.kickAndReap()).hasSize(3);
            // 2.7.10 with EVENT_IDX: the device asks for a kick when avail idx passes 3.
            assertThat(f.guest.availEvent()).isEqualTo(3);
        }
    }

    @Test
    void submitBatchSubmitsAndNotifiesWhileThePassGoesOn() {
        MemDriver drv = mem(MIB);
        List<Long> writesSeen = new ArrayList<>();
        drv.mode = MemDriver.Mode.SYNC; // completes inside submit, so the batch's section end notifies
        try (BlkFixture f = new BlkFixture(drv, c -> c.submitBatch(4), -1)) {
            drv.onSubmit = io -> writesSeen.add(f.dev.notifier(0).writes());
            f.guest.takeCalls();
            for (int i = 0; i < 10; i++) {
                f.guest.read(i * 16, 4096); // not adjacent: 10 driver requests
            }
            assertThat(f.kickAndReap()).hasSize(10).allMatch(d -> d.status() == BlkStatus.OK);
            // The first four completed and the guest was told before the fifth was even submitted;
            // at most one eventfd write per batch of four (fewer where EVENT_IDX says none is wanted).
            assertThat(writesSeen).hasSize(10).startsWith(0L, 0L, 0L, 0L, 1L);
            assertThat(f.guest.takeCalls()).isBetween(1L, 3L);
        }
    }

    @Test
    void submitBatchZeroKeepsTheWholePassInOneSection() {
        MemDriver drv = mem(MIB);
        List<Long> writesSeen = new ArrayList<>();
        try (BlkFixture f = new BlkFixture(drv, c -> c.submitBatch(0), -1)) {
            drv.onSubmit = io -> writesSeen.add(f.dev.notifier(0).writes());
            for (int i = 0; i < 10; i++) {
                f.guest.read(i * 16, 4096);
            }
            assertThat(f.kickAndReap()).hasSize(10);
            assertThat(writesSeen).hasSize(10).containsOnly(0L);
        }
    }

    @Test
    void adjacentRequestsMergeWithinASubmitBatch() {
        MemDriver drv = mem(MIB);
        try (BlkFixture f = new BlkFixture(drv, c -> c.submitBatch(2), -1)) {
            for (int i = 0; i < 4; i++) {
                f.guest.write(i * 8L, pattern(4096, i));
            }
            assertThat(f.kickAndReap()).hasSize(4).allMatch(d -> d.status() == BlkStatus.OK);
            assertThat(drv.ops).extracting(MemDriver.Op::length).containsExactly(8192L, 8192L);
        }
    }

    @Test
    void adjacentRequestsOfOnePassMergeIntoOneDriverRequest() {
        MemDriver drv = mem(MIB);
        try (BlkFixture f = new BlkFixture(drv)) {
            byte[][] parts = new byte[4][];
            // Posted out of order: 16, 0, 24, 8 (sectors); contiguous once sorted.
            int[] order = {2, 0, 3, 1};
            for (int i : order) {
                parts[i] = pattern(4096, 10 + i);
                f.guest.write(i * 8L, parts[i]);
            }
            f.guest.write(100, pattern(4096, 99)); // not adjacent
            List<GuestQueue.Done> done = f.kickAndReap();
            assertThat(done).hasSize(5).allMatch(d -> d.status() == BlkStatus.OK);
            assertThat(drv.ops).hasSize(2);
            assertThat(drv.ops.get(0)).isEqualTo(new MemDriver.Op(BlockIo.WRITE, 0, 16384, 0, 4, "main"));
            assertThat(f.stats().merged()).isEqualTo(3);
            assertThat(f.stats().driverSubmits()).isEqualTo(2);
            assertThat(f.stats().writes()).isEqualTo(5);
            BlkSlot r = f.guest.read(0, 16384);
            assertThat(f.one().status()).isEqualTo(BlkStatus.OK);
            byte[] got = GuestQueue.data(r);
            for (int i = 0; i < 4; i++) {
                assertThat(Arrays.copyOfRange(got, i * 4096, (i + 1) * 4096)).isEqualTo(parts[i]);
            }
        }
    }

    @Test
    void mergedReadsFailTogetherAndReadsDoNotMergeWithWrites() {
        MemDriver drv = mem(MIB);
        try (BlkFixture f = new BlkFixture(drv)) {
            f.guest.read(0, 512);
            f.guest.read(1, 512);
            f.guest.write(2, new byte[512]);
            drv.failWith = -Errno.EIO;
            List<GuestQueue.Done> done = f.kickAndReap();
            assertThat(done).hasSize(3).allMatch(d -> d.status() == BlkStatus.IOERR);
            assertThat(drv.ops).hasSize(2);
            assertThat(f.stats().merged()).isEqualTo(1);
        }
    }

    @Test
    void mergingCanBeTurnedOff() {
        MemDriver drv = mem(MIB);
        try (BlkFixture f = new BlkFixture(drv, c -> c.merge(false), -1)) {
            for (int i = 0; i < 4; i++) {
                f.guest.write(i, new byte[512]);
            }
            assertThat(f.kickAndReap()).hasSize(4);
            assertThat(drv.ops).hasSize(4);
            assertThat(f.stats().merged()).isZero();
        }
    }

    @Test
    void mergeRespectsTheSizeLimit() {
        MemDriver drv = mem(MIB);
        try (BlkFixture f = new BlkFixture(drv, c -> c.maxMergeBytes(8192), -1)) {
            for (int i = 0; i < 4; i++) {
                f.guest.write(i * 8L, new byte[4096]);
            }
            assertThat(f.kickAndReap()).hasSize(4);
            assertThat(drv.ops).extracting(MemDriver.Op::length).containsExactly(8192L, 8192L);
        }
    }

    @Test
    void writebackToggleDecidesForcedUnitAccess() {
        MemDriver drv = mem(MIB);
        try (BlkFixture f = new BlkFixture(drv)) {
            byte[] cfg = new byte[1];
            f.dev.readConfig(BlkConfigLayout.WRITEBACK, cfg, 1);
            assertThat(cfg[0]).isEqualTo((byte) 1);
            f.guest.write(0, new byte[512]);
            f.one();
            assertThat(drv.ops.get(0).flags() & BlockIo.FLAG_FUA).as("writeback: volatile write").isZero();
            assertThat(f.dev.writeConfig(BlkConfigLayout.WRITEBACK, new byte[] {0}, 1)).isTrue();
            f.dev.readConfig(BlkConfigLayout.WRITEBACK, cfg, 1);
            assertThat(cfg[0]).isZero();
            f.guest.write(0, new byte[512]);
            f.one();
            assertThat(drv.ops.get(1).flags() & BlockIo.FLAG_FUA).as("writethrough: stable write").isNotZero();
            assertThat(f.dev.writeConfig(BlkConfigLayout.WRITEBACK, new byte[] {2}, 1)).isFalse();
            assertThat(f.dev.writeConfig(BlkConfigLayout.NUM_QUEUES, new byte[] {9}, 1)).isFalse();
            assertThat(f.dev.writeConfig(BlkConfigLayout.WRITEBACK, new byte[] {1, 0}, 2)).isFalse();
        }
    }

    @Test
    void withoutConfigWceOrFlushWritesAreStableAndTheCacheCannotBeToggled() {
        long all = new BlkDeviceConfigProbe().features(mem(MIB));
        MemDriver drv = mem(MIB);
        try (BlkFixture f = new BlkFixture(drv, c -> { }, all & ~bit(BlkFeatures.CONFIG_WCE) & ~bit(BlkFeatures.FLUSH))) {
            f.guest.write(0, new byte[512]);
            f.one();
            // 5.2.6.2 case 1: FLUSH offered but neither negotiated: every write is stable.
            assertThat(drv.ops.get(0).flags() & BlockIo.FLAG_FUA).isNotZero();
            assertThat(f.dev.writeConfig(BlkConfigLayout.WRITEBACK, new byte[] {0}, 1)).isFalse();
        }
        drv = mem(MIB);
        try (BlkFixture f = new BlkFixture(drv, c -> { }, all & ~bit(BlkFeatures.FLUSH))) {
            // 5.2.5.2: CONFIG_WCE without FLUSH: writeback starts at 0.
            byte[] cfg = new byte[1];
            f.dev.readConfig(BlkConfigLayout.WRITEBACK, cfg, 1);
            assertThat(cfg[0]).isZero();
        }
    }

    @Test
    void configSpaceShowsTheDevice() {
        try (BlkFixture f = new BlkFixture(mem(8 * MIB + 100), c -> c.physicalBlockSize(4096)
                .maxDiscardSectors(1024), -1)) {
            byte[] b = new byte[64];
            f.dev.readConfig(0, b, 64);
            MemorySegment s = MemorySegment.ofArray(b);
            var u32 = io.vblk.virtio.queue.LittleEndian.U32;
            assertThat(s.get(io.vblk.virtio.queue.LittleEndian.U64, BlkConfigLayout.CAPACITY)).isEqualTo(16384L);
            assertThat(s.get(u32, BlkConfigLayout.SEG_MAX)).isEqualTo(62);
            assertThat(s.get(u32, BlkConfigLayout.BLK_SIZE)).isEqualTo(512);
            assertThat(b[BlkConfigLayout.PHYSICAL_BLOCK_EXP]).isEqualTo((byte) 3);
            assertThat(b[BlkConfigLayout.WRITEBACK]).isEqualTo((byte) 1);
            assertThat(s.get(io.vblk.virtio.queue.LittleEndian.U16, BlkConfigLayout.NUM_QUEUES)).isEqualTo((short) 1);
            assertThat(s.get(u32, BlkConfigLayout.MAX_DISCARD_SECTORS)).isEqualTo(1024);
            assertThat(s.get(u32, BlkConfigLayout.MAX_DISCARD_SEG)).isEqualTo(BlkDeviceConfig.DEFAULT_MAX_SEG);
            assertThat(s.get(u32, BlkConfigLayout.DISCARD_SECTOR_ALIGNMENT)).isEqualTo(1);
            assertThat(s.get(u32, BlkConfigLayout.MAX_WRITE_ZEROES_SEG)).isEqualTo(BlkDeviceConfig.DEFAULT_MAX_SEG);
            assertThat(b[BlkConfigLayout.WRITE_ZEROES_MAY_UNMAP]).isEqualTo((byte) 1);
            assertThat(b[BlkConfigLayout.UNUSED0]).isZero();
            assertThat(Arrays.copyOfRange(b, 57, 64)).as("unused1 and bytes past the struct").containsOnly(0);
            assertThat(f.dev.configSize()).as("through the secure-erase fields").isEqualTo(72);
            assertThat(f.dev.deviceId()).isEqualTo(2);
        }
    }

    @Test
    void offeredFeaturesFollowTheSpecNumbers() {
        try (BlkFixture f = new BlkFixture(mem(MIB))) {
            long feat = f.dev.deviceFeatures();
            // 34: VIRTIO_F_RING_PACKED (virtio 1.2 chapter 6); the driver decides which ring it uses.
            // 15: VIRTIO_BLK_F_LIFETIME (5.2.3).
            // 35: VIRTIO_F_IN_ORDER (InOrderTest).
            assertThat(feat).isEqualTo(bit(32) | bit(28) | bit(29) | bit(34) | bit(35) | bit(2) | bit(6) | bit(10) | bit(9)
                    | bit(11) | bit(12) | bit(13) | bit(14) | bit(15));
        }
    }

    @Test
    void acceptingAnUnofferedFeatureIsRefused() {
        try (BlkFixture f = new BlkFixture(mem(MIB))) {
            f.stop();
            assertThatThrownBy(() -> f.dev.setDriverFeatures(f.dev.deviceFeatures() | bit(BlkFeatures.GEOMETRY)))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("4");
        }
    }

    @Test
    void badOptionsNameTheOption() {
        MemDriver drv = mem(MIB);
        try (var ctx = io.vblk.aio.AioContext.forCurrentThread("opts")) {
            var map = io.vblk.virtio.device.IoThreadMapping.single(ctx);
            assertThatThrownBy(() -> new BlkDevice("x", drv, new BlkDeviceConfig().queueSize(100).ioThreads(map), ctx))
                    .hasMessageContaining("queue-size").hasMessageContaining("power of two");
            assertThatThrownBy(() -> new BlkDevice("x", drv, new BlkDeviceConfig().serial("x".repeat(21)).ioThreads(map),
                    ctx)).hasMessageContaining("serial");
            assertThatThrownBy(() -> new BlkDevice("x", drv, new BlkDeviceConfig(), ctx))
                    .hasMessageContaining("iothread-vq-mapping");
            assertThatThrownBy(() -> new BlkDevice("x", drv, new BlkDeviceConfig().numQueues(3)
                    .ioThreads(io.vblk.virtio.device.IoThreadMapping.explicit(List.of(ctx, ctx))), ctx))
                    .hasMessageContaining("num-queues=3");
            assertThatThrownBy(() -> new BlkDevice("x", drv, new BlkDeviceConfig().submitBatch(-1).ioThreads(map), ctx))
                    .hasMessageContaining("submit-batch");
        } finally {
            drv.close();
        }
    }

    // ---- protocol violations ----

    @Test
    void missingStatusByteNeedsReset() {
        try (BlkFixture f = new BlkFixture(mem(MIB))) {
            List<String> heard = new ArrayList<>();
            f.dev.onNeedsReset(() -> heard.add(f.dev.needsResetReason()));
            BlkSlot s = f.guest.beginFramed(BlkRequestType.IN, 0, 0);
            f.guest.addBuffer(s.hdrGpa(), 16, false);
            f.guest.commitFramed(s, -1, 0);
            // NEEDS_RESET contract (QEMU's virtio_error): the chain is not given back, nothing is published.
            int usedBefore = f.guest.usedIdx();
            assertThat(f.kickAndReap()).isEmpty();
            assertThat(f.guest.usedIdx()).isEqualTo(usedBefore);
            assertThat(f.dev.needsReset()).isTrue();
            assertThat(f.dev.needsResetReason()).contains("MISSING_STATUS").contains("5.2.6");
            assertThat(heard).hasSize(1);
            // The queue takes nothing more.
            f.guest.read(0, 512);
            assertThat(f.kickAndReap()).isEmpty();
        }
    }

    @Test
    void missingHeaderNeedsReset() {
        try (BlkFixture f = new BlkFixture(mem(MIB))) {
            BlkSlot s = f.guest.beginFramed(BlkRequestType.IN, 0, 0);
            f.guest.addBuffer(s.statusGpa(), 1, true);
            f.guest.commitFramed(s, s.statusGpa(), 0);
            assertThat(f.kickAndReap()).isEmpty();
            assertThat(f.dev.needsResetReason()).contains("MISSING_HEADER");
        }
    }

    @Test
    void ringViolationNeedsResetAndRequestsAlreadyTakenCompleteUnpublished() {
        MemDriver drv = mem(MIB);
        drv.mode = MemDriver.Mode.HOLD;
        try (BlkFixture f = new BlkFixture(drv)) {
            f.guest.read(0, 512);
            f.guest.kick();
            f.settle();
            assertThat(f.stats().inFlight()).isEqualTo(1);
            // A chain that loops on itself.
            f.guest.vring.forgeDescriptor(63, f.ram.allocate(16, 16), 16, DescriptorLayout.F_NEXT, 63);
            f.guest.vring.forgeAvail(63);
            f.guest.kick();
            f.settle();
            assertThat(f.dev.needsResetReason()).contains("CHAIN_LOOP").contains("2.7.5.2");
            // The request taken before the violation completes in the device (its slot is free
            // again) but, the device needing a reset, is not published (QEMU virtqueue_flush).
            int usedBefore = f.guest.usedIdx();
            drv.channels.get(0).releaseHeld();
            f.settle();
            assertThat(f.stats().inFlight()).isZero();
            assertThat(f.guest.reap()).isEmpty();
            assertThat(f.guest.usedIdx()).isEqualTo(usedBefore);
            assertThat(f.stop()).isEqualTo(2);
            // reset() clears the state; the device can run again.
            f.dev.reset();
            assertThat(f.dev.needsReset()).isFalse();
        }
    }

    // ---- drained sections of the device's node (seed 003; more in DeviceDrainTest) ----

    @Test
    void drainedSectionTakesNoRequestsAndItsEndRechecksTheRing() {
        MemDriver drv = mem(MIB);
        try (BlkFixture f = new BlkFixture(drv)) {
            f.dev.node().drainedBegin();
            f.settle(); // the queue stops on its thread (here the same one)
            f.guest.read(0, 512);
            f.guest.kick();
            f.settle();
            assertThat(drv.ops).as("no request starts inside the drained section").isEmpty();
            assertThat(f.guest.reap()).isEmpty();
            f.dev.node().drainedEnd();
            f.settle();
            List<GuestQueue.Done> d = f.guest.reap();
            assertThat(d).as("the kick that came while drained is not lost").hasSize(1);
            assertThat(d.get(0).status()).isEqualTo(BlkStatus.OK);
        }
    }

    @Test
    void drainedEndFindsBuffersPostedWithoutAKick() {
        MemDriver drv = mem(MIB);
        try (BlkFixture f = new BlkFixture(drv)) {
            f.dev.node().drainedBegin();
            f.settle(); // the queue stops on its thread (here the same one)
            f.guest.read(0, 512); // EVENT_IDX guest decided no kick was needed, say
            f.settle();
            f.dev.node().drainedEnd();
            f.settle();
            assertThat(f.guest.reap()).hasSize(1);
        }
    }

    // ---- stop / restart ----

    @Test
    void stopWaitsForRequestsInFlightAndReportsTheNextAvailIndex() {
        MemDriver drv = mem(MIB);
        drv.mode = MemDriver.Mode.HOLD;
        try (BlkFixture f = new BlkFixture(drv)) {
            f.guest.takeCalls();
            f.guest.read(0, 512);
            f.guest.read(8, 512);
            f.guest.kick();
            f.settle();
            int[] next = {-1};
            f.dev.stopQueue(0, n -> next[0] = n);
            f.settle();
            assertThat(next[0]).as("two requests still in flight").isEqualTo(-1);
            assertThat(f.dev.queueStarted(0)).isTrue();
            f.guest.read(16, 512);
            f.guest.kick();
            f.settle();
            assertThat(drv.ops).as("stopping queue takes nothing new").hasSize(2);
            // The driver completes them on a later pass, after the stop was asked for.
            drv.channels.get(0).releaseHeld();
            f.settle();
            assertThat(next[0]).isEqualTo(resumePoint(2, 3));
            assertThat(f.dev.queueStarted(0)).isFalse();
            assertThat(f.guest.reap()).hasSize(2).allMatch(d -> d.status() == BlkStatus.OK);
            // QEMU drains with notifications on before a data plane stops: the guest hears of them.
            assertThat(f.guest.takeCalls()).as("one notification for the two last completions").isEqualTo(1);
            assertThat(f.dev.notifier(0).suppressed()).isZero();
            // Restart resumes at avail index 2 and picks up the third request.
            drv.mode = MemDriver.Mode.SYNC;
            boolean[] started = {false};
            f.dev.startQueue(0, () -> started[0] = true);
            f.settle();
            assertThat(started[0]).isTrue();
            assertThat(f.guest.reap()).hasSize(1);
        }
    }

    /** Feature bits a device over {@code driver} offers (built on a throw-away context). */
    static final class BlkDeviceConfigProbe {
        long features(MemDriver driver) {
            try (var ctx = io.vblk.aio.AioContext.forCurrentThread("probe")) {
                BlkDevice d = new BlkDevice("probe", driver, new BlkDeviceConfig()
                        .ioThreads(io.vblk.virtio.device.IoThreadMapping.single(ctx)), ctx);
                return d.deviceFeatures();
            } finally {
                driver.close();
            }
        }
    }
}
