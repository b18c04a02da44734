package io.vblk.aio.uring;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioOptions;
import io.vblk.aio.NanoClock;
import io.vblk.aio.Timer;
import io.vblk.aio.linuxaio.LoopSteps;
import io.vblk.aio.sys.Errno;
import io.vblk.aio.sys.FileIo;
import io.vblk.aio.sys.UnixSockets;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.ValueSource;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** Home thread: the test thread is the context's. */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class IoUringTest {
    private static final int BLOCK = 4096;

    @TempDir
    Path dir;
    private AioContext ctx;
    private Arena arena;
    private final List<Integer> fds = new ArrayList<>();
    private IoUring ring;
    private final Done done = new Done();

    /** Records every completion, so a lost or double completion shows. */
    static final class Done implements IoUring.Completion {
        final List<Object> requests = new ArrayList<>();
        final List<Long> results = new ArrayList<>();

        @Override
        public void uringCompleted(Object request, long result) {
            assertThat(requests).as("completed twice: %s", request).doesNotContain(request);
            requests.add(request);
            results.add(result);
        }

        long resultOf(Object request) {
            int i = requests.indexOf(request);
            assertThat(i).as("completion of %s", request).isNotNegative();
            return results.get(i);
        }

        int count() {
            return requests.size();
        }
    }

    @BeforeEach
    void setUp() {
        ctx = AioContext.forCurrentThread("uring-test");
        arena = Arena.ofConfined();
    }

    @AfterEach
    void tearDown() {
        try {
            if (ring != null && !ring.isClosed()) {
                LoopSteps.pollUntil(ctx, () -> ring.inFlight() == 0, "drained before close");
                ring.close();
            }
        } finally {
            for (int fd : fds) {
                FileIo.close(fd);
            }
            arena.close();
            ctx.close();
        }
    }

    private int openFile(String name, boolean direct, long size) {
        int flags = FileIo.O_RDWR | FileIo.O_CREAT | FileIo.O_CLOEXEC | (direct ? FileIo.O_DIRECT : 0);
        int fd = FileIo.open(dir.resolve(name).toString(), flags, 0600);
        assertThat(fd).as("open: %s", Errno.name(fd)).isGreaterThanOrEqualTo(0);
        fds.add(fd);
        assertThat(FileIo.ftruncate(fd, size)).isZero();
        return fd;
    }

    /** An iovec array over {@code data} cut into segments of the given sizes. */
    private MemorySegment iov(MemorySegment data, int... sizes) {
        return IoVecs.cut(arena, data.address(), sizes);
    }

    private void pollUntilCount(int n, String what) {
        LoopSteps.pollUntil(ctx, () -> done.count() >= n, Duration.ofSeconds(20), what);
    }

    @Test
    void setupMapsTheRingsAndSizesTheSlotTableToTheCq() {
        ring = IoUring.open(ctx, 100, done);
        assertThat(ring.sqEntries()).isEqualTo(128); // rounded up to a power of two
        assertThat(ring.cqEntries()).isEqualTo(256);
        assertThat(ring.singleMmap()).as("IORING_FEAT_SINGLE_MMAP on a 5.4+ kernel").isTrue();
        assertThat(ring.room()).isEqualTo(128);
        assertThatThrownBy(() -> IoUring.open(ctx, 0, done)).isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void nopsGoDownInOneEnterAndAreReapedWithoutASystemCall() {
        ring = IoUring.open(ctx, 16, done);
        Object[] reqs = new Object[8];
        for (int i = 0; i < reqs.length; i++) {
            reqs[i] = "nop" + i;
        }
        IoUring.RequestReader<Object> nops = new IoUring.RequestReader<>() {
            @Override
            public Object next(Object req) {
                throw new AssertionError("an array is not walked as a list");
            }

            @Override
            public boolean prepare(IoUring r, Object req) {
                return r.prepareNop(req);
            }
        };
        assertThat(ring.prepareArray(reqs, 0, reqs.length, nops)).isEqualTo(8);
        assertThat(ring.counters().enterCalls()).isZero();
        assertThat(ring.pendingSqes()).isEqualTo(8);
        assertThat(ring.submit()).isEqualTo(8);
        assertThat(ring.counters().enterCalls()).isEqualTo(1);
        assertThat(ring.pendingSqes()).isZero();
        assertThat(ring.completionsReady()).isTrue();
        assertThat(ring.reap()).isEqualTo(8);
        assertThat(ring.counters().enterCalls()).as("reaping made no system call").isEqualTo(1);
        assertThat(done.requests).containsExactly(reqs);
        assertThat(done.results).containsOnly(0L);
        assertThat(ring.counters().cqesReaped()).isEqualTo(8);
        assertThat(ring.inFlight()).isZero();
        assertThat(ring.submit()).as("nothing to submit").isZero();
        assertThat(ring.counters().enterCalls()).isEqualTo(1);
    }

    @ParameterizedTest(name = "O_DIRECT={0}")
    @ValueSource(booleans = {true, false})
    void vectoredWritesAndReadsAtOffsetsReadBackWhatWasWritten(boolean direct) {
        int fd = openFile("img", direct, 1 << 20);
        ring = IoUring.open(ctx, 32, done);
        int n = 12;
        MemorySegment[] out = new MemorySegment[n];
        long[] offsets = new long[n];
        for (int i = 0; i < n; i++) {
            out[i] = arena.allocate(2 * BLOCK, BLOCK);
            IoVecs.fillPattern(out[i], i + 1);
            offsets[i] = (long) (i * 5 % n) * 3 * BLOCK; // scattered, non-overlapping
            // Three segments, sector-aligned for O_DIRECT.
            assertThat(ring.prepareWritev(fd, iov(out[i], 1024, 4096, 3072).address(), 3, offsets[i], "w" + i))
                    .isTrue();
        }
        assertThat(ring.submit()).isEqualTo(n);
        pollUntilCount(n, "writes");
        for (int i = 0; i < n; i++) {
            assertThat(done.resultOf("w" + i)).isEqualTo(2 * BLOCK);
        }
        MemorySegment[] in = new MemorySegment[n];
        for (int i = 0; i < n; i++) {
            in[i] = arena.allocate(2 * BLOCK, BLOCK);
            assertThat(ring.prepareReadv(fd, iov(in[i], 512, 512, 2048, 5120).address(), 4, offsets[i], "r" + i))
                    .isTrue();
        }
        assertThat(ring.submit()).isEqualTo(n);
        pollUntilCount(2 * n, "reads");
        MemorySegment check = arena.allocate(2 * BLOCK, BLOCK);
        for (int i = 0; i < n; i++) {
            assertThat(done.resultOf("r" + i)).isEqualTo(2 * BLOCK);
            assertThat(in[i].mismatch(out[i])).as("read %d", i).isEqualTo(-1);
            // And the file itself holds it (not only what the ring says).
            assertThat(FileIo.pread(fd, check.address(), 2 * BLOCK, offsets[i])).isEqualTo(2 * BLOCK);
            assertThat(check.mismatch(out[i])).as("file at %d", offsets[i]).isEqualTo(-1);
        }
        assertThat(ring.counters().shortReadResubmits()).isZero();
    }

    @Test
    void fsyncBothKindsAndFallocateComplete() {
        int fd = openFile("img", false, 0);
        ring = IoUring.open(ctx, 8, done);
        MemorySegment data = arena.allocate(BLOCK, BLOCK);
        data.fill((byte) 0x5a);
        assertThat(ring.prepareWritev(fd, iov(data, BLOCK).address(), 1, 0, "write")).isTrue();
        ring.submit();
        pollUntilCount(1, "write");
        assertThat(ring.prepareFsync(fd, true, "fdatasync")).isTrue();
        assertThat(ring.prepareFsync(fd, false, "fsync")).isTrue();
        // Allocate 1 MiB (mode 0 grows the file), then punch the written block back to zeroes.
        assertThat(ring.prepareFallocate(fd, 0, 0, 1 << 20, "grow")).isTrue();
        assertThat(ring.submit()).isEqualTo(3);
        pollUntilCount(4, "syncs and fallocate");
        assertThat(done.resultOf("fdatasync")).isZero();
        assertThat(done.resultOf("fsync")).isZero();
        assertThat(done.resultOf("grow")).isZero();
        assertThat(FileIo.fileSize(fd)).isEqualTo(1 << 20);
        assertThat(ring.prepareFallocate(fd, FileIo.FALLOC_FL_PUNCH_HOLE | FileIo.FALLOC_FL_KEEP_SIZE, 0, BLOCK, "punch"))
                .isTrue();
        ring.submit();
        pollUntilCount(5, "punch");
        assertThat(done.resultOf("punch")).isZero();
        MemorySegment back = arena.allocate(BLOCK, BLOCK);
        back.fill((byte) 1);
        assertThat(FileIo.pread(fd, back.address(), BLOCK, 0)).isEqualTo(BLOCK);
        assertThat(back.get(ValueLayout.JAVA_BYTE, 100)).isZero();
        assertThat(FileIo.fileSize(fd)).isEqualTo(1 << 20);
    }

    @Test
    void aShortReadAtEndOfFileIsResubmittedForTheRestAndReportsWhatWasThere() {
        int fd = openFile("short", false, 0);
        MemorySegment content = arena.allocate(5000, 8);
        IoVecs.fillPattern(content, 9);
        assertThat(FileIo.pwrite(fd, content.address(), 5000, 0)).isEqualTo(5000);
        ring = IoUring.open(ctx, 8, done);
        MemorySegment in = arena.allocate(8192, BLOCK);
        in.fill((byte) 0x77);
        // The file ends inside the second segment: the remainder starts 904 bytes into it.
        assertThat(ring.prepareReadv(fd, iov(in, BLOCK, 2048, 2048).address(), 3, 0, "read")).isTrue();
        ring.submit();
        pollUntilCount(1, "short read");
        assertThat(done.resultOf("read")).as("bytes up to end of file").isEqualTo(5000);
        assertThat(ring.counters().shortReadResubmits()).isEqualTo(1);
        assertThat(in.asSlice(0, 5000).mismatch(content)).isEqualTo(-1);
        assertThat(in.get(ValueLayout.JAVA_BYTE, 5000)).as("past the end untouched (the caller pads)")
                .isEqualTo((byte) 0x77);
        // A read wholly past the end is 0 at once, with no resubmission.
        assertThat(ring.prepareReadv(fd, iov(in, BLOCK).address(), 1, 1 << 20, "past")).isTrue();
        ring.submit();
        pollUntilCount(2, "read past the end");
        assertThat(done.resultOf("past")).isZero();
        assertThat(ring.counters().shortReadResubmits()).isEqualTo(1);
    }

    @Test
    void eagainInACompletionIsResubmittedUntilTheReadCanRun() {
        // RWF_NOWAIT on an empty socket: the kernel completes the read with -EAGAIN instead of
        // waiting (io_uring/rw.c: "no retry on NONBLOCK nor RWF_NOWAIT").
        int[] sv = new int[2];
        assertThat(UnixSockets.socketpair(sv)).isZero();
        fds.add(sv[0]);
        fds.add(sv[1]);
        ring = IoUring.open(ctx, 8, done);
        MemorySegment in = arena.allocate(64, 8);
        assertThat(ring.prepareReadv(sv[0], iov(in, 64).address(), 1, 0, SqeLayout.RWF_NOWAIT, "recv")).isTrue();
        ring.submit();
        LoopSteps.pollUntil(ctx, () -> ring.counters().cqeEagains() >= 2, "-EAGAIN completions resubmitted");
        assertThat(done.count()).as("an -EAGAIN is not a completion").isZero();
        assertThat(ring.inFlight()).isEqualTo(1);
        MemorySegment msg = arena.allocate(64, 8);
        IoVecs.fillPattern(msg, 3);
        assertThat(FileIo.write(sv[1], msg.address(), 64)).isEqualTo(64);
        pollUntilCount(1, "read after data arrived");
        assertThat(done.resultOf("recv")).isEqualTo(64);
        assertThat(in.mismatch(msg)).isEqualTo(-1);
    }

    @Test
    void aBadFdCompletesThatRequestWithTheErrorAndTheOthersRun() {
        int fd = openFile("img", false, 1 << 16);
        ring = IoUring.open(ctx, 8, done);
        MemorySegment b = arena.allocate(BLOCK, BLOCK);
        long iov = iov(b, BLOCK).address();
        assertThat(ring.prepareReadv(fd, iov, 1, 0, "a")).isTrue();
        assertThat(ring.prepareReadv(987_654, iov, 1, 0, "bad")).isTrue();
        assertThat(ring.prepareReadv(fd, iov, 1, BLOCK, "c")).isTrue();
        assertThat(ring.submit()).isEqualTo(3);
        pollUntilCount(3, "three completions");
        assertThat(done.resultOf("bad")).isEqualTo(-Errno.EBADF);
        assertThat(done.resultOf("a")).isEqualTo(BLOCK);
        assertThat(done.resultOf("c")).isEqualTo(BLOCK);
    }

    /** A minimal pending list driving the ring as a submission queue would. */
    private static final class Pending {
        final Object[] items;
        int next;

        Pending(int n) {
            items = new Object[n];
            for (int i = 0; i < n; i++) {
                items[i] = i;
            }
        }
    }

    @ParameterizedTest(name = "wake={0}")
    @EnumSource(IoUring.Wake.class)
    void manyMoreRequestsThanTheSqCopeWithAFullSqAndCqBoundsInFlight(IoUring.Wake wake) {
        int fd = openFile("img", true, 1 << 22);
        int n = 256;
        MemorySegment b = arena.allocate(BLOCK, BLOCK);
        long iov = iov(b, BLOCK).address();
        Pending p = new Pending(n);
        IoUring.RequestReader<Integer> reader = new IoUring.RequestReader<>() {
            @Override
            public Integer next(Integer req) {
                return req + 1 < n ? req + 1 : null;
            }

            @Override
            public boolean prepare(IoUring r, Integer req) {
                return r.prepareReadv(fd, iov, 1, (long) req * BLOCK, p.items[req]);
            }
        };
        int[] maxInFlight = {0};
        int[] zeroTakes = {0};
        Runnable refill = () -> {
            while (p.next < n) {
                int took = ring.prepareList(p.next, n - p.next, reader);
                p.next += took;
                maxInFlight[0] = Math.max(maxInFlight[0], ring.inFlight());
                if (took == 0) {
                    zeroTakes[0]++;
                    if (ring.pendingSqes() == 0) {
                        break; // every slot is in the kernel: wait for completions
                    }
                }
                ring.submit(); // the SQ is full or the list is done: push what is prepared
            }
        };
        ring = IoUring.open(ctx, 64, done, () -> {
            ring.reap();
            refill.run();
        }, false, wake);
        assertThat(ring.sqEntries()).isEqualTo(64);
        refill.run();
        assertThat(p.next).as("more taken than the SQ holds: submitted when full").isGreaterThan(64);
        pollUntilCount(n, "256 reads through a 64-entry SQ");
        assertThat(maxInFlight[0]).isLessThanOrEqualTo(ring.cqEntries());
        assertThat(done.results).containsOnly((long) BLOCK);
        assertThat(ring.counters().sqesSubmitted()).isEqualTo(n);
        assertThat(ring.counters().enterCalls()).isLessThan(n);
        assertThat(ring.inFlight()).isZero();
    }

    @ParameterizedTest(name = "wake={0}")
    @EnumSource(IoUring.Wake.class)
    void aCallbackRunningTheLoopFindsTheRestCompletedByANestedReap(IoUring.Wake wake) {
        int fd = openFile("img", false, 1 << 16);
        MemorySegment b = arena.allocate(BLOCK, BLOCK);
        long iov = iov(b, BLOCK).address();
        List<Object> order = new ArrayList<>();
        ring = IoUring.open(ctx, 16, (req, res) -> {
            order.add(req);
            if (req.equals(0)) {
                ctx.poll(false); // eventfd or ring fd ready: its handler reaps the rest from in here
                assertThat(order).as("the nested reap completed the others").hasSize(8);
            }
        }, null, false, wake);
        for (int i = 0; i < 8; i++) {
            assertThat(ring.prepareReadv(fd, iov, 1, (long) i * BLOCK, i)).isTrue();
        }
        ring.submit();
        ring.reap();
        assertThat(order).containsExactly(0, 1, 2, 3, 4, 5, 6, 7);
        assertThat(ring.counters().cqesReaped()).isEqualTo(8);
        assertThat(ring.inFlight()).isZero();
    }

    @Test
    void aRingThatRefusesSubmissionCompletesEveryAcceptedRequestWithTheError() {
        // A ring set up disabled (IORING_SETUP_R_DISABLED) answers io_uring_enter with -EBADFD: a
        // hard error, not a shortage. The accepted requests still complete once each (STYLE rule 11).
        ring = IoUring.openWithSetupFlags(ctx, 8, done, UringParamsLayout.IORING_SETUP_R_DISABLED);
        for (int i = 0; i < 3; i++) {
            assertThat(ring.prepareNop("nop" + i)).isTrue();
        }
        int ebadfd = 77; // asm-generic/errno.h EBADFD
        assertThat(ring.submit()).isEqualTo(-ebadfd);
        assertThat(ring.counters().submitErrors()).isEqualTo(1);
        assertThat(ring.pendingSqes()).as("taken back from the SQ").isZero();
        assertThat(ring.inFlight()).isEqualTo(3);
        assertThat(ring.completionsReady()).isTrue();
        assertThat(ring.reap()).isEqualTo(3);
        assertThat(done.requests).containsExactly("nop0", "nop1", "nop2");
        assertThat(done.results).containsOnly((long) -ebadfd);
        assertThat(ring.inFlight()).isZero();
        assertThat(ring.room()).isEqualTo(8);
    }

    @Test
    void registeredFilesAreNamedByIndexAndCarryTheSameData() {
        int fd = openFile("img", false, 1 << 16);
        ring = IoUring.open(ctx, 8, done);
        assertThat(ring.registerFiles(fd)).isZero();
        assertThat(ring.registerFiles(fd)).as("already registered").isEqualTo(-Errno.EBUSY);
        MemorySegment out = arena.allocate(2 * BLOCK, BLOCK);
        IoVecs.fillPattern(out, 5);
        MemorySegment in = arena.allocate(2 * BLOCK, BLOCK);
        assertThat(ring.prepareWritev(fd, iov(out, BLOCK, BLOCK).address(), 2, 3 * BLOCK, "w")).isTrue();
        assertThat(ring.unregisterFiles()).as("requests in flight").isEqualTo(-Errno.EBUSY);
        ring.submit();
        pollUntilCount(1, "write by registered file");
        assertThat(ring.prepareReadv(fd, iov(in, 2 * BLOCK).address(), 1, 3 * BLOCK, "r")).isTrue();
        assertThat(ring.prepareFsync(fd, true, "sync")).isTrue();
        ring.submit();
        pollUntilCount(3, "read and sync by registered file");
        assertThat(done.resultOf("w")).isEqualTo(2 * BLOCK);
        assertThat(done.resultOf("r")).isEqualTo(2 * BLOCK);
        assertThat(done.resultOf("sync")).isZero();
        assertThat(in.mismatch(out)).isEqualTo(-1);
        assertThat(ring.counters().fixedFileSqes()).isEqualTo(3);
        assertThat(ring.unregisterFiles()).isZero();
        assertThat(ring.prepareReadv(fd, iov(in, BLOCK).address(), 1, 0, "plain")).isTrue();
        ring.submit();
        pollUntilCount(4, "read by fd again");
        assertThat(done.resultOf("plain")).isEqualTo(BLOCK);
        assertThat(ring.counters().fixedFileSqes()).isEqualTo(3);
    }

    @ParameterizedTest(name = "wake={0}")
    @EnumSource(IoUring.Wake.class)
    void theContextsBusyPollFindsCompletionsThroughThePollHandler(IoUring.Wake wake) {
        ctx.close();
        ctx = new AioContext("uring-poll", Thread.currentThread(), NanoClock.SYSTEM,
                AioOptions.polling(Duration.ofSeconds(30).toNanos()));
        ring = IoUring.open(ctx, 8, done, null, true, wake);
        // A short blocking wait opens the adaptive polling window (QEMU's rule: an event soon
        // after blocking means polling would have caught it).
        // On a loaded machine the timer may expire before the loop blocks; then nothing is adjusted:
        // arm again (bounded).
        Timer t = ctx.timer("open-window", () -> { });
        for (int attempt = 0; attempt < 50 && ctx.pollWindowNanos() == 0; attempt++) {
            t.armIn(Duration.ofMillis(1).toNanos());
            while (t.isArmed()) {
                ctx.poll(true);
            }
        }
        assertThat(ctx.pollWindowNanos()).isPositive();
        assertThat(ring.prepareNop("nop")).isTrue();
        assertThat(ring.submit()).isEqualTo(1); // completed inside the enter, not reaped
        long hits = ctx.pollHits();
        assertThat(ctx.poll(true)).isTrue();
        assertThat(ctx.pollHits()).as("found by the busy poll, before any fd wait").isEqualTo(hits + 1);
        assertThat(done.requests).containsExactly("nop");
        assertThat(ring.completionsReady()).isFalse();
    }
}
