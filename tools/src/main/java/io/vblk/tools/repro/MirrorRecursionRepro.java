package io.vblk.tools.repro;

import io.vblk.aio.AioContext;
import io.vblk.aio.Guard;
import io.vblk.aio.engine.AioMode;
import io.vblk.aio.engine.SubmissionQueue;
import io.vblk.aio.engine.SubmitGuard;
import io.vblk.drivers.BlockChannel;
import io.vblk.drivers.ChannelBase;
import io.vblk.drivers.file.FileDriver;
import io.vblk.drivers.job.JobEnd;
import io.vblk.drivers.job.Jobs;
import io.vblk.drivers.job.MirrorJob;
import io.vblk.drivers.job.OnError;
import io.vblk.drivers.node.BlockNode;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.concurrent.CompletableFuture;

/**
 * Home thread: the caller's (no context's home thread); owns the mirror's thread, its context and
 * the two temporary images.
 *
 * <p>Seed 000 in its production setting ({@code vblk repro submit-recursion --mode mirror}): a
 * {@code blockdev-mirror} job — the product's {@link MirrorJob} on the product's file driver,
 * aio=native over the page cache — issues its next copy from the completion of the last one, as
 * QEMU's block jobs issue I/O from completion callbacks. Every copy completes inside the submit
 * that started it (buffered io_submit(2) does the copy before it returns), so the chain is
 * {@code MirrorJob.pump → step → issue → SubmissionQueue.submit → ioqSubmit → io_submit →
 * processCompletions → readDone → (deferred) write → DeferCall.end → deferredSubmit → ioqSubmit →
 * processCompletions → writeDone → pump → …}: the copies the job issues from its completions keep
 * the submission queue's seed-000 cycle ({@code ioqSubmit → processCompletions → DeferCall.end →
 * deferredSubmit → ioqSubmit}) turning, one level deeper per wave, over 512-byte chunks of a
 * 16 MiB image.
 *
 * <ul>
 *   <li>Guard off ({@link Guard#SUBMIT_DEPTH} off on the job's context: the submission queue's
 *       depth cap and the job's re-entry cut both off): the recursion overflows the job thread's
 *       512 KiB stack; the {@link StackOverflowError} is caught below the job's first frame;
 *       the frames of one turn and the job's frames in the trace are reported — {@code reproduced}.</li>
 *   <li>Guard on: the job converges (ready), completes, and the target equals the source byte for
 *       byte; the submission queue's depth stays at its cap — {@code held}.</li>
 * </ul>
 */
final class MirrorRecursionRepro {
    static final long SIZE = 16L << 20;
    static final int GRANULARITY = 512;

    private MirrorRecursionRepro() {
    }

    static ReproResult run(String hazard, boolean guardOn, ReproOptions options, AioMode aio) throws Exception {
        Path dir = Files.createTempDirectory("vblk-repro-000-mirror-");
        Path src = dir.resolve("source.raw");
        Path dst = dir.resolve("target.raw");
        try {
            writeImage(src, true);
            writeImage(dst, false);
            CompletableFuture<ReproResult> result = new CompletableFuture<>();
            Thread t = new Thread(null, () -> {
                try {
                    result.complete(onJobThread(hazard, guardOn, options, aio, src, dst));
                } catch (Throwable e) {
                    result.completeExceptionally(e);
                }
            }, "repro-000-mirror", SubmitRecursionRepro.STACK_BYTES);
            t.setDaemon(true);
            t.start();
            return AioContext.await(result, options.timeLimit().plus(options.hangAfter().multipliedBy(2)));
        } finally {
            Files.deleteIfExists(src);
            Files.deleteIfExists(dst);
            Files.deleteIfExists(dir);
        }
    }

    /** Written out (not sparse) and synced: every copy then completes inside io_submit. */
    private static void writeImage(Path p, boolean pattern) throws IOException {
        try (FileChannel ch = FileChannel.open(p, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING)) {
            ByteBuffer b = ByteBuffer.allocate(1 << 20);
            for (long off = 0; off < SIZE; off += b.capacity()) {
                b.clear();
                for (int i = 0; i < b.capacity(); i += 8) {
                    b.putLong(i, pattern ? (off + i) * 0x9E3779B97F4A7C15L : 0);
                }
                while (b.hasRemaining()) {
                    ch.write(b, off + b.position());
                }
            }
            ch.force(false);
        }
    }

    private static ReproResult onJobThread(String hazard, boolean guardOn, ReproOptions options, AioMode aio,
                                           Path srcPath, Path dstPath) throws IOException {
        AioContext ctx = AioContext.forCurrentThread("repro-000-mirror");
        ctx.setGuard(Guard.SUBMIT_DEPTH, guardOn);
        FileDriver a = FileDriver.open(srcPath.toString(), aio, FileDriver.Cache.WRITEBACK, false);
        FileDriver b = FileDriver.open(dstPath.toString(), aio, FileDriver.Cache.WRITEBACK, false);
        BlockNode src = new BlockNode("source", a, ctx);
        BlockNode dst = new BlockNode("target", b, ctx);
        // Held open for the run: the context's engine (shared by the job's channels) and its depth meter.
        BlockChannel probe = src.openChannel(ctx);
        SubmissionQueue engine = (SubmissionQueue) ((ChannelBase) probe).engine();
        SubmitGuard depth = engine.submitGuard();
        Jobs jobs = new Jobs(ctx);
        JobEnd end = new JobEnd("m0");
        jobs.addListener(end);
        CompletableFuture<Void> ready = end.ready();
        CompletableFuture<String> ended = end.ended();
        MirrorJob job = new MirrorJob(jobs, "m0", src, dst, 0, GRANULARITY, OnError.REPORT, OnError.REPORT, true, true);
        StackOverflowError overflow = null;
        String broken = null;
        long deadline = System.nanoTime() + options.timeLimit().toNanos();
        try {
            jobs.start(job); // runs the first pump on this thread: the recursion starts here
            while (!ready.isDone() && System.nanoTime() - deadline < 0) {
                ctx.poll(false);
            }
            if (!ready.isDone()) {
                broken = "the mirror did not converge within " + options.timeLimit() + ": " + job;
            } else {
                job.userComplete();
                while (!ended.isDone() && System.nanoTime() - deadline < 0) {
                    ctx.poll(false);
                }
                String err = ended.getNow(null);
                if (err == null) {
                    broken = "the mirror did not complete within " + options.timeLimit() + ": " + job;
                } else if (!err.equals(JobEnd.COMPLETED)) {
                    broken = "the mirror failed: " + err;
                }
            }
        } catch (StackOverflowError e) {
            overflow = e; // caught below every frame of the cycle: the stack is unwound
        }
        long copied = overflow == null ? job.bytesCopied() : -1;
        int maxDepth = depth.maxDepth();
        long capHits = depth.capHits();
        String abandoned = "none";
        if (overflow == null) {
            probe.close();
            ctx.close();
            a.close();
            b.close();
        } else {
            // The unwound stack left the job, its channels and the engine mid-update: abandoned.
            a.close();
            b.close();
            abandoned = "job,channels,engine";
            try {
                ctx.close();
            } catch (IllegalStateException e) {
                abandoned += ",context";
            }
        }
        boolean seen = guardOn ? maxDepth > SubmitGuard.DEFAULT_CAP : overflow != null;
        if (broken == null && overflow == null && !sameBytes(srcPath, dstPath)) {
            broken = "the target differs from the source after the mirror completed";
        }
        String detail;
        if (overflow != null) {
            detail = "the mirror's copy loop recursed through synchronous completions until the "
                    + (SubmitRecursionRepro.STACK_BYTES >> 10) + " KiB stack overflowed";
        } else if (guardOn && seen) {
            detail = "submit recursed past the cap although the guard is on";
        } else if (broken != null) {
            detail = broken;
        } else {
            detail = guardOn ? "the copy loop stayed flat; the mirror completed and the target equals the source"
                    : "no overflow: the mirror completed without recursing";
        }
        ReproResult r = broken != null && !seen
                ? ReproResult.inconclusive(hazard, guardOn, copied / GRANULARITY, detail)
                : ReproResult.of(hazard, guardOn, seen, Math.max(0, copied / GRANULARITY), detail);
        return r.with("mode", "mirror")
                .with("engine", aio.spelling())
                .with("overflow", overflow != null ? StackOverflowError.class.getSimpleName() : "none")
                .with("job_frames_in_trace", count(overflow, MirrorJob.class.getName()))
                .with("max_submit_depth", maxDepth)
                .with("cap", SubmitGuard.DEFAULT_CAP)
                .with("cap_hits", capHits)
                .with("bytes_copied", copied)
                .with("stack_kib", SubmitRecursionRepro.STACK_BYTES >> 10)
                .with("cycle", SubmitRecursionRepro.cycle(overflow))
                .with("abandoned", abandoned);
    }

    /** Frames of {@code cls} in {@code e}'s stack trace (its innermost 1024); 0 without one. */
    private static int count(StackOverflowError e, String cls) {
        int n = 0;
        if (e != null) {
            for (StackTraceElement f : e.getStackTrace()) {
                n += f.getClassName().equals(cls) ? 1 : 0;
            }
        }
        return n;
    }

    private static boolean sameBytes(Path x, Path y) throws IOException {
        return Files.mismatch(x, y) == -1;
    }
}
