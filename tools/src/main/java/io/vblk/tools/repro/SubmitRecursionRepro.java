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
 * <p>Guard off: the depth grows with every request; the workload stops issuing at
 * {@link #DEPTH_LIMIT} levels (it runs in a thread with a large stack that this class owns, and a
 * {@link StackOverflowError} there is caught and reported too), and the result is
 * {@code reproduced} with {@code max_depth}. Guard on: the depth stays at the cap
 * ({@link SubmitGuard#DEFAULT_CAP}), the completion bottom half resumes the capped work, every
 * request completes exactly once and every block written reads back intact: {@code held}.
 *
 * <p>Runs on the caller's thread (no context's home thread); owns its workload thread and the
 * temporary image file.
 */
public final class SubmitRecursionRepro implements Repro {
    /** Levels of the cycle at which the guard-off workload stops issuing (seed: unbounded). */
    public static final int DEPTH_LIMIT = 200;
    /** Requests in flight per scenario (closed loop). */
    static final int SLOTS = 4;
    static final int BLOCK = 4096;
    /** Blocks per slot in the image; each slot writes then reads back its blocks in turn. */
    static final int BLOCKS_PER_SLOT = 64;
    /** Stack of the workload thread: far more than DEPTH_LIMIT levels need. */
    private static final long STACK_BYTES = 64L << 20;

    private final AioMode aio;

    /** The file scenario on Linux AIO (aio=native). */
    public SubmitRecursionRepro() {
        this(AioMode.NATIVE);
    }

    /** The file scenario on {@code aio}: {@link AioMode#NATIVE} or {@link AioMode#IO_URING}. */
    public SubmitRecursionRepro(AioMode aio) {
        if (aio != AioMode.NATIVE && aio != AioMode.IO_URING) {
            throw new IllegalArgumentException("--aio accepts native or io_uring (engines that complete inside"
                    + " submit), got '" + aio + "'");
        }
        this.aio = aio;
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
        Path dir = Files.createTempDirectory("vblk-repro-000-");
        String img = dir.resolve("image.raw").toString();
        try {
            Outcome file = runScenario("file", guardOn, options, img, aio);
            Outcome nul = runScenario("null", guardOn, options, null, aio);
            int maxDepth = Math.max(file.maxDepth, nul.maxDepth);
            String broken = file.broken != null ? "file: " + file.broken : nul.broken != null ? "null: " + nul.broken : null;
            boolean recursed = file.maxDepth > SubmitGuard.DEFAULT_CAP || nul.maxDepth > SubmitGuard.DEFAULT_CAP;
            boolean seen = recursed || broken != null;
            String detail;
            if (broken != null) {
                detail = broken;
            } else if (recursed) {
                detail = guardOn
                        ? "submit recursed past the cap although the guard is on"
                        : file.overflowed || nul.overflowed
                                ? "submit recursed until the stack overflowed"
                                : file.stoppedByLimit || nul.stoppedByLimit
                                        ? "submit recursed without bound; the workload stopped feeding it at depth " + DEPTH_LIMIT
                                        : "submit recursed to depth " + maxDepth + ", one level per completion wave,"
                                                + " until the workload ran out of requests";
            } else {
                detail = guardOn
                        ? "depth stayed at the cap; every request completed once and read back intact"
                        : "no recursion seen";
            }
            return ReproResult.of(hazard(), guardOn, seen, file.completed + nul.completed, detail)
                    .with("engine", aio.spelling())
                    .with("max_depth", maxDepth)
                    .with("file_max_depth", file.maxDepth)
                    .with("null_max_depth", nul.maxDepth)
                    .with("cap", SubmitGuard.DEFAULT_CAP)
                    .with("cap_hits", file.capHits + nul.capHits)
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
        boolean overflowed;
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
            FileIo.close(fd);
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
            Loop loop = new Loop(ch, guard::depth, arena, options.iterations(), guardOn, kind.equals("file"));
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
                out.overflowed = true;
            }
            watchdog.cancel();
            out.maxDepth = guard.maxDepth();
            out.capHits = guard.capHits();
            out.completed = loop.completed;
            out.syncCompletions = loop.syncCompletions;
            out.ioSubmits = engine.submitCalls();
            out.broken = loop.broken;
            out.stoppedByLimit = loop.stoppedByLimit > 0;
            if (out.broken == null && !out.overflowed) {
                out.broken = loop.check();
            }
            if (!out.overflowed) {
                ch.close();
                driver.close();
                ctx.close();
            } else {
                // The unwound stack left the engine's state mid-update: keep nothing, free the fds.
                driver.close();
            }
        }
        return out;
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
            // Guard off: stop feeding the cycle at the limit, so the run ends instead of crashing.
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
