package io.vblk.tools.repro;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioOptions;
import io.vblk.aio.Guard;
import io.vblk.aio.engine.AioMode;
import io.vblk.drivers.BlockDriver;
import io.vblk.drivers.file.FileDriver;
import io.vblk.drivers.job.JobEnd;
import io.vblk.drivers.job.Jobs;
import io.vblk.drivers.job.MirrorJob;
import io.vblk.drivers.job.OnError;
import io.vblk.drivers.node.BlockNode;
import io.vblk.drivers.node.DirtyBitmap;
import io.vblk.guest.GuestBlkDriver;
import io.vblk.guest.InProcessBlk;
import io.vblk.guest.Workload;
import io.vblk.guest.WorkloadResult;
import io.vblk.guest.WorkloadRun;
import io.vblk.virtio.blk.BlkDeviceConfig;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.concurrent.CompletableFuture;

/**
 * Any thread that is no context's home thread (the CLI's main thread, a test). The mirror runs on
 * the device's main loop, the device's queue on an IoThread, the emulated guest on its vCPU thread.
 *
 * <p>Seed 003 on the real mirror pivot ({@code vblk repro drain-leak --mode mirror}): the guest
 * writes verified 4 KiB blocks at queue depth 16 to a device on a 1 MiB image while mirror jobs
 * move the device back and forth between two images — blockdev-mirror, ready, job-complete — as
 * many times as the iterations allow. After each pivot the job reports the source chunks that a
 * guest write dirtied after the pivot's last copy ({@link MirrorJob#lateChunks}); the repro also
 * compares those chunks of the two images.
 *
 * <ul>
 *   <li>Guard off ({@code Guard.DRAIN_STOPS_DEVICES} off on the queue's IoThread: the queue's
 *       handler stays enabled through the pivot's drained section, as in seed 003): guest writes
 *       reach the source after the last copy; they are in no copy, so missing from the target —
 *       {@code reproduced}.</li>
 *   <li>Guard on: the section stops the queue, so none does, in every pivot — {@code held}; the
 *       guest's final verify pass reads every block it wrote back from the last target.</li>
 * </ul>
 */
final class MirrorPivotRepro {
    private static final long SIZE = 1L << 20;
    private static final int GRANULARITY = 64 << 10;
    private static final int QUEUE_DEPTH = 16;

    private MirrorPivotRepro() {
    }

    static ReproResult run(String hazard, boolean guardOn, ReproOptions options) throws Exception {
        long deadline = System.nanoTime() + options.timeLimit().toNanos();
        Path dir = Files.createTempDirectory("vblk-repro-mirror");
        Path[] files = {dir.resolve("a.img"), dir.resolve("b.img")};
        try {
            for (Path p : files) {
                Files.write(p, new byte[(int) SIZE]);
            }
            BlockDriver a = FileDriver.open(files[0].toString(), AioMode.THREADS, FileDriver.Cache.WRITEBACK, false);
            BlockDriver b = FileDriver.open(files[1].toString(), AioMode.THREADS, FileDriver.Cache.WRITEBACK, false);
            try (InProcessBlk dev = InProcessBlk.start(a, new BlkDeviceConfig().numQueues(1).queueSize(256), 1,
                    AioOptions.DEFAULT)) {
                return pivots(hazard, guardOn, options, deadline, dev, b, files);
            } finally {
                b.close();
            }
        } finally {
            for (Path p : files) {
                Files.deleteIfExists(p);
            }
            Files.deleteIfExists(dir);
        }
    }

    private static ReproResult pivots(String hazard, boolean guardOn, ReproOptions options, long deadline,
                                      InProcessBlk dev, BlockDriver other, Path[] files) throws Exception {
        AioContext main = dev.control().ctx();
        AioContext io = dev.queueContext(0);
        AioContext.await(io.callOn(() -> {
            io.setGuard(Guard.DRAIN_STOPS_DEVICES, guardOn);
            return null;
        }), options.hangAfter());
        BlockNode[] nodes = {dev.device().node(), AioContext.await(main.callOn(() -> new BlockNode("b", other, main)),
                options.hangAfter())};
        Jobs jobs = AioContext.await(main.callOn(() -> new Jobs(main)), options.hangAfter());
        GuestBlkDriver guest = GuestBlkDriver.attach(dev.transport(),
                GuestBlkDriver.Options.defaults().withSlots(QUEUE_DEPTH).withMaxDataBytes(4096));
        long pivots = 0;
        long leaky = 0;
        long lateChunks = 0;
        long missing = 0;
        WorkloadResult result;
        try {
            WorkloadRun run = WorkloadRun.start(guest, Workload.of(Workload.Pattern.RANDWRITE).withQueueDepth(QUEUE_DEPTH)
                    .withBlockSize(4096).withVerify(true).withSeed(options.seed())
                    .withDuration(options.timeLimit().toNanos() + options.hangAfter().toNanos())
                    .withStallNanos(options.hangAfter().toNanos()));
            try {
                for (int i = 0; i < options.iterations() && System.nanoTime() - deadline < 0; i++) {
                    int from = dev.device().node() == nodes[0] ? 0 : 1;
                    MirrorJob job = pivot(jobs, main, nodes[from], nodes[1 - from], "m" + i, options);
                    pivots++;
                    long late = job.lateChunks();
                    if (late > 0) {
                        leaky++;
                        lateChunks += late;
                        missing += differing(job.bitmap(), files[from], files[1 - from]);
                        if (!guardOn) {
                            break;
                        }
                    }
                }
            } finally {
                run.stop();
                result = run.await(options.hangAfter().multipliedBy(4));
            }
        } finally {
            guest.close();
        }
        boolean hazardSeen = leaky > 0 || !result.ok();
        String detail;
        if (leaky > 0) {
            detail = "guest writes reached the source after the pivot's last copy in " + leaky + " of " + pivots
                    + " pivots: " + lateChunks + " chunk(s) in no copy, " + missing + " of them differing in the target";
        } else if (!result.ok()) {
            detail = "the guest's verify failed: " + result.error();
        } else {
            detail = "no guest write reached the source after the last copy in " + pivots + " pivots; every block the"
                    + " guest wrote read back from the last target (" + result.total().completed + " requests)";
        }
        return ReproResult.of(hazard, guardOn, hazardSeen, pivots, detail)
                .with("mode", "mirror")
                .with("pivots", pivots)
                .with("late_chunks", lateChunks)
                .with("missing_in_target", missing)
                .with("requests", result.total().completed)
                .with("verify_failures", result.total().verifyFailures)
                .with("seed", options.seed());
    }

    /** One blockdev-mirror sync=full, ready, job-complete; returns the concluded job. */
    private static MirrorJob pivot(Jobs jobs, AioContext main, BlockNode from, BlockNode to, String id,
                                   ReproOptions options) {
        JobEnd l = new JobEnd(id);
        CompletableFuture<Void> ready = l.ready();
        CompletableFuture<String> ended = l.ended();
        MirrorJob job = AioContext.await(main.callOn(() -> {
            jobs.addListener(l);
            return jobs.start(new MirrorJob(jobs, id, from, to, 0, GRANULARITY, OnError.REPORT, OnError.REPORT, true, true));
        }), options.hangAfter());
        try {
            awaitJob(ready, main, job, "ready", options);
            AioContext.await(main.callOn(() -> {
                job.userComplete();
                return null;
            }), options.hangAfter());
            String err = awaitJob(ended, main, job, "ended", options);
            if (!JobEnd.COMPLETED.equals(err)) {
                throw new IllegalStateException("mirror " + id + " failed: " + err);
            }
        } finally {
            AioContext.await(main.callOn(() -> {
                jobs.removeListener(l);
                return null;
            }), options.hangAfter());
        }
        return job;
    }

    /** Waits for {@code f}; a hang is reported with the job's state, read on its loop. */
    private static <T> T awaitJob(CompletableFuture<T> f, AioContext main, MirrorJob job, String what,
                                  ReproOptions options) {
        try {
            return AioContext.await(f, options.hangAfter().multipliedBy(5));
        } catch (java.util.concurrent.CompletionException e) {
            String state = AioContext.await(main.callOn(job::toString), options.hangAfter());
            throw new IllegalStateException("mirror not " + what + " within " + options.hangAfter().multipliedBy(5)
                    + ": " + state, e);
        }
    }

    /** Late chunks whose bytes differ between the old source and its target. */
    private static long differing(DirtyBitmap late, Path source, Path target) {
        try (FileChannel s = FileChannel.open(source, StandardOpenOption.READ);
             FileChannel t = FileChannel.open(target, StandardOpenOption.READ)) {
            long n = 0;
            ByteBuffer x = ByteBuffer.allocate(GRANULARITY);
            ByteBuffer y = ByteBuffer.allocate(GRANULARITY);
            for (long c = late.nextDirty(0); c >= 0; c = late.nextDirty(c + 1)) {
                x.clear();
                y.clear();
                s.read(x, late.offsetOf(c));
                t.read(y, late.offsetOf(c));
                n += Arrays.equals(x.array(), y.array()) ? 0 : 1;
            }
            return n;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
