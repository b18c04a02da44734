package io.vblk.aio.threadpool;

import io.vblk.aio.AioContext;
import io.vblk.aio.DeferCall;
import io.vblk.aio.engine.IoRequest;
import io.vblk.aio.engine.SubmissionQueue;
import io.vblk.aio.linuxaio.LoopSteps;
import io.vblk.aio.sys.FileIo;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

@Timeout(value = 30, unit = TimeUnit.SECONDS)
class WorkerPoolTest {

    @Test
    void moreRequestsThanSlotsAllCompleteOnceOnTheHomeThread(@TempDir Path dir) {
        AioContext ctx = AioContext.forCurrentThread("pool-test");
        int fd = FileIo.open(dir.resolve("f").toString(), FileIo.O_RDWR | FileIo.O_CREAT | FileIo.O_CLOEXEC, 0600);
        try (Arena arena = Arena.ofConfined()) {
            int n = 3 * WorkerPool.DEFAULT_CAPACITY;
            MemorySegment data = arena.allocate(8L * n, 8);
            MemorySegment iovs = arena.allocate(16L * n, 8);
            for (int i = 0; i < n; i++) {
                data.set(ValueLayout.JAVA_LONG, 8L * i, 1000L + i);
                iovs.set(ValueLayout.JAVA_LONG, 16L * i, data.address() + 8L * i);
                iovs.set(ValueLayout.JAVA_LONG, 16L * i + 8, 8);
            }
            SubmissionQueue pool = WorkerPool.of(ctx);
            WorkerPool workers = (WorkerPool) pool.backend();
            int[] perReq = new int[n];
            int[] done = {0};
            Thread home = Thread.currentThread();
            boolean[] offHome = {false};
            DeferCall dc = ctx.deferCall();
            dc.begin();
            for (int i = 0; i < n; i++) {
                IoRequest r = new IoRequest();
                r.ownerWord = i;
                pool.submit(r.writev(fd, iovs.address() + 16L * i, 1, 8L * i, (q, res) -> {
                    offHome[0] |= Thread.currentThread() != home;
                    perReq[(int) q.ownerWord]++;
                    assertThat(res).isEqualTo(8);
                    done[0]++;
                }), 0);
                if (i == 0) {
                    // Queued until the section ends or a batch fills: the pool refuses to stop.
                    assertThatThrownBy(pool::release).hasMessageContaining("in flight");
                }
            }
            // Full batches went down already (and what finished meanwhile completed); none is lost.
            assertThat(done[0] + pool.inFlight() + pool.queued()).isEqualTo(n);
            assertThat(pool.inFlight()).isLessThanOrEqualTo(WorkerPool.DEFAULT_CAPACITY);
            dc.end();
            LoopSteps.pollUntil(ctx, () -> done[0] == n, "all pool writes");
            assertThat(offHome[0]).isFalse();
            assertThat(perReq).containsOnly(1);
            assertThat(workers.executed()).isEqualTo(n);
            MemorySegment back = arena.allocate(8L * n, 8);
            assertThat(FileIo.pread(fd, back.address(), 8L * n, 0)).isEqualTo(8L * n);
            for (int i = 0; i < n; i++) {
                assertThat(back.get(ValueLayout.JAVA_LONG, 8L * i)).isEqualTo(1000L + i);
            }
            pool.release();
        } finally {
            FileIo.close(fd);
            ctx.close();
        }
    }

    @Test
    void burstsOfEverySizeNeverStallAndTheWorkersStopOnRelease(@TempDir Path dir) {
        AioContext ctx = AioContext.forCurrentThread("pool-bursts");
        int fd = FileIo.open(dir.resolve("f").toString(), FileIo.O_RDWR | FileIo.O_CREAT | FileIo.O_CLOEXEC, 0600);
        long seed = 42;
        System.out.println("WorkerPoolTest seed " + seed);
        java.util.SplittableRandom rnd = new java.util.SplittableRandom(seed);
        try (Arena arena = Arena.ofConfined()) {
            assertThat(FileIo.ftruncate(fd, 4096)).isZero();
            MemorySegment buf = arena.allocate(8, 8);
            MemorySegment iov = arena.allocate(16, 8);
            iov.set(ValueLayout.JAVA_LONG, 0, buf.address());
            iov.set(ValueLayout.JAVA_LONG, 8, 8);
            IoRequest[] reqs = new IoRequest[3 * WorkerPool.DEFAULT_CAPACITY];
            for (int i = 0; i < reqs.length; i++) {
                reqs[i] = new IoRequest();
            }
            SubmissionQueue pool = WorkerPool.of(ctx);
            WorkerPool workers = (WorkerPool) pool.backend();
            int[] done = {0};
            int[] doubles = {0};
            IoRequest.Completion c = (q, res) -> {
                if (q.ownerWord != 1) {
                    doubles[0]++;
                }
                q.ownerWord = 2;
                done[0]++;
            };
            long total = 0;
            for (int burst = 0; burst < 300; burst++) {
                int n = 1 + rnd.nextInt(reqs.length);
                for (int i = 0; i < n; i++) {
                    reqs[i].ownerWord = 1;
                    pool.submit(reqs[i].readv(fd, iov.address(), 1, 0, c), 0);
                }
                total += n;
                long want = total;
                LoopSteps.pollUntil(ctx, () -> done[0] == want, "burst " + burst + " of " + n);
            }
            assertThat(doubles[0]).isZero();
            assertThat(workers.executed()).isEqualTo(total);
            pool.release();
            String prefix = "vblk-pool-" + ctx.name() + "-";
            assertThat(Thread.getAllStackTraces().keySet().stream().filter(t -> t.getName().startsWith(prefix)))
                    .as("worker threads after release").isEmpty();
        } finally {
            FileIo.close(fd);
            ctx.close();
        }
    }
    /**
     * The pool kept full for a few seconds, each completion resubmitting its request at once: the
     * workers race for slots while the home thread refills the ring behind a worker descheduled
     * between its claim and its read of the slot. Before the fix that worker ran a newer request
     * and lost the one it had claimed (the drain waiting for it hung) and another worker found an
     * empty slot and stopped. Every request must come back, once, and all workers stay alive.
     */
    @Test
    void aRingKeptFullLosesNoRequestAndNoWorker(@TempDir Path dir) {
        AioContext ctx = AioContext.forCurrentThread("pool-full");
        int fd = FileIo.open(dir.resolve("f").toString(), FileIo.O_RDWR | FileIo.O_CREAT | FileIo.O_CLOEXEC, 0600);
        try (Arena arena = Arena.ofConfined()) {
            assertThat(FileIo.ftruncate(fd, 4096)).isZero();
            MemorySegment buf = arena.allocate(8, 8);
            MemorySegment iov = arena.allocate(16, 8);
            iov.set(ValueLayout.JAVA_LONG, 0, buf.address());
            iov.set(ValueLayout.JAVA_LONG, 8, 8);
            SubmissionQueue pool = WorkerPool.of(ctx);
            WorkerPool workers = (WorkerPool) pool.backend();
            long[] done = {0};
            long[] submitted = {0};
            boolean[] stop = {false};
            IoRequest[] reqs = new IoRequest[WorkerPool.DEFAULT_CAPACITY];
            IoRequest.Completion[] c = new IoRequest.Completion[1];
            c[0] = (q, res) -> {
                assertThat(res).isEqualTo(8);
                done[0]++;
                if (!stop[0]) {
                    submitted[0]++;
                    pool.submit(q.readv(fd, iov.address(), 1, 0, c[0]), 0);
                }
            };
            for (int i = 0; i < reqs.length; i++) {
                reqs[i] = new IoRequest();
                submitted[0]++;
                pool.submit(reqs[i].readv(fd, iov.address(), 1, 0, c[0]), 0);
            }
            long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(4);
            LoopSteps.pollUntil(ctx, () -> System.nanoTime() > end || pool.inFlight() + pool.queued() == 0,
                    java.time.Duration.ofSeconds(8), "the full pool's run");
            stop[0] = true;
            LoopSteps.pollUntil(ctx, () -> done[0] == submitted[0], "every request back: " + pool);
            System.out.println("WorkerPoolTest: " + done[0] + " requests through a full pool; " + pool);
            assertThat(done[0]).isGreaterThan(10L * WorkerPool.DEFAULT_CAPACITY);
            assertThat(workers.executed()).isEqualTo(done[0]);
            assertThat(workers.liveWorkers()).as("workers alive: " + pool).isEqualTo(WorkerPool.DEFAULT_WORKERS);
            pool.release();
        } finally {
            FileIo.close(fd);
            ctx.close();
        }
    }
}
