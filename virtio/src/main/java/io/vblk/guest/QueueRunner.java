package io.vblk.guest;

import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicLong;

import static io.vblk.guest.BlkWireLayout.*;

/**
 * Home thread: its own vCPU thread (started by {@link WorkloadRun}); set-up happens before the
 * thread starts. No locking; other threads read only {@link #progress} and {@link #stop}.
 *
 * <p>One guest vCPU running a {@link Workload} on one queue: a closed loop that keeps the queue
 * depth's worth of requests in flight, reaps completions when the call eventfd fires (or by
 * polling the used ring), re-posts from the completion, and kicks once per pass.
 *
 * <p>Why a plain thread and not an {@code AioContext}: a guest vCPU sleeps until its interrupt and
 * then runs the driver's handler; a thread blocked in {@code poll(2)} on the call eventfd is exactly
 * that, costs one poll and one read per interrupt, and keeps the guest outside the event-loop
 * machinery under test — a drained section, a guard switched off or a stuck loop on the device
 * side cannot change how the guest behaves, only what it observes.
 */
final class QueueRunner implements Runnable {
    private static final int PHASE_MAIN = 0;
    private static final int PHASE_READBACK = 1;
    private static final int WAIT_MS = 100;
    private static final ThreadMXBean THREADS = ManagementFactory.getThreadMXBean();
    /** HotSpot's per-thread allocation counter, when the JVM has it. */
    private static final com.sun.management.ThreadMXBean ALLOC =
            THREADS instanceof com.sun.management.ThreadMXBean t && t.isThreadAllocatedMemorySupported() ? t : null;

    private final GuestBlkQueue q;
    private final Workload w;
    private final QueueStats stats;
    private final SplittableRandom rnd;
    private final VerifyPattern pattern = new VerifyPattern();
    private final boolean interrupts;
    private final int readPercent;
    private final int sectorsPerBlock;
    private final long firstBlock;
    private final long blocks;
    private final long requestLimit;
    private final GuestBlkQueue.Completion onCompletion = this::completed;

    /** Generation last written to each block of this queue's region (verify mode; 0 = never). */
    private final long[] generation;
    /** Blocks with a request in flight (verify mode: never two on one block at once). */
    private final boolean[] busy;

    /** Completed requests, published for progress reports (release store, read by any thread). */
    final AtomicLong progress = new AtomicLong();
    /** Requests made available to the device, published at each kick (release store, read by any thread). */
    final AtomicLong postedProgress = new AtomicLong();
    volatile boolean stop;
    private volatile long deadline;

    private int phase;
    private long issued;
    private long seqBlock;
    private long nextGeneration = 1;
    private long readBackCursor;
    private boolean posted;
    private long now;
    private long startNanos;
    private long lastProgressNanos;

    QueueRunner(GuestBlkQueue q, Workload w, long firstBlock, long blocks, long requestLimit) {
        this.q = q;
        this.w = w;
        this.stats = new QueueStats(q.index());
        this.rnd = new SplittableRandom(w.seed() * 0x9E3779B97F4A7C15L + q.index());
        this.interrupts = q.callFd() >= 0;
        this.readPercent = w.effectiveReadPercent();
        this.sectorsPerBlock = w.blockSize() / SECTOR_BYTES;
        this.firstBlock = firstBlock;
        this.blocks = blocks;
        this.requestLimit = requestLimit;
        if (w.verify()) {
            if (blocks > Integer.MAX_VALUE) {
                throw new IllegalArgumentException("verify mode tracks at most 2^31 blocks per queue; region has "
                        + blocks);
            }
            generation = new long[(int) blocks];
            busy = new boolean[(int) blocks];
        } else {
            generation = null;
            busy = null;
        }
        if (q.slotCount() < w.queueDepth()) {
            throw new IllegalArgumentException("queue depth " + w.queueDepth() + " exceeds the " + q.slotCount()
                    + " request slots of queue " + q.index());
        }
        if (q.slot(0).dataCapacity() < w.blockSize()) {
            throw new IllegalArgumentException("block size " + w.blockSize() + " exceeds the slots' "
                    + q.slot(0).dataCapacity() + "-byte buffers");
        }
    }

    QueueStats stats() {
        return stats;
    }

    /** Sets the wall-clock end (nanoTime) of the main phase; called before the thread starts. */
    void deadline(long nanos) {
        this.deadline = nanos;
    }

    @Override
    public void run() {
        long cpu0 = THREADS.getCurrentThreadCpuTime();
        long alloc0 = ALLOC == null ? 0 : ALLOC.getCurrentThreadAllocatedBytes();
        q.onCompletion(onCompletion);
        startNanos = System.nanoTime();
        lastProgressNanos = startNanos;
        now = startNanos;
        try {
            loop();
            if (w.verify() && stats.firstError == null) {
                phase = PHASE_READBACK;
                readBackCursor = 0;
                loop();
            }
        } catch (RuntimeException e) {
            stats.fail(e.toString());
        } finally {
            stats.elapsedNanos = System.nanoTime() - startNanos;
            stats.cpuNanos = THREADS.getCurrentThreadCpuTime() - cpu0;
            stats.allocatedBytes = ALLOC == null ? -1 : ALLOC.getCurrentThreadAllocatedBytes() - alloc0;
            stats.kicks = q.kicks();
            stats.kicksSuppressed = q.kicksSuppressed();
            stats.wakeups = q.wakeups();
            stats.notifications = q.notifications();
            stats.posted = q.posted();
            stats.inFlightAtEnd = q.inFlight();
            progress.set(stats.completed);
        }
    }

    /** Keeps the queue full until nothing more may be issued and nothing is in flight. */
    private void loop() {
        fill();
        kickIfPosted();
        // One pass per call, so the JIT compiles the pass as an ordinary method (with escape
        // analysis) instead of relying on on-stack replacement of a loop each vCPU thread enters once.
        while (pass()) {
            // next pass
        }
    }

    /**
     * Reaps what the device returned (re-posting from each completion) and kicks once, or waits
     * for the next interrupt. Returns false once nothing is in flight and nothing more may be issued.
     */
    private boolean pass() {
        now = System.nanoTime();
        int n = q.reap();
        if (n > 0) {
            stats.reapPasses++;
            lastProgressNanos = now;
            progress.lazySet(stats.completed);
            // Slots a pass could not re-post (no free block) get another chance now.
            fill();
            kickIfPosted();
            return true;
        }
        if (q.inFlight() == 0) {
            return false;
        }
        if (now - lastProgressNanos > w.stallNanos()) {
            throw new IllegalStateException("no completion for " + (now - lastProgressNanos) / 1_000_000
                    + " ms with " + q.inFlight() + " requests in flight; " + q.vring());
        }
        if (interrupts) {
            if (q.enableInterrupts()) {
                q.awaitInterrupt(WAIT_MS);
            }
        } else {
            Thread.onSpinWait();
        }
        return true;
    }

    /** Posts requests until the queue depth is reached or nothing more may be issued. */
    private void fill() {
        while (q.inFlight() < w.queueDepth() && canIssue()) {
            BlkSlot s = q.acquire();
            if (s == null) {
                return;
            }
            if (!issue(s)) {
                q.release(s);
                return;
            }
        }
    }

    private void kickIfPosted() {
        if (posted) {
            posted = false;
            q.kick();
            postedProgress.lazySet(q.posted());
        }
    }

    private boolean canIssue() {
        if (stats.firstError != null) {
            return false;
        }
        if (phase == PHASE_READBACK) {
            while (readBackCursor < blocks && (generation[(int) readBackCursor] == 0 || busy[(int) readBackCursor])) {
                readBackCursor++;
            }
            return readBackCursor < blocks;
        }
        if (stop) {
            return false;
        }
        if (requestLimit > 0) {
            return issued < requestLimit;
        }
        return now - deadline < 0;
    }

    /** Chooses and posts the next request on {@code s}; false when no block is free for it. */
    private boolean issue(BlkSlot s) {
        long block;
        boolean read;
        if (phase == PHASE_READBACK) {
            block = readBackCursor++;
            read = true;
        } else {
            read = readPercent == 100 || (readPercent > 0 && rnd.nextInt(100) < readPercent);
            block = pickBlock();
            if (block < 0) {
                return false;
            }
        }
        long sector = (firstBlock + block) * sectorsPerBlock;
        s.user1 = block;
        if (read) {
            s.user0 = generation == null ? 0 : generation[(int) block];
            q.postRead(s, sector, w.blockSize(), w.segments());
        } else {
            long gen = 0;
            if (generation != null) {
                gen = nextGeneration++;
                pattern.fill(s.data(), s.dataBuffer(), w.blockSize(), sector, gen);
            }
            s.user0 = gen;
            q.postWrite(s, sector, w.blockSize(), w.segments());
        }
        if (busy != null) {
            busy[(int) block] = true;
        }
        if (phase == PHASE_MAIN) {
            issued++;
        }
        posted = true;
        return true;
    }

    /** The next block for the main phase, skipping blocks busy in verify mode; -1 when none is free. */
    private long pickBlock() {
        for (int attempt = 0; attempt < 64; attempt++) {
            long b;
            if (w.pattern().random()) {
                b = rnd.nextLong(blocks);
            } else {
                b = seqBlock;
                seqBlock = seqBlock + 1 == blocks ? 0 : seqBlock + 1;
            }
            if (busy == null || !busy[(int) b]) {
                return b;
            }
        }
        return -1;
    }

    private void completed(BlkSlot s, int status, int usedLen) {
        stats.completed++;
        stats.latency.record(now - s.submitNanos());
        long block = s.user1;
        boolean read = s.type() == T_IN;
        if (busy != null) {
            busy[(int) block] = false;
        }
        if (status == S_OK) {
            if (read) {
                stats.reads++;
                stats.bytesRead += s.dataBytes();
                // 2.7.8.1 / 5.2.6: a read's used length covers the data and the status byte.
                if (usedLen != s.dataBytes() + STATUS_BYTES) {
                    stats.fail("read of " + s.dataBytes() + " bytes at sector " + s.sector()
                            + " came back with used length " + usedLen);
                }
                if (generation != null) {
                    checkRead(s);
                }
            } else {
                stats.writes++;
                stats.bytesWritten += s.dataBytes();
                if (generation != null) {
                    generation[(int) block] = s.user0;
                }
            }
        } else if (status == S_IOERR) {
            stats.ioErrors++;
            stats.fail(typeName(s.type()) + " at sector " + s.sector() + " failed with IOERR");
        } else if (status == S_UNSUPP) {
            stats.unsupported++;
            stats.fail(typeName(s.type()) + " at sector " + s.sector() + " came back UNSUPP");
        } else {
            stats.badStatus++;
            stats.fail(typeName(s.type()) + " at sector " + s.sector() + " has status byte " + status);
        }
        if (phase == PHASE_READBACK && read) {
            stats.readBackBlocks++;
        }
        if (!canIssue() || !issue(s)) {
            q.release(s);
        }
    }

    private void checkRead(BlkSlot s) {
        long expect = s.user0;
        if (expect == 0) {
            stats.unverifiedReads++;
            return;
        }
        for (int off = 0; off < s.dataBytes(); off += SECTOR_BYTES) {
            long sector = s.sector() + off / SECTOR_BYTES;
            int r = pattern.check(s.data(), s.dataBuffer(), off, sector, expect);
            if (r != VerifyPattern.OK) {
                stats.verifyFailures++;
                stats.fail("verify failed at sector " + sector + ": " + VerifyPattern.describe(r) + " (expected generation "
                        + expect + ", found " + VerifyPattern.generationAt(s.data(), off) + " for sector "
                        + VerifyPattern.sectorAt(s.data(), off) + ")");
                return;
            }
            stats.verifiedSectors++;
        }
    }
}
