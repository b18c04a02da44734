package io.vblk.aio.uring;

import io.vblk.aio.AioContext;
import io.vblk.aio.DeferCall;
import io.vblk.aio.engine.IoRequest;
import io.vblk.aio.engine.SubmissionQueue;
import io.vblk.aio.testing.Allocations;
import io.vblk.aio.sys.Errno;
import io.vblk.aio.sys.FileIo;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Home thread: the test thread is the context's.
 *
 * <p>The io_uring engine behind the submission queue allocates nothing per request in steady
 * state: the {@link IoRequest} is the ring's request object (no side object), batches of
 * {@value #BATCH} page-cache reads go down in one submit and complete in the queue's pass. After
 * warm-up a window of requests allocates under 1 KiB on this thread; a loaded machine compiles
 * later, so up to 15 windows are looked at.
 */
@Timeout(300)
class UringBackendAllocationTest {
    private static final int BATCH = 32;
    private static final int BLOCK = 4096;

    @TempDir
    Path dir;

    private long completed;
    private long bad;
    private final IoRequest.Completion done = (r, res) -> {
        completed++;
        if (res != BLOCK) {
            bad++;
        }
    };

    @Test
    void steadyStateReadsThroughTheQueueAllocateNothing() {
        AioContext ctx = AioContext.forCurrentThread("uring-engine-alloc");
        int fd = FileIo.open(dir.resolve("img").toString(), FileIo.O_RDWR | FileIo.O_CREAT | FileIo.O_CLOEXEC, 0600);
        assertThat(fd).as("open: %s", Errno.name(fd)).isGreaterThanOrEqualTo(0);
        SubmissionQueue q = UringBackend.of(ctx);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment data = arena.allocate(BATCH * BLOCK, BLOCK);
            data.fill((byte) 1);
            assertThat(FileIo.pwrite(fd, data.address(), BATCH * BLOCK, 0)).isEqualTo(BATCH * BLOCK);
            MemorySegment iovs = arena.allocate(16L * BATCH, 8);
            IoRequest[] reqs = new IoRequest[BATCH];
            for (int i = 0; i < BATCH; i++) {
                iovs.set(ValueLayout.JAVA_LONG, 16L * i, data.address() + (long) i * BLOCK);
                iovs.set(ValueLayout.JAVA_LONG, 16L * i + 8, BLOCK);
                reqs[i] = new IoRequest();
            }
            DeferCall dc = ctx.deferCall();
            Runnable batch = () -> {
                long want = completed + BATCH;
                dc.begin();
                for (int i = 0; i < BATCH; i++) {
                    q.submit(reqs[i].readv(fd, iovs.address() + 16L * i, 1, (long) i * BLOCK, done), 0);
                }
                dc.end(); // one submit; page-cache reads complete in the queue's pass right after it
                while (completed < want) {
                    ctx.poll(true);
                }
            };
            long n = Allocations.WINDOW_REQUESTS;
            long bytes = Allocations.steadyStateBytes("io_uring engine", batch, BATCH, () -> q.submitCalls() + " submit calls");
            assertThat(bad).as("reads with an unexpected result").isZero();
            assertThat(bytes).as("bytes allocated over %d requests", n).isLessThan(Allocations.NOISE_BYTES);
            assertThat(q.submitCalls()).as("one submit per batch").isEqualTo(completed / BATCH);
        } finally {
            q.release();
            FileIo.close(fd);
            ctx.close();
        }
    }
}
