package io.vblk.virtio.blk;

import io.vblk.aio.Timer;
import io.vblk.aio.engine.AioMode;
import io.vblk.drivers.file.FileDriver;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Home thread: the test thread (the fixture's context).
 *
 * <p>werror=enospc (the default) against a really full file system: a sparse image on a 1 MiB
 * tmpfs, the guest writes until the file system is full, the device stops and holds the failed
 * writes and those that follow; space is freed, the device resumes, and every acknowledged write is
 * on the image. Mounting needs root (CAP_SYS_ADMIN) and mount(8) (util-linux); without them the
 * test fails saying so.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class FullFilesystemStopTest {
    private static final int BLOCK = 4096;

    @TempDir
    Path dir;

    private static void run(String... cmd) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes());
        if (!p.waitFor(30, TimeUnit.SECONDS) || p.exitValue() != 0) {
            throw new AssertionError(String.join(" ", cmd) + " failed: " + out.strip()
                    + " (this test mounts a tmpfs: it needs root, or CAP_SYS_ADMIN, and mount(8) from util-linux)");
        }
    }

    private static void requireRoot() throws IOException {
        for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
            if (line.startsWith("Uid:") && !line.split("\\s+")[2].equals("0")) {
                throw new AssertionError("this test mounts a small tmpfs to fill it up: run it as root (or with"
                        + " CAP_SYS_ADMIN); effective uid is " + line.split("\\s+")[2]);
            }
        }
    }

    private static byte[] pattern(int i) {
        return BlkDeviceTest.pattern(BLOCK, i);
    }

    /** Steps the loop, blocking up to 20 ms at a time, until {@code done} holds (bounded). */
    private static void stepUntil(BlkFixture f, BooleanSupplier done, String what) {
        long deadline = System.nanoTime() + 30_000_000_000L;
        Timer tick = f.ctx.timer("test.tick", () -> { });
        try {
            while (!done.getAsBoolean()) {
                assertThat(System.nanoTime() - deadline).as("waiting for " + what).isNegative();
                tick.armIn(20_000_000L);
                f.ctx.poll(true);
            }
        } finally {
            tick.cancel();
        }
    }

    @Test
    void guestFillsTheFileSystemDeviceStopsSpaceIsFreedResumeLosesNothing() throws Exception {
        requireRoot();
        Path mnt = Files.createDirectory(dir.resolve("mnt"));
        run("mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "vblk-enospc", mnt.toString());
        try {
            Path ballast = mnt.resolve("ballast");
            Files.write(ballast, new byte[256 * 1024]);
            Path img = mnt.resolve("disk.img");
            try (RandomAccessFile r = new RandomAccessFile(img.toFile(), "rw")) {
                r.setLength(8L << 20); // sparse: 8 MiB of image on 1 MiB of file system
            }
            FileDriver drv = FileDriver.open(img.toString(), AioMode.THREADS, FileDriver.Cache.WRITEBACK, false);
            Map<Integer, Integer> acked = new LinkedHashMap<>(); // block -> pattern seed
            Map<Long, Integer> posted = new LinkedHashMap<>();   // sector -> pattern seed, in flight
            try (BlkFixture f = new BlkFixture(drv, c -> c.merge(false), -1)) {
                assertThat(f.dev.deviceFeatures()).isNotZero();
                int next = 0;
                // Write 4 blocks per kick until the device stops on ENOSPC.
                while (!f.dev.ioErrorStopped()) {
                    assertThat(next).as("the file system fills before the image does").isLessThan(2048);
                    for (int k = 0; k < 4; k++, next++) {
                        f.guest.write((long) next * (BLOCK / 512), pattern(next));
                        posted.put((long) next * (BLOCK / 512), next);
                    }
                    f.guest.kick();
                    stepUntil(f, () -> reap(f, posted, acked) || f.dev.ioErrorStopped(), "writes or a stop");
                }
                // Stopped: the failed write is held; what the guest posts now stays in the ring.
                stepUntil(f, () -> reap(f, posted, acked) || posted.size() == f.stats().held(),
                        "in-flight writes to settle");
                int held = f.stats().held();
                assertThat(held).isPositive();
                for (int k = 0; k < 4; k++, next++) {
                    f.guest.write((long) next * (BLOCK / 512), pattern(next));
                    posted.put((long) next * (BLOCK / 512), next);
                }
                f.guest.kick();
                f.settle();
                assertThat(f.guest.reap()).as("nothing popped while stopped").isEmpty();
                assertThat(posted).hasSize(held + 4);
                assertThat(f.dev.ioErrorCount(BlockErrorAction.STOP)).isPositive();
                assertThat(f.dev.ioErrorCount(BlockErrorAction.REPORT)).as("ENOSPC is never reported").isZero();

                Files.delete(ballast); // the operator frees space
                f.dev.resume();
                stepUntil(f, () -> reap(f, posted, acked), "the held and following writes");
                assertThat(posted).as("every write completed OK after the resume").isEmpty();
                assertThat(f.dev.ioErrorStopped()).isFalse();
                assertThat(acked).hasSize(next);
            }
            try (RandomAccessFile r = new RandomAccessFile(img.toFile(), "r")) {
                byte[] got = new byte[BLOCK];
                for (Map.Entry<Integer, Integer> e : acked.entrySet()) {
                    r.seek((long) e.getKey() * BLOCK);
                    r.readFully(got);
                    assertThat(got).as("acknowledged block %d", e.getKey()).isEqualTo(pattern(e.getValue()));
                }
            }
        } finally {
            run("umount", mnt.toString());
        }
    }

    /** Moves the completed writes from {@code posted} to {@code acked} (each must be OK); true when none is left. */
    private static boolean reap(BlkFixture f, Map<Long, Integer> posted, Map<Integer, Integer> acked) {
        List<GuestQueue.Done> done = new ArrayList<>(f.guest.reap());
        for (GuestQueue.Done d : done) {
            long sector = GuestQueue.sector(d.slot());
            assertThat(d.status()).as("write at sector %d", sector).isEqualTo(BlkStatus.OK);
            Integer seed = posted.remove(sector);
            assertThat(seed).isNotNull();
            acked.put((int) (sector / (BLOCK / 512)), seed);
        }
        return posted.isEmpty();
    }
}
