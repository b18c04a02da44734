package io.vblk.drivers.job;

import io.vblk.aio.Guard;
import io.vblk.aio.Timer;
import io.vblk.aio.sys.Errno;
import io.vblk.drivers.BlockChannel;
import io.vblk.drivers.BlockIo;
import io.vblk.drivers.IoCompletion;
import io.vblk.drivers.node.BlockNode;
import io.vblk.drivers.node.DirtyBitmap;
import io.vblk.drivers.node.DrainParent;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.function.Consumer;

/**
 * Home thread: the main loop. No locking: its channels on both nodes are opened on the main loop,
 * so every completion comes back here.
 *
 * <p>{@code blockdev-mirror sync=full}, as QEMU's block/mirror.c: a {@link DirtyBitmap} on the
 * source (every chunk dirty at the start, and every guest write marks it again) drives a copy loop
 * of at most {@link #MAX_IN_FLIGHT} chunk copies, each a read from the source whose completion
 * writes the target; the job is ready after the first pass once little is left
 * ({@link #nearlyConverged}), and keeps copying what the guest dirties after that.
 *
 * <p>The pivot ({@code job-complete}), where seed 003's data loss happened: (1) no new copy is
 * issued, and once none is in flight (2) the source begins a drained section: every parent (each
 * device, on each of its IoThreads) stops taking guest requests and the node waits until nothing
 * is in flight on any channel, so every guest write has completed and marked the bitmap; (3) the
 * last dirty chunks are copied inside the section; (4) the run ends holding the drain; at
 * finalize ({@link #prepare}) the target is drained too and every parent moves to it
 * ({@link BlockNode#replaceParents}); (5) clean ends both sections, and the devices resume on the
 * target, re-checking their rings. No guest request can reach the source between (3) and (4)
 * because the devices take none until (5). A cancel — before or after ready — ends the section
 * without moving anyone: the source stays in use and the target is left as a partial copy.
 *
 * <p>Re-entry (seed 000): a synchronously completing driver runs {@link #readDone} inside the read's
 * submit and {@link #writeDone} inside the write's; writeDone asks {@link #pump} for the next copy.
 * The cycle pump → submit → readDone → submit → writeDone → pump is cut at the {@code pumping}
 * flag: an inner pump only sets {@code again} and the outer loop goes on, so the stack stays
 * bounded whatever the drivers do. The cut is seed 000's guard ({@link Guard#SUBMIT_DEPTH} of the
 * job's context, with the submission queue's depth cap).
 *
 * <p>{@link BackupJob} runs on this same copy loop and rate limit, through package-private hooks.
 */
public sealed class MirrorJob extends Job permits BackupJob {
    private static final System.Logger LOG = System.getLogger(MirrorJob.class.getName());
    /** QEMU's default mirror granularity when the target has no cluster size (64 KiB). */
    public static final int DEFAULT_GRANULARITY = 64 << 10;
    /** QEMU block/mirror.c MAX_IN_FLIGHT: copies in flight at once. */
    public static final int MAX_IN_FLIGHT = 16;
    /** QEMU's BLOCK_JOB_SLICE_TIME: the rate limit's accounting slice, 100 ms. */
    static final long SLICE_NANOS = 100_000_000L;
    /** How often a converged mirror looks at the bitmap for guest writes to copy. */
    static final long IDLE_SCAN_NANOS = 2_000_000L;
    /** The pause the pivot's last copy may take at the copy rate so far ({@link #nearlyConverged}). */
    static final long READY_PAUSE_NANOS = 50_000_000L;

    private final BlockNode source;
    private final BlockNode target;
    private final OnError onSource;
    private final OnError onTarget;
    private final DirtyBitmap bitmap;
    private final Timer timer;
    private final IoCompletion readDone = this::readDone;
    private final IoCompletion writeDone = this::writeDone;

    private Arena arena;
    private BlockIo[] ops;
    private long[] opChunk;
    private long[] opAddr;
    private int[] free;
    private int freeTop;
    private int inFlight;
    private long inFlightBytes;
    private BlockChannel src;
    private BlockChannel dst;
    private long cursor;
    private boolean pumping;
    private boolean again;
    private boolean completeRequested;
    /** Between asking for the source's drain and its completion. */
    private boolean draining;
    private boolean drainHeld;
    private boolean targetDrained;
    private boolean runDone;
    private boolean pivoted;
    private long sliceEnd;
    private long sliceBytes;
    private long bytesCopied;
    private long lateChunks = -1;
    /** Every chunk has been looked at once (the bulk phase is over). */
    private boolean firstPassDone;
    private long lastReadyCheck = Long.MIN_VALUE / 2;
    private long runStart;
    /** The error a report policy ends the run with, once the copies in flight are back. */
    private String failure;

    /**
     * A mirror of {@code source} to {@code target} (same size), not started; {@link Jobs#start}
     * starts it. {@code granularity} is the bitmap's (and the copy's) chunk size.
     */
    public MirrorJob(Jobs jobs, String id, BlockNode source, BlockNode target, long speed, int granularity,
                     OnError onSource, OnError onTarget, boolean autoFinalize, boolean autoDismiss) {
        this(jobs, id, source, target, speed, granularity, onSource, onTarget, autoFinalize, autoDismiss, true);
    }

    /** {@code pivots}: the job may move the source's parents to the target (a mirror; a backup does not). */
    MirrorJob(Jobs jobs, String id, BlockNode source, BlockNode target, long speed, int granularity,
              OnError onSource, OnError onTarget, boolean autoFinalize, boolean autoDismiss, boolean pivots) {
        super(jobs, id, autoFinalize, autoDismiss, speed);
        home.assertHome();
        if (source == target) {
            throw new JobException("Can't mirror node into itself");
        }
        if (target.driver().readOnly()) {
            throw new JobException("Block node is read-only");
        }
        long len = source.driver().length();
        if (target.driver().length() != len) {
            throw new JobException("Source and target image have different sizes");
        }
        JobException.checkGranularity(granularity);
        for (DrainParent p : pivots ? source.parents() : List.<DrainParent>of()) {
            if (!p.canReplaceNode()) {
                throw new JobException("Cannot mirror node '" + source.name() + "': " + p.drainName()
                        + " cannot be moved to another node");
            }
        }
        this.source = source;
        this.target = target;
        this.onSource = onSource;
        this.onTarget = onTarget;
        this.bitmap = new DirtyBitmap(len, granularity);
        this.timer = home.timer("mirror " + id, this::pump);
    }

    @Override
    public String type() {
        return "mirror";
    }

    @Override
    public List<BlockNode> nodes() {
        return List.of(source, target);
    }

    public BlockNode source() {
        return source;
    }

    public BlockNode target() {
        return target;
    }

    /** Bytes written to the target so far (the metric "bytes copied"). */
    public long bytesCopied() {
        return bytesCopied;
    }

    /** Whether the job ended by moving the parents to the target. */
    public boolean pivoted() {
        return pivoted;
    }

    /**
     * Chunks a guest write dirtied on the source after the pivot's last copy, counted when the job
     * cleans up; -1 before that, or when no pivot ran. Always 0 while seed 003's guard is on.
     */
    public long lateChunks() {
        return lateChunks;
    }

    /** The bitmap the copy follows (read it on the main loop). */
    public DirtyBitmap bitmap() {
        return bitmap;
    }

    @Override
    public boolean busy() {
        return inFlight > 0;
    }

    @Override
    protected long remaining() {
        return bitmap.dirtyBytes() + inFlightBytes;
    }

    // ---------------------------------------------------------------- start

    @Override
    protected void setUp() {
        int align = Math.max(4096, Math.max(source.driver().alignment(), target.driver().alignment()));
        int gran = bitmap.granularity();
        arena = Arena.ofShared();
        MemorySegment buffers = arena.allocate((long) gran * MAX_IN_FLIGHT, align);
        ops = new BlockIo[MAX_IN_FLIGHT];
        opChunk = new long[MAX_IN_FLIGHT];
        opAddr = new long[MAX_IN_FLIGHT];
        free = new int[MAX_IN_FLIGHT];
        for (int i = 0; i < MAX_IN_FLIGHT; i++) {
            ops[i] = new BlockIo(arena, 1);
            ops[i].tag = i;
            opAddr[i] = buffers.address() + (long) i * gran;
            opChunk[i] = -1;
            free[freeTop++] = i;
        }
        try {
            src = source.openChannel(home);
            dst = target.openChannel(home);
            trackWrites();
        } catch (RuntimeException e) {
            closeChannels();
            source.removeDirtyBitmap(bitmap);
            arena.close();
            throw new JobException("Cannot start mirror: " + e.getMessage());
        }
    }

    @Override
    protected void run() {
        runStart = home.clock().nanoTime();
        bitmap.markAll();
        pump();
    }

    // Hooks for BackupJob (see the class comment); the defaults are the mirror's.
    /** Before the first copy: every write completing from here on marks the bitmap. */
    void trackWrites() {
        source.addDirtyBitmap(bitmap);
    }

    /** First pass done, little left: ready. Nothing dirty or in flight, no pivot: look again later. */
    void converged() {
        transitionToReady();
    }

    void idle() {
        timer.armIn(IDLE_SCAN_NANOS);
    }

    /** Chunk {@code c}'s copy reached the target ({@code ok}), or failed (after the policy; dirty again). */
    void copyEnded(long c, boolean ok) {
    }

    /** Copies dirty chunk {@code c} now, outside rate limit and pause; false: no free slot, or in flight. */
    boolean copyNow(long c) {
        if (runDone || freeTop == 0 || copying(c)) {
            return false;
        }
        if (bitmap.testAndClear(c)) {
            issue(c);
        }
        return true;
    }

    /** Ends the run with {@code err} once the copies in flight are back. */
    void fail(String err) {
        if (failure == null) {
            failure = err;
        }
        pump();
    }

    // ---------------------------------------------------------------- the copy loop

    /** Issues copies while slots, rate and state allow; re-entered only through {@code again}. */
    private void pump() {
        boolean outer = !pumping;
        if (!outer && home.guard(Guard.SUBMIT_DEPTH)) {
            again = true; // seed 000: the outer pump goes on; see the class comment
            return;
        }
        pumping = true; // guard off (repro submit-recursion --mode mirror): an inner pump steps itself
        try {
            do {
                again = false;
                step();
            } while (again);
        } finally {
            if (outer) {
                pumping = false;
            }
        }
    }

    private void step() {
        if (runDone || draining) {
            return;
        }
        if (failure != null || cancelRequested()) {
            if (inFlight == 0) {
                endRun(failure);
            }
            return;
        }
        if (paused()) {
            return;
        }
        if (completeRequested && !drainHeld) {
            // Step (1) of the pivot: issue nothing; drain once the copies in flight are done.
            if (inFlight == 0) {
                beginFinalDrain();
            }
            return;
        }
        boolean wrapped = false;
        while (freeTop > 0) {
            long c = bitmap.nextDirty(cursor);
            if (c < 0) {
                firstPassDone = true;
                if (wrapped || cursor == 0) {
                    break;
                }
                wrapped = true; // once per step: the chunks skipped below would loop forever
                cursor = 0;
                continue;
            }
            cursor = c + 1;
            if (copying(c)) {
                continue; // its copy's completion pumps again; then it is copied anew
            }
            if (!rateAllows(bitmap.bytesOf(c))) {
                cursor = c;
                return;
            }
            if (bitmap.testAndClear(c)) {
                issue(c);
            }
        }
        if (status() == JobStatus.RUNNING && firstPassDone && nearlyConverged()) {
            converged();
        }
        if (inFlight > 0) {
            return; // a completion pumps again
        }
        if (bitmap.nextDirty(0) >= 0) {
            again = true; // a guest write marked a chunk after the loop looked: no completion will come
            return;
        }
        if (drainHeld) {
            endRun(null); // step (3) done: the last copy inside the drained section
        } else {
            idle();
        }
    }

    /**
     * Ready: what is left fits one window of copies or {@link #READY_PAUSE_NANOS} at the copy rate
     * so far (checked once a millisecond at most: it scans the bitmap). QEMU waits for nothing
     * dirty, which a guest rewriting a small disk faster than the copy never allows; here the pivot
     * copies the rest with the devices stopped, so a bounded remainder is a bounded pause.
     */
    private boolean nearlyConverged() {
        long now = home.clock().nanoTime();
        if (now - lastReadyCheck < 1_000_000L) {
            return false;
        }
        lastReadyCheck = now;
        double perNano = bytesCopied / (double) Math.max(1, now - runStart);
        long window = Math.max((long) MAX_IN_FLIGHT * bitmap.granularity(), (long) (perNano * READY_PAUSE_NANOS));
        return bitmap.dirtyBytes() + inFlightBytes <= window;
    }

    /**
     * Whether a copy of chunk {@code c} is in flight; a second one waits (QEMU's mirror_wait_on_conflicts):
     * two target writes land in either order, and older data landing last leaves a stale chunk.
     */
    private boolean copying(long c) {
        if (inFlight == 0) {
            return false;
        }
        for (long o : opChunk) {
            if (o == c) {
                return true;
            }
        }
        return false;
    }

    /** The rate limit (QEMU's ratelimit.c): {@code speed} bytes per second, accounted per 100 ms slice. */
    private boolean rateAllows(int bytes) {
        long speed = speed();
        if (speed == 0 || drainHeld) {
            return true; // inside the pivot the guest is stopped: no limit, as QEMU's final copy
        }
        long now = home.clock().nanoTime();
        if (now - sliceEnd >= 0) {
            sliceEnd = now + SLICE_NANOS;
            sliceBytes = 0;
        }
        long quota = Math.max(1, speed * SLICE_NANOS / 1_000_000_000L);
        if (sliceBytes > 0 && sliceBytes + bytes > quota) {
            timer.armAt(sliceEnd);
            return false;
        }
        sliceBytes += bytes;
        return true;
    }

    private void issue(long chunk) {
        int i = free[--freeTop];
        int len = bitmap.bytesOf(chunk);
        opChunk[i] = chunk;
        inFlight++;
        inFlightBytes += len;
        BlockIo io = ops[i].rw(BlockIo.READ, bitmap.offsetOf(chunk), readDone);
        io.iov.add(opAddr[i], len);
        src.submit(io); // may complete inside: readDone → write → writeDone → pump (cut at `pumping`)
    }

    private void readDone(BlockIo io, long result) {
        int i = io.tag;
        if (result < 0) {
            failed(i, true, result);
            return;
        }
        int len = bitmap.bytesOf(opChunk[i]);
        BlockIo w = io.rw(BlockIo.WRITE, bitmap.offsetOf(opChunk[i]), writeDone);
        w.iov.add(opAddr[i], len);
        dst.submit(w);
    }

    private void writeDone(BlockIo io, long result) {
        int i = io.tag;
        if (result < 0) {
            failed(i, false, result);
            return;
        }
        long c = opChunk[i];
        int len = bitmap.bytesOf(c);
        progress += len;
        bytesCopied += len;
        release(i, len);
        copyEnded(c, true);
        pump();
    }

    private void release(int i, int len) {
        opChunk[i] = -1;
        inFlight--;
        inFlightBytes -= len;
        free[freeTop++] = i;
    }

    /** A copy failed: the policy decides (QEMU's {@code mirror_error_action}). */
    private void failed(int i, boolean read, long result) {
        long chunk = opChunk[i];
        release(i, bitmap.bytesOf(chunk));
        OnError.Action a = (read ? onSource : onTarget).actionFor(result);
        bitmap.mark(bitmap.offsetOf(chunk), bitmap.bytesOf(chunk)); // copied again unless the job ends
        switch (a) {
            case IGNORE -> {
                errorEvent(read, a);
                timer.armIn(IDLE_SCAN_NANOS); // not at once: a failing chunk would spin the loop
            }
            case STOP -> errorStop(read);
            case REPORT -> {
                errorEvent(read, a);
                if (failure == null) {
                    failure = (read ? "Source" : "Target") + " I/O error: " + Errno.describe(result);
                }
            }
        }
        copyEnded(chunk, false);
        pump();
    }

    // ---------------------------------------------------------------- the pivot

    @Override
    protected void complete() {
        completeRequested = true;
        pump();
    }

    /** Step (2) of the pivot: no copy in flight; drain the source and every device on it. */
    private void beginFinalDrain() {
        draining = true;
        source.drainedBegin().whenComplete((v, e) -> {
            // On this home thread: the node completes its future here.
            draining = false;
            drainHeld = true;
            pump(); // step (3): copies what the last guest writes dirtied, then ends the run
        });
    }

    /** Ends the run, once; a paused job ends it at its resume (QEMU's table has no paused → aborting). */
    void endRun(String err) {
        if (runDone || paused()) {
            return;
        }
        runDone = true;
        timer.cancel();
        if (err == null && failure != null) {
            err = failure;
        }
        runFinished(err);
    }

    // ---------------------------------------------------------------- the job's ending

    @Override
    protected boolean cancelForce(boolean force) {
        return force || !isReady(); // QEMU mirror_cancel: a soft cancel of a ready mirror completes without pivot
    }

    @Override
    protected void cancelWork() {
        timer.cancel();
        pump();
    }

    @Override
    protected void pauseWork() {
        timer.cancel();
    }

    @Override
    protected void resumeWork() {
        pump();
    }

    @Override
    protected void speedChanged() {
        timer.cancel();
        sliceEnd = home.clock().nanoTime();
        pump();
    }

    /** Step (4): with the drain held and no cancel, move every parent of the source to the target. */
    @Override
    protected void prepare(Consumer<String> done) {
        if (!drainHeld || cancelRequested()) {
            done.accept(null);
            return;
        }
        target.drainedBegin().whenComplete((v, e) -> {
            targetDrained = true;
            long dirty = bitmap.count();
            if (dirty > 0) {
                // Cannot happen while the devices are stopped: seed 003's data loss, named.
                LOG.log(System.Logger.Level.ERROR, "mirror " + id() + ": " + dirty + " chunk(s) of " + source.name()
                        + " written after the last copy");
            }
            try {
                source.replaceParents(target, () -> {
                    pivoted = true;
                    done.accept(null);
                });
            } catch (RuntimeException ex) {
                done.accept(ex.getMessage());
            }
        });
    }

    /** Step (5): both sections end (the devices resume on the target); the bitmap and channels go. */
    @Override
    protected void clean() {
        timer.cancel();
        if (pivoted) {
            lateChunks = bitmap.count();
        }
        source.removeDirtyBitmap(bitmap);
        closeChannels();
        if (drainHeld) {
            drainHeld = false;
            source.drainedEnd();
        }
        if (targetDrained) {
            targetDrained = false;
            target.drainedEnd();
        }
        if (arena != null) {
            arena.close();
            arena = null;
        }
    }

    private void closeChannels() {
        if (src != null) {
            source.closeChannel(src);
            src = null;
        }
        if (dst != null) {
            target.closeChannel(dst);
            dst = null;
        }
    }

    /** The job and its copy loop's state, for a hang's report. Home thread. */
    @Override
    public String toString() {
        return super.toString() + " copies in flight " + inFlight + ", dirty chunks " + bitmap.count()
                + (completeRequested ? ", complete requested" : "") + (draining ? ", draining source" : "")
                + (drainHeld ? ", source drained" : "") + (paused() ? ", paused" : "");
    }
}
