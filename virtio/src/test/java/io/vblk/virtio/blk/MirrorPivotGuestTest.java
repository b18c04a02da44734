package io.vblk.virtio.blk;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioOptions;
import io.vblk.aio.engine.AioMode;
import io.vblk.drivers.BlockChannel;
import io.vblk.drivers.BlockDriver;
import io.vblk.drivers.BlockIo;
import io.vblk.drivers.ForwardingBlockDriver;
import io.vblk.drivers.file.FileDriver;
import io.vblk.drivers.job.JobEnd;
import io.vblk.drivers.job.Jobs;
import io.vblk.drivers.job.MirrorJob;
import io.vblk.drivers.job.OnError;
import io.vblk.drivers.node.BlockNode;
import io.vblk.guest.InProcessBlk;
import io.vblk.guest.WorkloadResult;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Any thread (test code): the device on two IoThreads, the mirror on its main loop, the emulated
 * guest on its vCPU threads.
 *
 * <p>blockdev-mirror and job-complete under a guest writing verified data at queue depth 32 per
 * queue: after the pivot every acknowledged write is in the target (the guest's final verify pass
 * reads every block it wrote back from the target), the target equals the source at the pivot
 * (every block the guest did not write after the pivot is the same in both files, and the source
 * took no guest write after the last copy), and the guest goes on on the target.
 */
class MirrorPivotGuestTest {
    private static final long SIZE = 8L << 20;
    private static final int BLOCK = 4096;
    private static final Duration T = Duration.ofSeconds(60);

    @TempDir
    Path dir;

    @Test
    @Timeout(300)
    void pivotUnderAVerifyingGuestThreeTimes() throws Exception {
        for (int i = 0; i < 3; i++) {
            pivotOnce(i);
        }
    }

    /**
     * Issue 14's criterion: 100 pivots under a QD32 verifying guest. It once found a stale block in
     * the target in 2 of 5 runs: two copies of one chunk were in flight at once and the older one's
     * write landed last; the mirror now waits for a chunk's copy before copying it again.
     */
    @Test
    @Tag("stress")
    @Timeout(1800)
    void pivotUnderAVerifyingGuestAHundredTimes() throws Exception {
        long t0 = System.nanoTime();
        for (int i = 0; i < 100; i++) {
            pivotOnce(i);
        }
        System.out.printf("100 mirror pivots under a QD32 verifying guest in %.1f s%n", (System.nanoTime() - t0) / 1e9);
    }

    private void pivotOnce(int iteration) throws Exception {
        Path srcPath = dir.resolve("src" + iteration + ".img");
        Path dstPath = dir.resolve("dst" + iteration + ".img");
        VerifyingGuest.writeImages(srcPath, dstPath, iteration, SIZE);
        BlockDriver src = FileDriver.open(srcPath.toString(), AioMode.THREADS, FileDriver.Cache.WRITEBACK, false);
        GuestWrites dst = new GuestWrites(FileDriver.open(dstPath.toString(), AioMode.THREADS, FileDriver.Cache.WRITEBACK, false));
        BlkDeviceConfig cfg = new BlkDeviceConfig().numQueues(2).queueSize(256);
        MirrorJob job;
        WorkloadResult result;
        try (InProcessBlk dev = InProcessBlk.start(src, cfg, 2, AioOptions.DEFAULT)) {
            AioContext main = dev.control().ctx();
            dst.main = main;
            JobEnd end = new JobEnd(null);
            BlockNode target = AioContext.await(main.callOn(() -> new BlockNode("target", dst, main)), T);
            VerifyingGuest run = VerifyingGuest.start(dev, iteration, T);
            try (run) {
                long before = run.completed();
                job = AioContext.await(main.callOn(() -> {
                    Jobs jobs = new Jobs(main);
                    jobs.addListener(end);
                    return jobs.start(new MirrorJob(jobs, "m" + iteration, dev.device().node(), target, 0,
                            MirrorJob.DEFAULT_GRANULARITY, OnError.REPORT, OnError.REPORT, true, true));
                }), T);
                VerifyingGuest.awaitJob(end.ready(), main, job, "ready", T);
                run.awaitProgress(run.completed() + 500, "after ready"); // the guest dirties the source
                AioContext.await(main.callOn(() -> {
                    job.userComplete();
                    return null;
                }), T);
                assertThat(VerifyingGuest.awaitJob(end.ended(), main, job, "ended", T)).isEqualTo("completed");
                long afterPivot = run.completed();
                run.awaitProgress(afterPivot + 500, "after the pivot"); // the guest goes on, on the target
                assertThat(run.completed() - before).isPositive();
            }
            result = run.result();
            assertThat(job.pivoted()).isTrue();
            assertThat(AioContext.await(main.callOn(job::lateChunks), T)).as("chunks the guest wrote on the source after the last copy")
                    .isZero();
            assertThat(dev.device().node()).isSameAs(target);
        } finally {
            dst.close();
        }
        assertThat(result.error()).as("the guest's verify (every acknowledged write read back from the target)").isNull();
        assertThat(result.total().verifyFailures).isZero();
        assertThat(dst.guestBlocks).as("guest writes reached the target after the pivot").isNotEmpty();
        byte[] s = Files.readAllBytes(srcPath);
        byte[] t = Files.readAllBytes(dstPath);
        int same = 0;
        for (int b = 0; b < SIZE / BLOCK; b++) {
            if (!dst.guestBlocks.contains(b)) {
                same++;
                assertThat(ByteBuffer.wrap(t, b * BLOCK, BLOCK)).as("iteration %d block %d: target equals source at the pivot",
                        iteration, b).isEqualTo(ByteBuffer.wrap(s, b * BLOCK, BLOCK));
            }
        }
        assertThat(same).isPositive();
    }

    /**
     * The target's driver, recording which 4 KiB blocks a guest write (a channel on an IoThread,
     * not the mirror's on the main loop) touched. Any thread: the set is concurrent.
     */
    static final class GuestWrites extends ForwardingBlockDriver {
        final Set<Integer> guestBlocks = ConcurrentHashMap.newKeySet();
        volatile AioContext main;

        GuestWrites(BlockDriver inner) {
            super(inner);
        }

        @Override
        public BlockChannel openChannel(AioContext ctx) {
            BlockChannel ch = inner.openChannel(ctx);
            if (ctx == main) {
                return ch;
            }
            return new BlockChannel() {
                @Override
                public AioContext context() {
                    return ch.context();
                }

                @Override
                public void submit(BlockIo io) {
                    if (io.op == BlockIo.WRITE || io.op == BlockIo.WRITE_ZEROES || io.op == BlockIo.DISCARD) {
                        for (long o = io.offset; o < io.offset + io.byteLength(); o += BLOCK) {
                            guestBlocks.add((int) (o / BLOCK));
                        }
                    }
                    ch.submit(io);
                }

                @Override
                public int inFlight() {
                    return ch.inFlight();
                }

                @Override
                public void drain(Runnable whenIdle) {
                    ch.drain(whenIdle);
                }

                @Override
                public void close() {
                    ch.close();
                }
            };
        }
    }
}
