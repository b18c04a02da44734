package io.vblk.drivers.job;

import io.vblk.drivers.BlockChannel;
import io.vblk.drivers.BlockIo;
import io.vblk.drivers.WriteGate;
import io.vblk.drivers.node.BlockNode;
import io.vblk.drivers.node.DirtyBitmap;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;

/**
 * Home thread: the main loop. No locking; the one piece of state the source's IoThreads read,
 * {@link #notCopied}, is a {@link DirtyBitmap} (atomic words) cleared only here.
 *
 * <p>{@code blockdev-backup sync=full}: a point-in-time copy of {@code source} into
 * {@code target} while the guest writes, by QEMU's copy-before-write idea (block/copy-before-write.c
 * and block/block-copy.c). The point in time is the moment the filter goes in: inside a drained
 * section of the source (no guest request in flight, none taken), {@link #notCopied} is set for
 * every chunk and the job becomes the source's write filter ({@link BlockNode#setWriteFilter}).
 * From then on, on each IoThread, a guest write whose chunks are all copied starts at once (one
 * bitmap scan, no allocation); one that would overwrite a chunk not yet copied is kept and handed
 * to this thread, which copies those chunks first — outside the rate limit and the pause, as
 * QEMU's filter does — and hands the write back to its IoThread once each chunk's old data is in
 * the target. A chunk's bit in {@code notCopied} is cleared only after its target write completed,
 * so a write that sees it clear can never overwrite data the backup still needs.
 *
 * <p>The background copy is {@link MirrorJob}'s copy loop and rate limit, unchanged, over a
 * bitmap of chunks still to copy that guest writes do not mark (the data wanted is the old data):
 * a chunk the filter copied is clean there and the loop skips it; the run ends when nothing is
 * left, without a ready state or a pivot. Errors of the background copy follow
 * {@code on-source-error} / {@code on-target-error} as the mirror's do. A failed copy that a guest
 * write waits for breaks the point in time (QEMU's {@code on-cbw-error=break-snapshot}): the write
 * goes on and the job ends with an error. The job never writes the source: cancel and every error
 * path leave it as the guest wrote it; the filter comes out when the job cleans up and every kept
 * write is started then.
 */
public final class BackupJob extends MirrorJob {
    /** QEMU's backup cluster size when the target gives none (64 KiB). */
    public static final int DEFAULT_CLUSTER = 64 << 10;

    /** The job's error once a copy a guest write waited for failed. */
    public static final String BROKEN = "Copy-before-write failed: the backup is no longer a point-in-time copy";

    /** Chunks whose old data is not in the target yet: read on any thread, cleared here. */
    private final DirtyBitmap notCopied;
    private final WriteGate cbw = this::admit;
    /** Guest writes kept by the filter, in arrival order. */
    private final ArrayDeque<Held> held = new ArrayDeque<>();
    private boolean filterOn;
    /** Between the start's drain and the filter going in. */
    private boolean starting;
    /** A copy a guest write waited for failed: from then on the filter lets every write through. */
    private volatile boolean broken;
    private boolean serving;
    private boolean serveAgain;
    private long keptWrites;

    private record Held(BlockChannel ch, BlockIo io) {
    }

    /** A backup of {@code source} to {@code target} (same size), not started; {@link Jobs#start} starts it. */
    public BackupJob(Jobs jobs, String id, BlockNode source, BlockNode target, long speed, int cluster,
                     OnError onSource, OnError onTarget, boolean autoFinalize, boolean autoDismiss) {
        super(jobs, id, source, target, speed, cluster, onSource, onTarget, autoFinalize, autoDismiss, false);
        this.notCopied = new DirtyBitmap(source.driver().length(), cluster);
    }

    @Override
    public String type() {
        return "backup";
    }

    /** Guest writes the filter kept until the old data was copied. Home thread. */
    public long keptWrites() {
        return keptWrites;
    }

    /** Whether the filter is in the source's write path (the point in time has been taken). Home thread. */
    public boolean filterOn() {
        return filterOn;
    }

    // ---------------------------------------------------------------- the copy loop's hooks

    @Override
    void trackWrites() {
        // Nothing: a guest write does not make a chunk dirty again; the backup wants the old data.
    }

    /**
     * The point in time. The job is paused while the source is drained, as QEMU's is (its
     * JOB_STATUS_CHANGE shows running, paused, running); a cancel or a failure meanwhile takes
     * effect after the resume: a paused job cannot end its run (QEMU's transition table).
     */
    @Override
    protected void run() {
        BlockNode source = source();
        starting = true;
        drainPause();
        source.drainedBegin().whenComplete((v, e) -> {
            // On this home thread, with the source quiet.
            String err = null;
            if (!cancelRequested()) {
                notCopied.markAll();
                bitmap().markAll();
                try {
                    source.setWriteFilter(cbw);
                    filterOn = true;
                } catch (RuntimeException ex) {
                    err = "Cannot start backup: " + ex.getMessage();
                }
            }
            source.drainedEnd();
            starting = false;
            drainResume(); // the copy loop starts here (resumeWork pumps), or at the user's resume
            if (err != null) {
                fail(err);
            } else if (!filterOn) {
                cancelWork(); // cancelled while starting
            }
        });
    }

    @Override
    protected void cancelWork() {
        if (!starting) {
            super.cancelWork();
        }
    }

    @Override
    protected void speedChanged() {
        if (!starting) {
            super.speedChanged();
        }
    }

    @Override
    void converged() {
        // A backup has no ready state: it ends once every chunk is copied.
    }

    @Override
    void idle() {
        if (filterOn) {
            endRun(null); // every chunk copied, nothing in flight
        }
    }

    @Override
    void copyEnded(long c, boolean ok) {
        if (ok) {
            notCopied.testAndClear(c); // after the target write completed: see the class comment
            serve();
            return;
        }
        for (Held h : held) {
            if (touches(h.io, c)) {
                broken = true;
                releaseAll();
                fail(BROKEN); // unless the policy reported the I/O error first
                return;
            }
        }
    }

    @Override
    protected void complete() {
        throw new JobException("The active block job '" + id() + "' cannot be completed");
    }

    // ---------------------------------------------------------------- the filter

    /** On the channel's IoThread: admit a write whose chunks are all copied; keep any other. */
    private boolean admit(BlockChannel ch, BlockIo io) {
        if (broken || !notCopied.anyDirty(io.offset, io.byteLength())) {
            return true;
        }
        home.runOn(() -> hold(ch, io)); // not the fast path: a first write to a chunk not yet copied
        return false;
    }

    private void hold(BlockChannel ch, BlockIo io) {
        if (!filterOn || broken) {
            start(ch, io); // the job ended or broke meanwhile
            return;
        }
        keptWrites++;
        held.add(new Held(ch, io));
        serve();
    }

    /**
     * Copies what the kept writes wait for and starts each whose chunks are all copied. Re-entered
     * only through {@code serveAgain}.
     */
    private void serve() {
        if (serving) {
            serveAgain = true; // a copy completing inside copyNow's submit: the outer loop goes on
            return;
        }
        serving = true;
        try {
            do {
                serveAgain = false;
                List<Held> ready = new ArrayList<>();
                for (Held h : List.copyOf(held)) {
                    if (waitsFor(h.io)) {
                        continue;
                    }
                    if (held.remove(h)) { // not already started by a clean-up inside copyNow's completion
                        ready.add(h);
                    }
                }
                for (Held h : ready) {
                    start(h.ch, h.io);
                }
            } while (serveAgain);
        } finally {
            serving = false;
        }
    }

    /** Whether {@code io} still waits for a chunk; issues the copies it waits for that have a free slot. */
    private boolean waitsFor(BlockIo io) {
        DirtyBitmap b = notCopied;
        long first = io.offset / b.granularity();
        long last = (Math.min(b.length(), io.offset + io.byteLength()) - 1) / b.granularity();
        boolean waits = false;
        for (long c = first; c <= last; c++) {
            if (b.isDirty(c)) {
                waits = true;
                copyNow(c); // false: a slot frees or its copy completes, and copyEnded() serves again
            }
        }
        return waits;
    }

    private boolean touches(BlockIo io, long c) {
        long off = notCopied.offsetOf(c);
        return io.offset < off + notCopied.bytesOf(c) && off < io.offset + io.byteLength();
    }

    private static void start(BlockChannel ch, BlockIo io) {
        ch.context().runOn(() -> ch.startGated(io));
    }

    private void releaseAll() {
        while (!held.isEmpty()) {
            Held h = held.poll();
            start(h.ch, h.io);
        }
    }

    /** The filter comes out and every kept write starts; then the mirror's clean-up (channels, buffers). */
    @Override
    protected void clean() {
        if (filterOn) {
            filterOn = false;
            source().setWriteFilter(null);
        }
        releaseAll();
        super.clean();
    }

    @Override
    public String toString() {
        return super.toString() + ", chunks not copied " + notCopied.count() + ", kept writes " + held.size()
                + (broken ? ", broken" : "");
    }
}
