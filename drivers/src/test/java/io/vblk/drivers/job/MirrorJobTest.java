package io.vblk.drivers.job;

import io.vblk.aio.AioContext;
import io.vblk.drivers.BlockChannel;
import io.vblk.drivers.BlockIo;
import io.vblk.drivers.fault.FaultRule;
import io.vblk.drivers.node.BlockNode;
import io.vblk.drivers.node.DrainParent;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.util.Random;
import java.util.concurrent.CompletableFuture;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Any thread (test code): the jobs on a main-loop IoThread, a writing parent on another IoThread.
 *
 * <p>The mirror job on real files: a full copy while a parent writes, the drained pivot (every
 * acknowledged write in the target, the source frozen at the pivot, the parent writing on the
 * target after it), cancel leaving the source in use, the error policies and the rate limit.
 */
@Timeout(120)
class MirrorJobTest extends FileJobsTest {
    MirrorJobTest() {
        super(7);
    }

    /** The job list empties right after the end event (auto-dismiss). */
    private void awaitNoJobs() {
        until("job dismissed", () -> on(() -> jobs.all().isEmpty()));
    }

    private MirrorJob mirror(BlockNode s, BlockNode t, long speed, OnError onSource) {
        return on(() -> {
            listen();
            return jobs.start(new MirrorJob(jobs, "m0", s, t, speed, 64 << 10, onSource, OnError.REPORT, true, true));
        });
    }

    @Test
    void copiesWhileAParentWritesAndPivotsInsideTheDrain() throws Exception {
        BlockNode src = source();
        BlockNode dst = target();
        Writer w = writer(src);
        MirrorJob job = mirror(src, dst, 0, OnError.REPORT);
        AioContext.await(ready, T);
        w.awaitAcks(w.acks() + 200);
        run(() -> job.userComplete());
        assertThat(AioContext.await(ended, T)).isEqualTo("completed");
        awaitNoJobs();
        assertThat(events()).containsSubsequence("created", "running", "ready", "waiting", "pending", "concluded", "null");
        assertThat(job.pivoted()).isTrue();
        assertThat(on(job::lateChunks)).as("chunks written on the source after the last copy").isZero();
        assertThat(on(() -> dst.parents())).containsExactly(w);
        assertThat(on(() -> src.parents())).isEmpty();
        assertThat(on(src::isDrained)).isFalse();
        assertThat(on(dst::isDrained)).isFalse();
        long movedAt = w.acks();
        w.awaitAcks(movedAt + 200); // the parent goes on, on the target
        w.stop();
        assertThat(w.movedAcks()).isPositive();

        byte[] s = Files.readAllBytes(dir.resolve("src.img"));
        byte[] t = Files.readAllBytes(dir.resolve("dst.img"));
        int checkedSame = 0;
        for (int b = 0; b < SIZE / BLOCK; b++) {
            long pre = w.lastBeforeMove[b];
            long last = w.last[b];
            assertBlock(s, b, pre, "source at the pivot");
            assertBlock(t, b, last, "target");
            if (pre == last) {
                checkedSame++;
                assertThat(ByteBuffer.wrap(t, b * BLOCK, BLOCK)).as("block %d: target equals the source", b)
                        .isEqualTo(ByteBuffer.wrap(s, b * BLOCK, BLOCK));
            }
        }
        assertThat(checkedSame).isPositive();
        on(() -> {
            dst.detach(w);
            src.close();
            dst.close();
            return null;
        });
    }

    @Test
    void cancelAfterReadyLeavesTheSourceInUse() throws Exception {
        BlockNode src = source();
        BlockNode dst = target();
        Writer w = writer(src);
        MirrorJob job = mirror(src, dst, 0, OnError.REPORT);
        AioContext.await(ready, T);
        on(() -> {
            job.userCancel(false); // block-job-cancel: a ready mirror completes without the pivot
            return null;
        });
        assertThat(AioContext.await(ended, T)).isEqualTo("completed");
        assertThat(job.pivoted()).isFalse();
        assertThat(on(() -> src.parents())).containsExactly(w);
        assertThat(on(src::dirtyBitmapCount)).isZero();
        stopAfter(w, 100, src);
        assertThat(w.movedAcks()).isZero();
    }

    @Test
    void forceCancelBeforeReadyAborts() throws Exception {
        BlockNode src = source();
        BlockNode dst = target();
        MirrorJob job = mirror(src, dst, 1 << 20, OnError.REPORT); // 1 MiB/s: far from ready
        run(() -> job.userCancel(true));
        assertThat(AioContext.await(ended, T)).isEqualTo("cancelled");
        awaitNoJobs();
        assertThat(events()).containsSubsequence("running", "aborting", "concluded", "null");
    }

    @Test
    void theRateLimitHoldsTheCopyBack() throws Exception {
        BlockNode src = source();
        BlockNode dst = target();
        long t0 = System.nanoTime();
        MirrorJob job = mirror(src, dst, 16L << 20, OnError.REPORT); // 4 MiB at 16 MiB/s: >= 200 ms
        AioContext.await(ready, T);
        long ms = (System.nanoTime() - t0) / 1_000_000;
        assertThat(ms).as("time to copy 4 MiB at 16 MiB/s").isGreaterThanOrEqualTo(200);
        assertThat(on(job::totalProgress)).isEqualTo(SIZE);
        // Ready allows one window of copies still to go (nearlyConverged); the rate limit may hold
        // them back for a slice, so the progress reaches the total a little after the event.
        until("the last copies after ready", () -> on(job::currentProgress) >= SIZE);
        assertThat(on(job::currentProgress)).isEqualTo(SIZE);
        run(() -> job.userCancel(true));
        AioContext.await(ended, T);
    }

    @Test
    void sourceErrorsFollowTheirPolicy() throws Exception {
        FaultRule eio = new FaultRule(1 << BlockIo.READ, 1 << 20, (1 << 20) + 1, 0, 0, 1, 1, FaultRule.Action.ERROR, 5, 0, 0);
        BlockNode src = source(eio);
        BlockNode dst = target();
        MirrorJob job = mirror(src, dst, 0, OnError.STOP);
        long deadline = System.nanoTime() + T.toNanos();
        while (!on(job::paused)) {
            assertThat(System.nanoTime()).as("stopped on the read error").isLessThan(deadline);
        }
        assertThat(on(job::status)).isIn(JobStatus.PAUSED, JobStatus.STANDBY);
        assertThat(events()).contains("error read stop");
        on(() -> {
            job.userResume(); // the rule fired once: the chunk copies now
            return null;
        });
        AioContext.await(ready, T);
        while (on(job::status) != JobStatus.READY) {
            assertThat(System.nanoTime()).as("ready again after the resume").isLessThan(deadline);
        }
        run(() -> job.userComplete());
        assertThat(AioContext.await(ended, T)).isEqualTo("completed");
        assertThat(Files.readAllBytes(dir.resolve("dst.img"))).isEqualTo(original);
    }

    @Test
    void aReportedSourceErrorEndsTheJobWithIt() throws Exception {
        FaultRule eio = new FaultRule(1 << BlockIo.READ, 1 << 20, (1 << 20) + 1, 0, 0, 1, 0, FaultRule.Action.ERROR, 5, 0, 0);
        BlockNode src = source(eio);
        BlockNode dst = target();
        mirror(src, dst, 0, OnError.REPORT);
        assertThat(AioContext.await(ended, T)).startsWith("completed: Source I/O error");
        awaitNoJobs();
        assertThat(events()).contains("error read report").containsSubsequence("running", "aborting", "concluded", "null");
        assertThat(on(src::dirtyBitmapCount)).isZero();
    }

    /**
     * A parent that writes 4 KiB blocks at queue depth 4 on its IoThread, each slot to its own
     * blocks (so a block's writes never overlap), each block stamped with a generation; it stops
     * in drained sections and moves to another node when asked. Home thread: {@link #io}; the
     * DrainParent methods on the node's main loop hand over to it.
     */
    static final class Writer implements DrainParent {
        static final int QD = 4;
        final AioContext io;
        final long[] last = new long[(int) (SIZE / BLOCK)];
        final long[] lastBeforeMove = new long[(int) (SIZE / BLOCK)];
        private final Arena arena = Arena.ofShared();
        private final BlockIo[] ios = new BlockIo[QD];
        private final MemorySegment[] bufs = new MemorySegment[QD];
        private final boolean[] idle = new boolean[QD];
        private final Random rnd = new Random(3);
        private BlockNode node;
        private BlockChannel ch;
        private int stopped;
        private boolean running;
        private boolean moved;
        private long gen;
        private int inFlight;
        private volatile long acks;
        private volatile long movedAcks;
        private CompletableFuture<Void> idleFuture;

        Writer(AioContext io, BlockNode node) {
            this.io = io;
            this.node = node;
            for (int i = 0; i < QD; i++) {
                ios[i] = new BlockIo(arena, 1);
                ios[i].tag = i;
                bufs[i] = arena.allocate(BLOCK, 4096);
            }
        }

        long acks() {
            return acks;
        }

        long movedAcks() {
            return movedAcks;
        }

        void awaitAcks(long n) {
            long deadline = System.nanoTime() + T.toNanos();
            while (acks < n) {
                assertThat(System.nanoTime()).as("writer reached %d acks (has %d)", n, acks).isLessThan(deadline);
                Thread.onSpinWait();
            }
        }

        void start() {
            AioContext.await(io.callOn(() -> {
                ch = node.openChannel(io);
                running = true;
                for (int i = 0; i < QD; i++) {
                    issue(i);
                }
                return null;
            }), T);
        }

        void stop() {
            CompletableFuture<Void> f = AioContext.await(io.callOn(() -> {
                running = false;
                idleFuture = new CompletableFuture<>();
                if (inFlight == 0) {
                    idleFuture.complete(null);
                }
                return idleFuture;
            }), T);
            AioContext.await(f, T);
            AioContext.await(io.callOn(() -> {
                node.closeChannel(ch);
                return null;
            }), T);
            arena.close();
        }

        private void issue(int i) {
            if (!running || stopped > 0) {
                idle[i] = true;
                return;
            }
            idle[i] = false;
            int blocks = (int) (SIZE / BLOCK);
            int b = rnd.nextInt(blocks / QD) * QD + i;
            long g = ++gen;
            for (int off = 0; off < BLOCK; off += 8) {
                bufs[i].set(ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), off, g);
            }
            BlockIo w = ios[i].rw(BlockIo.WRITE, (long) b * BLOCK, this::done);
            w.owner = new long[]{b, g}; // test code: allocation is fine
            w.iov.add(bufs[i].address(), BLOCK);
            inFlight++;
            ch.submit(w);
        }

        private void done(BlockIo w, long result) {
            inFlight--;
            long[] bg = (long[]) w.owner;
            if (result != BLOCK) {
                throw new AssertionError("write failed: " + result);
            }
            last[(int) bg[0]] = bg[1];
            if (!moved) {
                lastBeforeMove[(int) bg[0]] = bg[1];
            } else {
                movedAcks++;
            }
            acks++;
            if (!running && inFlight == 0 && idleFuture != null) {
                idleFuture.complete(null);
            }
            int i = w.tag;
            io.runOn(() -> issue(i)); // not from inside the completion: bounded stack
        }

        @Override
        public String drainName() {
            return "writer";
        }

        @Override
        public void drainedBegin(Runnable stoppedCb) {
            io.runOn(() -> {
                stopped++;
                stoppedCb.run();
            });
        }

        @Override
        public void drainedEnd() {
            io.runOn(() -> {
                if (--stopped == 0) {
                    for (int i = 0; i < QD; i++) {
                        if (idle[i]) {
                            issue(i);
                        }
                    }
                }
            });
        }

        @Override
        public boolean canReplaceNode() {
            return true;
        }

        @Override
        public void replaceNode(BlockNode from, BlockNode to, Runnable done) {
            io.runOn(() -> {
                BlockChannel old = ch;
                ch = to.openChannel(io);
                node = to;
                moved = true;
                old.drain(() -> from.closeChannel(old));
                done.run();
            });
        }
    }
}
