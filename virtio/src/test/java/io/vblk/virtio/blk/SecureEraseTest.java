package io.vblk.virtio.blk;

import io.vblk.aio.engine.AioMode;
import io.vblk.aio.sys.Errno;
import io.vblk.drivers.BlockIo;
import io.vblk.drivers.TestImages;
import io.vblk.drivers.file.FileDriver;
import io.vblk.virtio.queue.LittleEndian;
import io.vblk.virtio.queue.VirtioFeatures;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * VIRTIO_BLK_T_SECURE_ERASE (virtio 1.2 5.2.6) through the mock guest: the feature and its three
 * config fields are offered only where the block driver erases, the command runs as the driver's
 * SECURE_ERASE operation, and its segments are checked by the same code as DISCARD's, against
 * max_secure_erase_sectors / max_secure_erase_seg.
 */
@Timeout(30)
class SecureEraseTest {
    static final long MIB = 1 << 20;

    @TempDir
    Path dir;

    private static MemDriver erasing() {
        MemDriver d = new MemDriver(MIB);
        d.secureErase = true;
        return d;
    }

    private static boolean offered(BlkFixture f) {
        return VirtioFeatures.has(f.dev.deviceFeatures(), BlkFeatures.SECURE_ERASE);
    }

    private static int configU32(BlkFixture f, int offset) {
        byte[] b = new byte[4];
        f.dev.readConfig(offset, b, 4);
        return MemorySegment.ofArray(b).get(LittleEndian.U32, 0);
    }

    @Test
    void offeredWithItsLimitsInTheConfigSpace() {
        try (BlkFixture f = new BlkFixture(erasing(), c -> c.maxSecureEraseSectors(2048).maxSecureEraseSeg(3), -1)) {
            assertThat(offered(f)).isTrue();
            assertThat(f.dev.deviceFeatures() & VirtioFeatures.bit(16)).as("5.2.3: bit 16").isNotZero();
            assertThat(configU32(f, BlkConfigLayout.MAX_SECURE_ERASE_SECTORS)).isEqualTo(2048);
            assertThat(configU32(f, BlkConfigLayout.MAX_SECURE_ERASE_SEG)).isEqualTo(3);
            assertThat(configU32(f, BlkConfigLayout.SECURE_ERASE_SECTOR_ALIGNMENT)).as("blk_size in sectors").isEqualTo(1);
        }
    }

    @Test
    void notOfferedWhereTheDriverCannotEraseOrTheOptionIsOff() {
        try (BlkFixture f = new BlkFixture(new MemDriver(MIB))) {
            assertThat(offered(f)).isFalse();
            assertThat(configU32(f, BlkConfigLayout.MAX_SECURE_ERASE_SECTORS)).isZero();
            assertThat(configU32(f, BlkConfigLayout.MAX_SECURE_ERASE_SEG)).isZero();
            f.guest.secureErase(0, 8, 0);
            assertThat(f.one().status()).as("not negotiated: UNSUPP").isEqualTo(BlkStatus.UNSUPP);
            assertThat(f.stats().secureErases()).isEqualTo(1);
        }
        try (BlkFixture f = new BlkFixture(erasing(), c -> c.secureErase(false), -1)) {
            assertThat(offered(f)).isFalse();
        }
        MemDriver ro = new MemDriver(MIB, true, true, true, 1);
        ro.secureErase = true;
        try (BlkFixture f = new BlkFixture(ro)) {
            assertThat(offered(f)).as("a read-only device offers no command that writes").isFalse();
        }
    }

    @Test
    void erasesThroughTheDriverOperation() {
        MemDriver drv = erasing();
        drv.disk.fill((byte) 0x55);
        try (BlkFixture f = new BlkFixture(drv, c -> c.maxSecureEraseSeg(4), -1)) {
            f.guest.secureErase(8, 8, 0);
            assertThat(f.one().status()).isEqualTo(BlkStatus.OK);
            assertThat(drv.ops).containsExactly(new MemDriver.Op(BlockIo.SECURE_ERASE, 4096, 4096, 0, 0, "main"));
            // Several segments run one after the other, each as its own driver request.
            f.guest.segments(BlkRequestType.SECURE_ERASE, new long[] {32, 2, 0}, new long[] {40, 1, 0});
            assertThat(f.one().status()).isEqualTo(BlkStatus.OK);
            assertThat(drv.ops).hasSize(3);
            assertThat(drv.ops.get(2)).isEqualTo(new MemDriver.Op(BlockIo.SECURE_ERASE, 40 * 512, 512, 0, 0, "main"));
            byte[] disk = drv.disk.asSlice(0, 48 * 512).toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
            for (int i = 0; i < disk.length; i++) {
                int sector = i / 512;
                boolean erased = (sector >= 8 && sector < 16) || sector == 32 || sector == 33 || sector == 40;
                assertThat(disk[i]).as("byte %d", i).isEqualTo(erased ? (byte) 0 : (byte) 0x55);
            }
            assertThat(f.stats().secureErases()).isEqualTo(2);
        }
    }

    /** The checks are DISCARD's (BlkDeviceTest.discardChecksFlagsRangeAndSegments), with the secure-erase limits. */
    @Test
    void segmentsAreCheckedAsForDiscardAgainstTheSecureEraseLimits() {
        MemDriver drv = erasing();
        // Discard limits far apart from secure erase's: a check that used the discard ones would pass.
        try (BlkFixture f = new BlkFixture(drv, c -> c.maxSecureEraseSectors(64).maxSecureEraseSeg(1)
                .maxDiscardSectors(4096).maxDiscardSeg(8), -1)) {
            f.guest.secureErase(8, 8, DiscardWriteZeroesLayout.FLAG_UNMAP);
            assertThat(f.one().status()).as("unmap refused as on discard").isEqualTo(BlkStatus.UNSUPP);
            f.guest.secureErase(8, 8, 2);
            assertThat(f.one().status()).as("5.2.6.2: unknown flag").isEqualTo(BlkStatus.UNSUPP);
            f.guest.secureErase(2047, 2, 0);
            assertThat(f.one().status()).as("past capacity").isEqualTo(BlkStatus.IOERR);
            f.guest.secureErase(0, 65, 0);
            assertThat(f.one().status()).as("over max_secure_erase_sectors").isEqualTo(BlkStatus.IOERR);
            f.guest.segments(BlkRequestType.SECURE_ERASE, new long[] {0, 8, 0}, new long[] {16, 8, 0});
            assertThat(f.one().status()).as("more than max_secure_erase_seg=1").isEqualTo(BlkStatus.UNSUPP);
            f.guest.post(BlkRequestType.SECURE_ERASE, 0, 8);
            assertThat(f.one().status()).as("data not a whole segment").isEqualTo(BlkStatus.IOERR);
            assertThat(drv.ops).as("nothing reached the driver").isEmpty();
            f.guest.discard(0, 65, 0);
            assertThat(f.one().status()).as("discard keeps its own limit").isEqualTo(BlkStatus.OK);
            f.guest.secureErase(0, 64, 0);
            assertThat(f.one().status()).isEqualTo(BlkStatus.OK);
        }
    }

    @Test
    void driverRefusalAndErrorsMapToStatusBytes() {
        MemDriver drv = erasing();
        try (BlkFixture f = new BlkFixture(drv, c -> c.werror(ErrorPolicy.REPORT), -1)) {
            drv.failWith = -Errno.EOPNOTSUPP;
            f.guest.secureErase(0, 8, 0);
            assertThat(f.one().status()).isEqualTo(BlkStatus.UNSUPP);
            drv.failWith = -Errno.EIO;
            f.guest.secureErase(0, 8, 0);
            assertThat(f.one().status()).isEqualTo(BlkStatus.IOERR);
        }
    }

    /** The file driver over a real image: offered, and the erased range is zero in the file afterwards. */
    @Test
    void fileImageIsOverwrittenWithZeroes() throws Exception {
        String img = TestImages.create(dir, "erase.img", MIB);
        byte[] ones = new byte[(int) MIB];
        Arrays.fill(ones, (byte) 0x11);
        Files.write(Path.of(img), ones);
        try (BlkFixture f = new BlkFixture(FileDriver.open(img, AioMode.THREADS, FileDriver.Cache.WRITEBACK, false))) {
            assertThat(offered(f)).isTrue();
            f.guest.secureErase(16, 24, 0);
            assertThat(f.kickAndWait(1)).singleElement().matches(d -> d.status() == BlkStatus.OK);
        }
        byte[] after = Files.readAllBytes(Path.of(img));
        for (int i = 0; i < after.length; i++) {
            boolean erased = i >= 16 * 512 && i < 40 * 512;
            if (after[i] != (erased ? 0 : 0x11)) {
                throw new AssertionError("byte " + i + " is " + after[i] + (erased ? ", not erased" : ", changed"));
            }
        }
    }
}
