package io.vblk.aio.uring;

import io.vblk.aio.AioContext;
import io.vblk.aio.DeferCall;
import io.vblk.aio.testing.Allocations;
import io.vblk.aio.sys.Errno;
import io.vblk.aio.sys.FileIo;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;

import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Home thread: the test thread is the context's.
 *
 * <p>The ring allocates nothing per request in steady state: batches of {@value #BATCH} requests
 * prepared, submitted in one enter and reaped, as a submission queue drives it. After warm-up a
 * window of requests allocates under 1 KiB on this thread (the JVM's own occasional allocations),
 * i.e. 0 bytes per request; a loaded machine compiles later, so up to 15 windows are looked at.
 */
@Timeout(300)
class IoUringAllocationTest {
    private static final int BATCH = 32;
    private static final int BLOCK = 4096;

    @TempDir
    Path dir;

    /** Counts completions in fields: a callback that allocates nothing itself. */
    private static final class Counter implements IoUring.Completion {
        long count;
        long bad;

        @Override
        public void uringCompleted(Object request, long result) {
            count++;
            if (result != ((Slot) request).expect) {
                bad++;
            }
        }
    }

    private static final class Slot {
        final int index;
        final long expect;

        Slot(int index, long expect) {
            this.index = index;
            this.expect = expect;
        }
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"nop", "read"})
    void steadyStateRequestsAllocateNothing(String kind) {
        boolean read = kind.equals("read");
        AioContext ctx = AioContext.forCurrentThread("uring-alloc");
        int fd = FileIo.open(dir.resolve("img").toString(), FileIo.O_RDWR | FileIo.O_CREAT | FileIo.O_CLOEXEC, 0600);
        assertThat(fd).as("open: %s", Errno.name(fd)).isGreaterThanOrEqualTo(0);
        Counter done = new Counter();
        IoUring ring = IoUring.open(ctx, 64, done);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment data = arena.allocate(BATCH * BLOCK, BLOCK);
            data.fill((byte) 1);
            assertThat(FileIo.pwrite(fd, data.address(), BATCH * BLOCK, 0)).isEqualTo(BATCH * BLOCK);
            MemorySegment iovs = arena.allocate(16L * BATCH, 8);
            Slot[] slots = new Slot[BATCH];
            for (int i = 0; i < BATCH; i++) {
                iovs.set(ValueLayout.JAVA_LONG, 16L * i, data.address() + (long) i * BLOCK);
                iovs.set(ValueLayout.JAVA_LONG, 16L * i + 8, BLOCK);
                slots[i] = new Slot(i, read ? BLOCK : 0);
            }
            DeferCall dc = ctx.deferCall();
            Runnable batch = () -> {
                long want = done.count + BATCH;
                dc.begin();
                for (Slot s : slots) {
                    boolean ok = read
                            ? ring.prepareReadv(fd, iovs.address() + 16L * s.index, 1, (long) s.index * BLOCK, s)
                            : ring.prepareNop(s);
                    if (!ok) {
                        throw new AssertionError("no room in an empty ring");
                    }
                }
                ring.submit();
                ring.reap(); // page cache and NOP complete inside the enter
                dc.end();
                while (done.count < want) {
                    ctx.poll(true); // anything not complete yet arrives through the eventfd
                }
            };
            long n = Allocations.WINDOW_REQUESTS;
            long bytes = Allocations.steadyStateBytes("io_uring " + kind, batch, BATCH, () -> ring.counters().enterCalls() + " enter calls");
            assertThat(done.bad).as("requests with an unexpected result").isZero();
            assertThat(bytes).as("bytes allocated over %d %s requests", n, kind).isLessThan(Allocations.NOISE_BYTES);
            assertThat(ring.counters().enterCalls()).as("one enter per batch").isEqualTo(done.count / BATCH);
        } finally {
            ring.close();
            FileIo.close(fd);
            ctx.close();
        }
    }
}
