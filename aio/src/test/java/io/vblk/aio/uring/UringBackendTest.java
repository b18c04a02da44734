package io.vblk.aio.uring;

import io.vblk.aio.AioContext;
import io.vblk.aio.engine.IoRequest;
import io.vblk.aio.engine.SubmissionQueue;
import io.vblk.aio.linuxaio.LoopSteps;
import io.vblk.aio.sys.Errno;
import io.vblk.aio.sys.FileIo;
import io.vblk.aio.sys.UnixSockets;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import static org.assertj.core.api.Assertions.assertThat;

/** Home thread: the test thread is the context's. The io_uring engine behind the one submission queue. */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class UringBackendTest {
    @TempDir
    Path dir;
    private AioContext ctx;
    private Arena arena;
    private final int[] sv = {-1, -1};
    private final List<Integer> fds = new ArrayList<>();
    /** Every completion, so a lost or a double one shows. */
    private final Map<IoRequest, Long> results = new IdentityHashMap<>();
    private final IoRequest.Completion record = (r, res) -> {
        assertThat(results).as("completed twice: %s", r).doesNotContainKey(r);
        results.put(r, res);
    };

    @BeforeEach
    void setUp() {
        ctx = AioContext.forCurrentThread("uring-backend");
        arena = Arena.ofConfined();
    }

    @AfterEach
    void tearDown() {
        for (int fd : sv) {
            if (fd >= 0) {
                FileIo.close(fd);
            }
        }
        for (int fd : fds) {
            FileIo.close(fd);
        }
        arena.close();
        ctx.close();
    }

    /**
     * The queue's blocked path on a small ring (4 SQ entries, 8 in flight): 20 one-byte reads of a
     * socket that has no data yet fill the ring, the rest wait queued and blocked; when the bytes
     * arrive every read completes exactly once and the bytes read are exactly the bytes sent.
     */
    @Test
    void moreRequestsThanTheRingHoldsWaitBlockedAndAllComplete() {
        assertThat(UnixSockets.socketpair(sv)).isZero();
        SubmissionQueue q = UringBackend.createUnshared(ctx, 4, IoUring.Wake.RING_FD);
        int n = 20;
        MemorySegment buf = arena.allocate(n);
        buf.fill((byte) -1);
        MemorySegment iov = arena.allocate(16L * n, 8);
        IoRequest[] reqs = new IoRequest[n];
        ctx.deferCall().begin();
        for (int i = 0; i < n; i++) {
            iov.set(ValueLayout.JAVA_LONG, 16L * i, buf.address() + i);
            iov.set(ValueLayout.JAVA_LONG, 16L * i + 8, 1);
            reqs[i] = new IoRequest().readv(sv[0], iov.address() + 16L * i, 1, 0, record);
            q.submit(reqs[i], 0);
        }
        ctx.deferCall().end();
        UringBackend b = UringBackend.backendOf(q);
        assertThat(b.ring().sqEntries()).isEqualTo(4);
        assertThat(q.capacity()).isEqualTo(b.ring().cqEntries()).isEqualTo(8);
        assertThat(q.inFlight()).isEqualTo(8);
        assertThat(q.queued()).isEqualTo(12);
        assertThat(q.blocked()).isTrue();
        // The SQ holds 4: the first batch of 8 went down in two enters.
        assertThat(b.counters().enterCalls()).isGreaterThanOrEqualTo(2);
        assertThat(ctx.poll(false)).as("nothing to read yet").isFalse();
        assertThat(results).isEmpty();

        MemorySegment data = arena.allocate(n);
        for (int i = 0; i < n; i++) {
            data.set(ValueLayout.JAVA_BYTE, i, (byte) i);
        }
        assertThat(FileIo.write(sv[1], data.address(), n)).isEqualTo(n);
        LoopSteps.pollUntil(ctx, () -> results.size() == n, "all reads complete (" + results.size() + " did): " + q);

        assertThat(results.values()).containsOnly(1L);
        TreeSet<Integer> got = new TreeSet<>();
        for (int i = 0; i < n; i++) {
            got.add((int) buf.get(ValueLayout.JAVA_BYTE, i));
        }
        assertThat(got).as("each byte read once").hasSize(n).first().isEqualTo(0);
        assertThat(got.last()).isEqualTo(n - 1);
        assertThat(q.inFlight()).isZero();
        assertThat(q.queued()).isZero();
        assertThat(q.blocked()).isFalse();
        assertThat(q.completedRequests()).isEqualTo(n);
        assertThat(b.ring().inFlight()).isZero();
        q.release();
    }

    /**
     * Page-cache reads complete inside io_uring_enter; the engine hands them back from the queue's
     * completion pass (never from inside the backend's submit), with the data written before.
     */
    @ParameterizedTest
    @EnumSource(IoUring.Wake.class)
    void writeSyncReadThroughTheQueue(IoUring.Wake wake) {
        int fd = FileIo.open(dir.resolve("f").toString(), FileIo.O_RDWR | FileIo.O_CREAT | FileIo.O_CLOEXEC, 0600);
        assertThat(fd).as("open: %s", Errno.name(fd)).isGreaterThanOrEqualTo(0);
        fds.add(fd);
        SubmissionQueue q = UringBackend.createUnshared(ctx, 8, wake);
        MemorySegment buf = arena.allocate(8192, 4096);
        buf.fill((byte) 0x5a);
        MemorySegment iov = arena.allocate(16, 8);
        iov.set(ValueLayout.JAVA_LONG, 0, buf.address());
        iov.set(ValueLayout.JAVA_LONG, 8, 8192);
        IoRequest r = new IoRequest();
        assertThat(run(q, r.fallocate(fd, 0, 0, 16384, record))).isZero();
        assertThat(run(q, r.writev(fd, iov.address(), 1, 4096, record))).isEqualTo(8192);
        assertThat(run(q, r.fdsync(fd, record))).isZero();
        buf.fill((byte) 0);
        assertThat(run(q, r.readv(fd, iov.address(), 1, 4096, record))).isEqualTo(8192);
        assertThat(buf.get(ValueLayout.JAVA_BYTE, 0)).isEqualTo((byte) 0x5a);
        assertThat(buf.get(ValueLayout.JAVA_BYTE, 8191)).isEqualTo((byte) 0x5a);
        // Reading at 12 KiB of a 16 KiB file: short at end of file (the ring asks again for the rest).
        assertThat(run(q, r.readv(fd, iov.address(), 1, 12288, record))).isEqualTo(4096);
        assertThat(UringBackend.backendOf(q).counters().shortReadResubmits()).isEqualTo(1);
        q.release();
    }

    /**
     * Eight reads that each cross end of file, on a ring with 4 SQ entries: all come back short at
     * once, so the ring has more resubmissions than SQ room; each still completes once, with the
     * bytes up to end of file.
     */
    @Test
    void moreShortReadsThanTheSqHoldsAllComplete() {
        int fd = FileIo.open(dir.resolve("s").toString(), FileIo.O_RDWR | FileIo.O_CREAT | FileIo.O_CLOEXEC, 0600);
        assertThat(fd).as("open: %s", Errno.name(fd)).isGreaterThanOrEqualTo(0);
        fds.add(fd);
        SubmissionQueue q = UringBackend.createUnshared(ctx, 4, IoUring.Wake.RING_FD);
        int n = 8;
        MemorySegment data = arena.allocate(1000);
        data.fill((byte) 7);
        assertThat(FileIo.write(fd, data.address(), 1000)).isEqualTo(1000);
        MemorySegment buf = arena.allocate(4096L * n);
        MemorySegment iov = arena.allocate(16L * n, 8);
        IoRequest[] reqs = new IoRequest[n];
        ctx.deferCall().begin();
        for (int i = 0; i < n; i++) {
            iov.set(ValueLayout.JAVA_LONG, 16L * i, buf.address() + 4096L * i);
            iov.set(ValueLayout.JAVA_LONG, 16L * i + 8, 4096);
            reqs[i] = new IoRequest().readv(fd, iov.address() + 16L * i, 1, 100L * i, record);
            q.submit(reqs[i], 0);
        }
        ctx.deferCall().end();
        LoopSteps.pollUntil(ctx, () -> results.size() == n, "short reads complete (" + results.size() + " did): " + q);
        for (int i = 0; i < n; i++) {
            assertThat(results.get(reqs[i])).as("read %d", i).isEqualTo(1000L - 100L * i);
        }
        assertThat(UringBackend.backendOf(q).counters().shortReadResubmits()).isEqualTo(n);
        assertThat(q.inFlight()).isZero();
        q.release();
    }

    private long run(SubmissionQueue q, IoRequest r) {
        results.clear();
        q.submit(r, 0);
        LoopSteps.pollUntil(ctx, () -> results.containsKey(r), IoRequest.opName(r.op()));
        return results.get(r);
    }

    @Test
    void theContextSharesOneEngineAndMetricsCanPeekAtIt() {
        assertThat(UringBackend.peek(ctx)).isNull();
        SubmissionQueue a = UringBackend.of(ctx);
        SubmissionQueue b = UringBackend.of(ctx);
        assertThat(b).isSameAs(a);
        assertThat(UringBackend.peek(ctx)).isSameAs(a);
        assertThat(a.kind()).isEqualTo("io_uring");
        assertThat(UringBackend.backendOf(a).ring().toString()).contains("RING_FD");
        assertThat(UringBackend.unavailableReason()).isNull();
        a.release();
        b.release();
        assertThat(UringBackend.peek(ctx)).isNull();
    }
}
