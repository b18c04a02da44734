package io.vblk.guest;

import io.vblk.aio.AioContext;
import io.vblk.drivers.spec.DriverSpec;
import io.vblk.virtio.blk.BlkDeviceConfig;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.RandomAccessFile;
import java.nio.file.Path;
import java.time.Duration;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Data written by the guest through the device into a real file comes back intact: verify mode
 * over several queues on several IoThreads, and a corrupted block is caught.
 */
@Timeout(120)
class GuestVerifyTest {

    private static Path image(Path dir, long bytes) throws Exception {
        Path img = dir.resolve("disk.img");
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
            f.setLength(bytes);
        }
        return img;
    }

    @ParameterizedTest
    @ValueSource(strings = {"aio=native,cache=none", "aio=threads,cache=writeback"})
    void multiqueueOverSeveralIoThreadsWithDataVerified(String mode, @TempDir Path dir) throws Exception {
        Path img = image(dir, 16L << 20);
        int queues = 4;
        try (GuestRig rig = GuestRig.of(DriverSpec.open("file:" + img + "," + mode),
                new BlkDeviceConfig().numQueues(queues), 2,
                GuestBlkDriver.Options.defaults().withQueues(queues).withSlots(16).withMaxDataBytes(16384))) {
            assertThat(rig.dev.queueContext(0)).isNotSameAs(rig.dev.queueContext(1));
            Workload w = Workload.of(Workload.Pattern.RANDRW).withBlockSize(16384).withQueueDepth(16)
                    .withRequests(8000).withVerify(true).withSegments(4).withSeed(42);
            WorkloadResult r = WorkloadRun.start(rig.guest, w).await(Duration.ofSeconds(60));
            assertThat(r.error()).isNull();
            QueueStats t = r.total();
            assertThat(t.completed - t.readBackBlocks).isEqualTo(8000);
            assertThat(t.verifyFailures).isZero();
            assertThat(t.verifiedSectors).isPositive();
            assertThat(t.readBackBlocks).isPositive();
            for (QueueStats s : r.perQueue()) {
                assertThat(s.writes).isPositive();
                assertThat(s.readBackBlocks).as("queue %d read back", s.queue).isPositive();
            }
        }
    }

    @Test
    void sequentialWritesThenReadsSeeEveryBlock(@TempDir Path dir) throws Exception {
        Path img = image(dir, 4L << 20);
        try (GuestRig rig = GuestRig.of(DriverSpec.open("file:" + img), new BlkDeviceConfig(), 1,
                GuestBlkDriver.Options.defaults().withSlots(8).withMaxDataBytes(4096))) {
            // 1024 blocks of 4 KiB: one sequential pass writes each once; the read-back checks each.
            WorkloadResult r = WorkloadRun.start(rig.guest, Workload.of(Workload.Pattern.WRITE).withQueueDepth(8)
                    .withRequests(1024).withVerify(true)).await(Duration.ofSeconds(60));
            assertThat(r.error()).isNull();
            assertThat(r.total().writes).isEqualTo(1024);
            assertThat(r.total().readBackBlocks).isEqualTo(1024);
            assertThat(r.total().verifiedSectors).isEqualTo(1024 * 8);
        }
    }

    @Test
    void aBlockChangedBehindTheGuestsBackFailsVerification(@TempDir Path dir) throws Exception {
        Path img = image(dir, 1L << 20);
        // Sectors 24..31 are written with generation 5, then one byte of sector 24 is flipped in
        // the file behind the device's back.
        try (GuestRig rig = GuestRig.of(DriverSpec.open("file:" + img + ",aio=threads,cache=writeback"),
                new BlkDeviceConfig(), 1, GuestBlkDriver.Options.defaults().withSlots(4).withMaxDataBytes(4096))) {
            GuestBlkQueue q = rig.q(0);
            VerifyPattern p = new VerifyPattern();
            assertThat(rig.roundTrip(0, x -> {
                p.fill(x.data(), x.dataBuffer(), 4096, 24, 5);
                q.postWrite(x, 24, 4096, 1);
            }).status()).isZero();
            // Read it back: intact.
            GuestRig.Done ok = rig.roundTrip(0, x -> q.postRead(x, 24, 4096, 1));
            assertThat(p.check(ok.slot().data(), ok.slot().dataBuffer(), 0, 24, 5)).isEqualTo(VerifyPattern.OK);
            // Flip one byte in the file, as a lost or torn write would leave it.
            AioContext.await(rig.dev.queueContext(0).callOn(() -> null), Duration.ofSeconds(5));
            try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
                f.seek(24 * 512 + 100);
                int b = f.read();
                f.seek(24 * 512 + 100);
                f.write(b ^ 0x40);
            }
            GuestRig.Done bad = rig.roundTrip(0, x -> q.postRead(x, 24, 4096, 1));
            assertThat(p.check(bad.slot().data(), bad.slot().dataBuffer(), 512, 25, 5)).isEqualTo(VerifyPattern.OK);
            assertThat(p.check(bad.slot().data(), bad.slot().dataBuffer(), 0, 24, 5))
                    .isEqualTo(VerifyPattern.BAD_CHECKSUM);
        }
    }
}
