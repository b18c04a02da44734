package io.vblk.tools.repro;

import io.vblk.aio.AioContext;
import io.vblk.aio.DeferCall;
import io.vblk.aio.Guard;
import io.vblk.aio.Timer;
import io.vblk.aio.engine.AioMode;
import io.vblk.aio.engine.SubmissionQueue;
import io.vblk.aio.engine.SubmitGuard;
import io.vblk.aio.sys.Errno;
import io.vblk.aio.sys.FileIo;
import io.vblk.drivers.BlockChannel;
import io.vblk.drivers.BlockDriver;
import io.vblk.drivers.BlockIo;
import io.vblk.drivers.ChannelBase;
import io.vblk.drivers.IoCompletion;
import io.vblk.drivers.file.FileDriver;
import io.vblk.drivers.nullblk.NullDriver;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashSet;
import java.util.concurrent.CompletableFuture;
import java.util.function.IntSupplier;

/**
 * Home thread: the caller's (no context's home thread); owns the threads and contexts it runs.
 *
 * <p>Seed 000: synchronous-completion recursion. A closed-loop workload — each completion at once
 * submits its slot's next request, as a backup job or {@code qemu-io} does — over two drivers whose
 * submissions complete on the submitting stack:
 * <ul>
 *   <li>{@code file} with aio=native (or aio=io_uring, {@link #SubmitRecursionRepro(AioMode)}),
 *       cache=writeback: io_submit(2) — or io_uring_enter(2) — performs page-cache reads and
 *       writes before it returns, so the engine's completion pass runs in the same frame;</li>
 *   <li>{@code null} with completion=sync: its batch "submit" completes every request in place.</li>
 * </ul>
 * Both defer their submission to the end of the defer-call section their completion pass opens, so
 * the cycle is {@code submit → completions → callback submits → section end → submit → …}.
 *
 * <p>Guard off: the depth grows with every completion wave until the recursion overflows the
 * stack of the workload thread — the home thread of the scenario's context, which this class
 * starts with a known, small stack ({@link #STACK_BYTES}) — as QEMU's IOThread dies on its guard
 * page. The {@link StackOverflowError} is caught at the bottom of that thread, below every frame
 * of the cycle; the depth reached and the distinct frames of one turn of the cycle, read from the
 * error's stack trace, are reported: {@code reproduced}. The overflow leaves the engine mid-update,
 * so the scenario abandons its channel and engine (their state is not trusted), closes the
 * image's descriptor and its context, and its thread ends. A stack that never overflows is
 * bounded by {@link #DEPTH_LIMIT} levels, {@link #OVERFLOW_REQUESTS} requests or the time limit:
 * {@code missed}. Guard on: the depth stays at the cap
 * ({@link SubmitGuard#DEFAULT_CAP}), the completion bottom half resumes the capped work, every
 * request completes exactly once and every block written reads back intact: {@code held}.
 *
 * <p>Runs on the caller's thread (no context's home thread); owns its workload thread and the
 * temporary image file.
 */
public final class SubmitRecursionRepro implements Repro {
    /** Levels at which a guard-off workload that has not overflowed stops issuing (seed: unbounded). */
    public static final int DEPTH_LIMIT = 1_000_000;
    /** Requests after which a guard-off workload that has not overflowed stops issuing. */
    public static final int OVERFLOW_REQUESTS = 1_000_000;
    /** Requests in flight per scenario (closed loop). */
    static final int SLOTS = 4;
    static final int BLOCK = 4096;
    /** Blocks per slot in the image; each slot writes then reads back its blocks in turn. */
    static final int BLOCKS_PER_SLOT = 64;
    /** Stack of the workload thread: small, so the guard-off recursion overflows it quickly. */
    public static final long STACK_BYTES = 512L << 10;

    private final AioMode aio;
    private final boolean mirror;

    /** The file scenario on Linux AIO (aio=native). */
    public SubmitRecursionRepro() {
        this(AioMode.NATIVE);
    }

    /** The file scenario on {@code aio}: {@link AioMode#NATIVE} or {@link AioMode#IO_URING}. */
    public SubmitRecursionRepro(AioMode aio) {
        this(aio, false);
    }

    /**
     * With {@code mirror}, the production setting instead of the closed loop: a mirror job whose
     * copies complete inside their submits ({@link MirrorRecursionRepro}).
     */
    public SubmitRecursionRepro(AioMode aio, boolean mirror) {
        if (aio != AioMode.NATIVE && aio != AioMode.IO_URING) {
            throw new IllegalArgumentException("--aio accepts native or io_uring (engines that complete inside"
                    + " submit), got '" + aio + "'");
        }
        this.aio = aio;
        this.mirror = mirror;
    }

    /** The file scenario's engine. */
    public AioMode aio() {
        return aio;
    }

    @Override
    public String hazard() {
        return "submit-recursion";
    }

    @Override
    public String description() {
        return "seed 000: synchronous completions re-enter submit through the defer-call end; unbounded recursion";
    }

    @Override
    public ReproResult run(boolean guardOn, ReproOptions options) throws Exception {
        if (mirror) {
            return MirrorRecursionRepro.run(hazard(), guardOn, options, aio);
        }
        Path dir = Files.createTempDirectory("vblk-repro-000-");
        String img = dir.resolve("image.raw").toString();
        try {
            Outcome file = runScenario("file", guardOn, options, img, aio);
            Outcome nul = runScenario("null", guardOn, options, null, aio);
            int maxDepth = Math.max(file.maxDepth, nul.maxDepth);
            String broken = file.broken != null ? "file: " + file.broken : nul.broken != null ? "null: " + nul.broken : null;
            boolean recursed = file.maxDepth > SubmitGuard.DEFAULT_CAP || nul.maxDepth > SubmitGuard.DEFAULT_CAP;
            boolean overflowed = file.overflow != null || nul.overflow != null;
            // Guard off, only the overflow counts; guard on, any depth past the cap is a failure. A
            // run that broke otherwise (an I/O error, a stall, bad data) without either is inconclusive.
            boolean seen = guardOn ? recursed : overflowed;
            String detail;
            if (guardOn && recursed) {
                detail = "submit recursed past the cap although the guard is on";
            } else if (broken != null && !seen) {
                detail = broken;
            } else if (overflowed) {
                detail = "submit recursed until the " + (STACK_BYTES >> 10) + " KiB stack overflowed ("
                        + (file.overflow != null ? "file" : "") + (file.overflow != null && nul.overflow != null ? ", " : "")
                        + (nul.overflow != null ? "null" : "") + ")";
            } else if (!guardOn) {
                detail = "no overflow: submit recursed to depth " + maxDepth + " and the workload ended ("
                        + (file.stoppedByLimit || nul.stoppedByLimit ? "depth limit" : "request or time limit") + ")";
            } else {
                detail = guardOn
                        ? "depth stayed at the cap; every request completed once and read back intact"
                        : "no recursion seen";
            }
            ReproResult r = broken != null && !seen
                    ? ReproResult.inconclusive(hazard(), guardOn, file.completed + nul.completed, detail)
                    : ReproResult.of(hazard(), guardOn, seen, file.completed + nul.completed, detail);
            return r.with("engine", aio.spelling())
                    .with("max_depth", maxDepth)
                    .with("file_max_depth", file.maxDepth)
                    .with("null_max_depth", nul.maxDepth)
                    .with("cap", SubmitGuard.DEFAULT_CAP)
                    .with("cap_hits", file.capHits + nul.capHits)
                    .with("overflow", overflowed ? StackOverflowError.class.getSimpleName() : "none")
                    .with("file_overflow", overflowSeen(file, guardOn))
                    .with("null_overflow", overflowSeen(nul, guardOn))
                    .with("stack_kib", STACK_BYTES >> 10)
                    .with("cycle", cycle(file.overflow != null ? file.overflow : nul.overflow))
                    .with("abandoned", file.abandoned != null ? "file:" + file.abandoned
                            + (nul.abandoned != null ? ";null:" + nul.abandoned : "")
                            : nul.abandoned != null ? "null:" + nul.abandoned : "none")
                    .with("file_sync_completions", file.syncCompletions + "/" + file.completed)
                    // The engine's submit calls: io_submit, or io_uring_enter with aio=io_uring.
                    .with("io_submit_per_request", file.completed == 0 ? "0"
                            : String.format("%.3f", (double) file.ioSubmits / file.completed));
        } finally {
            Files.deleteIfExists(Path.of(img));
            Files.deleteIfExists(dir);
        }
    }

    /** What one scenario saw. */
    static final class Outcome {
        int maxDepth;
        long capHits;
        long completed;
        long syncCompletions;
        long ioSubmits;
        StackOverflowError overflow;
        /** What the scenario left unclosed after an overflow, or null. */
        String abandoned;
        boolean stoppedByLimit;
        String broken;
    }

    private static Outcome runScenario(String kind, boolean guardOn, ReproOptions options, String img, AioMode aio)
            throws Exception {
        CompletableFuture<Outcome> result = new CompletableFuture<>();
        Thread t = new Thread(null, () -> {
            try {
                result.complete(workload(kind, guardOn, options, img, aio));
            } catch (Throwable e) {
                result.completeExceptionally(e);
            }
        }, "repro-000-" + kind, STACK_BYTES);
        t.setDaemon(true);
        t.start();
        return AioContext.await(result, options.timeLimit().plus(options.hangAfter().multipliedBy(2)));
    }

    /** Runs on the workload thread, the home of its own context. */
    private static Outcome workload(String kind, boolean guardOn, ReproOptions options, String img, AioMode aio) {
        Outcome out = new Outcome();
        AioContext ctx = AioContext.forCurrentThread("repro-000-" + kind);
        ctx.setGuard(Guard.SUBMIT_DEPTH, guardOn);
        long deviceBytes = (long) SLOTS * BLOCKS_PER_SLOT * BLOCK;
        BlockDriver driver;
        if (kind.equals("file")) {
            int fd = FileIo.open(img, FileIo.O_RDWR | FileIo.O_CREAT | FileIo.O_CLOEXEC, 0600);
            if (fd < 0) {
                throw new IllegalStateException("cannot create the image: " + Errno.name(fd));
            }
            // Written out, not sparse: a buffered write that must allocate a block is one that
            // io_uring hands to its async workers on ext4, which would break the cycle it shows.
            try (Arena a = Arena.ofConfined()) {
                MemorySegment zeros = a.allocate(deviceBytes, BLOCK);
                long done = 0;
                while (done < deviceBytes) {
                    long w = FileIo.write(fd, zeros.address() + done, deviceBytes - done);
                    if (w <= 0) {
                        FileIo.close(fd);
                        throw new IllegalStateException("cannot write the image: " + Errno.name((int) w));
                    }
                    done += w;
                }
            }
            // Clean before the run: a page still under writeback when the loop rewrites it is
            // another write io_uring hands to its workers.
            int synced = FileIo.fdatasync(fd);
            FileIo.close(fd);
            if (synced < 0) {
                throw new IllegalStateException("cannot sync the image: " + Errno.name(synced));
            }
            driver = FileDriver.open(img, aio, FileDriver.Cache.WRITEBACK, false);
        } else {
            driver = new NullDriver(deviceBytes, NullDriver.Completion.SYNC);
        }
        BlockChannel ch = driver.openChannel(ctx);
        // Both drivers submit through the one submission queue: its guard and its submit count.
        SubmissionQueue engine = (SubmissionQueue) ((ChannelBase) ch).engine();
        SubmitGuard guard = engine.submitGuard();
        Timer watchdog = ctx.timer("repro-000-watchdog", () -> { });
        try (Arena arena = Arena.ofConfined()) {
            int requests = guardOn ? options.iterations() : Math.max(options.iterations(), OVERFLOW_REQUESTS);
            Loop loop = new Loop(ch, guard::depth, arena, requests, guardOn, kind.equals("file"));
            long deadline = System.nanoTime() + options.timeLimit().toNanos();
            try {
                DeferCall dc = ctx.deferCall();
                dc.begin(); // the first wave goes down in one submission, as from a guest kick
                loop.startAll();
                dc.end();
                long lastProgress = System.nanoTime();
                long lastCompleted = -1;
                while (!loop.finished() && loop.broken == null) {
                    if (loop.completed != lastCompleted) {
                        lastCompleted = loop.completed;
                        lastProgress = System.nanoTime();
                    } else if (System.nanoTime() - lastProgress > options.hangAfter().toNanos()) {
                        loop.broken = "no completion for " + options.hangAfter().toMillis() + " ms with "
                                + ch.inFlight() + " requests outstanding: requests were lost";
                        break;
                    }
                    if (System.nanoTime() - deadline > 0) {
                        break;
                    }
                    watchdog.armIn(options.hangAfter().toNanos() / 4);
                    ctx.poll(true);
                }
            } catch (StackOverflowError e) {
                // Caught below every frame of the cycle: the stack is unwound, this frame has room.
                out.overflow = e;
            }
            watchdog.cancel();
            out.maxDepth = guard.maxDepth();
            out.capHits = guard.capHits();
            out.completed = loop.completed;
            out.syncCompletions = loop.syncCompletions;
            out.ioSubmits = engine.submitCalls();
            out.broken = loop.broken;
            out.stoppedByLimit = loop.stoppedByLimit > 0;
            // Guard off, a run that ended at the time limit has requests in flight: not a loss.
            if (out.broken == null && out.overflow == null && (guardOn || loop.finished())) {
                out.broken = loop.check();
            }
            if (out.overflow == null) {
                ch.close();
                driver.close();
                ctx.close();
            } else {
                // The unwound stack left the engine mid-update (in-flight counts, its ring): the
                // channel and engine are abandoned, not closed; the image's fd and the context go.
                driver.close();
                out.abandoned = "channel,engine";
                try {
                    ctx.close();
                } catch (IllegalStateException e) {
                    // A bottom half the overflow left scheduled: the context dies with this thread.
                    out.abandoned = "channel,engine,context";
                }
            }
        }
        return out;
    }

    /**
     * The distinct frames ({@code Class.method}) of one turn of the cycle, outermost first, read
     * from {@code e}'s stack trace between two consecutive {@code SubmissionQueue.ioqSubmit} frames;
     * {@code none} without an overflow, {@code unknown} if the trace holds no full turn.
     */
    static String cycle(StackOverflowError e) {
        if (e == null) {
            return "none";
        }
        StackTraceElement[] t = e.getStackTrace();
        int inner = -1;
        for (int i = 0; i < t.length; i++) {
            if (!isSubmit(t[i])) {
                continue;
            }
            if (inner < 0) {
                inner = i;
                continue;
            }
            LinkedHashSet<String> frames = new LinkedHashSet<>();
            for (int j = i; j > inner; j--) { // outer ioqSubmit down to the frame that re-enters it
                String c = t[j].getClassName();
                frames.add(c.substring(c.lastIndexOf('.') + 1) + "." + t[j].getMethodName());
            }
            return String.join(">", frames);
        }
        return "unknown";
    }

    /** Per scenario: {@code yes}; guard off without an overflow, {@code missed}; guard on, {@code no}. */
    private static String overflowSeen(Outcome o, boolean guardOn) {
        return o.overflow != null ? "yes" : guardOn ? "no" : "missed";
    }

    private static boolean isSubmit(StackTraceElement f) {
        return f.getClassName().equals(SubmissionQueue.class.getName()) && f.getMethodName().equals("ioqSubmit");
    }

    /**
     * The closed loop: slot {@code s} writes its next block with a fresh pattern, reads it back and
     * checks it, then moves on. Requests are preallocated; the callback submits the next one at
     * once, which is what closes seed 000's cycle.
     *
     * <p>Home thread: the workload thread. No locking.
     */
    static final class Loop implements IoCompletion {
        final BlockChannel ch;
        final IntSupplier depth;
        final int total;
        final boolean guardOn;
        final boolean persists;
        final BlockIo[] ios = new BlockIo[SLOTS];
        final MemorySegment[] wbuf = new MemorySegment[SLOTS];
        final MemorySegment[] rbuf = new MemorySegment[SLOTS];
        final MemorySegment zero;
        final long[] seq = new long[SLOTS];
        final boolean[] outstanding = new boolean[SLOTS];
        final boolean[] idle = new boolean[SLOTS];
        long issued;
        long completed;
        long syncCompletions;
        long stoppedByLimit;
        long doubles;
        String broken;

        Loop(BlockChannel ch, IntSupplier depth, Arena arena, int total, boolean guardOn, boolean persists) {
            this.ch = ch;
            this.depth = depth;
            this.total = total;
            this.guardOn = guardOn;
            this.persists = persists;
            this.zero = arena.allocate(BLOCK, BLOCK);
            for (int s = 0; s < SLOTS; s++) {
                ios[s] = new BlockIo(arena, 1);
                ios[s].tag = s;
                wbuf[s] = arena.allocate(BLOCK, BLOCK);
                rbuf[s] = arena.allocate(BLOCK, BLOCK);
            }
        }

        void startAll() {
            for (int s = 0; s < SLOTS; s++) {
                issueWrite(s);
            }
        }

        boolean finished() {
            for (int s = 0; s < SLOTS; s++) {
                if (!idle[s]) {
                    return false;
                }
            }
            return true;
        }

        private long offset(int s) {
            long block = (seq[s] % BLOCKS_PER_SLOT) * SLOTS + s;
            return block * BLOCK;
        }

        private void issueWrite(int s) {
            if (issued >= total) {
                idle[s] = true;
                return;
            }
            seq[s]++;
            MemorySegment w = wbuf[s];
            for (int i = 0; i < BLOCK; i += 8) {
                w.set(ValueLayout.JAVA_LONG, i, seq[s] * 1_000_003L + s * 31L + i);
            }
            submit(s, BlockIo.WRITE, w);
        }

        private void issueRead(int s) {
            rbuf[s].fill((byte) 0x5a);
            submit(s, BlockIo.READ, rbuf[s]);
        }

        private void submit(int s, int op, MemorySegment buf) {
            BlockIo io = ios[s].rw(op, offset(s), this);
            io.iov.add(buf.address(), BLOCK);
            issued++;
            outstanding[s] = true;
            ch.submit(io);
        }

        @Override
        public void ioCompleted(BlockIo io, long result) {
            int s = io.tag;
            if (!outstanding[s]) {
                doubles++;
                broken = "request of slot " + s + " completed twice";
                return;
            }
            outstanding[s] = false;
            completed++;
            if (depth.getAsInt() > 0) {
                syncCompletions++; // completed inside a submit frame, not from the loop
            }
            if (result != BLOCK) {
                broken = BlockIo.opName(io.op) + " at " + io.offset + " failed: " + Errno.describe(result);
                idle[s] = true;
                return;
            }
            if (io.op == BlockIo.READ) {
                MemorySegment want = persists ? wbuf[s] : zero;
                if (rbuf[s].mismatch(want) != -1) {
                    broken = "block at " + io.offset + " read back wrong (sequence " + seq[s] + ")";
                    idle[s] = true;
                    return;
                }
            }
            // Guard off: a stack that has not overflowed by this depth never will; stop feeding it.
            if (!guardOn && depth.getAsInt() >= DEPTH_LIMIT) {
                stoppedByLimit++;
                idle[s] = true;
                return;
            }
            if (io.op == BlockIo.WRITE) {
                issueRead(s);
            } else {
                issueWrite(s);
            }
        }

        /** Null when every request completed once and the loop ended cleanly. */
        String check() {
            if (doubles > 0) {
                return doubles + " double completions";
            }
            if (completed != issued) {
                return (issued - completed) + " of " + issued + " requests never completed";
            }
            if (!finished()) {
                return "the workload did not finish within the time limit (" + completed + " done)";
            }
            return null;
        }
    }
}
