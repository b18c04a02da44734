package io.vblk.aio.uring;

import io.vblk.aio.AioContext;
import io.vblk.aio.linuxaio.LoopSteps;
import io.vblk.aio.sys.Errno;
import io.vblk.aio.sys.FileIo;
import io.vblk.aio.sys.Mmap;

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
import org.junit.jupiter.params.provider.ValueSource;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Home thread: the test thread is the context's.
 *
 * <p>Registered buffers over a 1 MiB shared memfd mapping, as guest RAM is mapped from
 * SET_MEM_TABLE: fixed and vectored-fixed reads and writes move the right bytes, and the kernel's
 * refusals complete the request once with the error.
 */
@SuppressWarnings("restricted")
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class IoUringBuffersTest {
    private static final int BLOCK = 4096;
    private static final long REGION = 1 << 20;

    @TempDir
    Path dir;
    private AioContext ctx;
    private Arena arena;
    private final List<Integer> fds = new ArrayList<>();
    private IoUring ring;
    private final IoUringTest.Done done = new IoUringTest.Done();
    private long regionAddr;
    private MemorySegment region;

    @BeforeEach
    void setUp() {
        ctx = AioContext.forCurrentThread("uring-buffers-test");
        arena = Arena.ofConfined();
        int memfd = Mmap.memfdCreate("guest-ram", Mmap.MFD_CLOEXEC);
        assertThat(memfd).as("memfd_create: %s", Errno.name(-memfd)).isNotNegative();
        fds.add(memfd);
        assertThat(FileIo.ftruncate(memfd, REGION)).isZero();
        regionAddr = Mmap.mmap(0, REGION, Mmap.PROT_READ | Mmap.PROT_WRITE, Mmap.MAP_SHARED, memfd, 0);
        assertThat(regionAddr).as("mmap").isPositive();
        region = MemorySegment.ofAddress(regionAddr).reinterpret(REGION);
        ring = IoUring.open(ctx, 32, done);
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
            Mmap.munmap(regionAddr, REGION);
            arena.close();
            ctx.close();
        }
    }

    private int openFile(String name, boolean direct, long size) {
        int flags = FileIo.O_RDWR | FileIo.O_CREAT | FileIo.O_CLOEXEC | (direct ? FileIo.O_DIRECT : 0);
        int fd = FileIo.open(dir.resolve(name).toString(), flags, 0600);
        assertThat(fd).as("open: %s", Errno.name(-fd)).isGreaterThanOrEqualTo(0);
        fds.add(fd);
        assertThat(FileIo.ftruncate(fd, size)).isZero();
        return fd;
    }

    /** An iovec array over the region from byte {@code at}, cut into segments of the given sizes. */
    private MemorySegment iov(long at, int... sizes) {
        return IoVecs.cut(arena, regionAddr + at, sizes);
    }

    private void pollUntilCount(int n, String what) {
        LoopSteps.pollUntil(ctx, () -> done.count() >= n, Duration.ofSeconds(20), what);
    }

    private void assertFileHolds(int fd, long offset, MemorySegment expected) {
        MemorySegment check = arena.allocate(expected.byteSize(), BLOCK);
        assertThat(FileIo.pread(fd, check.address(), expected.byteSize(), offset)).isEqualTo(expected.byteSize());
        assertThat(check.mismatch(expected)).as("file at %d", offset).isEqualTo(-1);
    }

    @ParameterizedTest(name = "O_DIRECT={0}")
    @ValueSource(booleans = {true, false})
    void fixedWritesAndReadsMoveTheBytesOfTheRegisteredRegion(boolean direct) {
        int fd = openFile("img", direct, REGION);
        UringBuffers buffers = ring.buffers();
        assertThat(buffers.register(region)).isZero();
        assertThat(buffers.count()).isEqualTo(1);
        assertThat(buffers.indexOf(regionAddr + REGION - BLOCK, BLOCK)).isZero();
        assertThat(buffers.indexOf(regionAddr + REGION - BLOCK, BLOCK + 1)).as("past the end").isEqualTo(-1);
        int n = 16;
        MemorySegment out = region.asSlice(0, (long) n * 2 * BLOCK);
        IoVecs.fillPattern(out, 3);
        for (int i = 0; i < n; i++) {
            long off = (long) (i * 7 % n) * 2 * BLOCK; // scattered
            assertThat(buffers.prepareWriteFixed(fd, regionAddr + (long) i * 2 * BLOCK, 2 * BLOCK, off, 0, 0, "w" + i))
                    .isTrue();
        }
        assertThat(ring.submit()).isEqualTo(n);
        pollUntilCount(n, "fixed writes");
        long inAt = REGION / 2;
        for (int i = 0; i < n; i++) {
            assertThat(done.resultOf("w" + i)).isEqualTo(2 * BLOCK);
            long off = (long) (i * 7 % n) * 2 * BLOCK;
            assertFileHolds(fd, off, out.asSlice((long) i * 2 * BLOCK, 2 * BLOCK));
            assertThat(buffers.prepareReadFixed(fd, regionAddr + inAt + (long) i * 2 * BLOCK, 2 * BLOCK, off, 0, "r" + i))
                    .isTrue();
        }
        assertThat(ring.submit()).isEqualTo(n);
        pollUntilCount(2 * n, "fixed reads");
        for (int i = 0; i < n; i++) {
            assertThat(done.resultOf("r" + i)).isEqualTo(2 * BLOCK);
        }
        assertThat(region.asSlice(inAt, out.byteSize()).mismatch(out)).isEqualTo(-1);
        assertThat(buffers.unregister()).isZero();
        assertThat(buffers.count()).isZero();
    }

    @ParameterizedTest(name = "O_DIRECT={0}")
    @ValueSource(booleans = {true, false})
    void vectoredFixedWritesAndReadsMoveTheBytesOfTheRegisteredRegion(boolean direct) {
        int fd = openFile("img", direct, REGION);
        UringBuffers buffers = ring.buffers();
        // Two buffers, as two guest RAM regions: the second half is buffer 1.
        assertThat(buffers.register(region.asSlice(0, REGION / 2), region.asSlice(REGION / 2))).isZero();
        assertThat(buffers.indexOf(regionAddr + REGION / 2 + BLOCK, BLOCK)).isEqualTo(1);
        int n = 8;
        MemorySegment out = region.asSlice(0, (long) n * 2 * BLOCK);
        IoVecs.fillPattern(out, 5);
        for (int i = 0; i < n; i++) {
            // Three segments, sector-aligned for O_DIRECT, as a guest's scatter list.
            MemorySegment iov = iov((long) i * 2 * BLOCK, 1024, 4096, 3072);
            assertThat(buffers.prepareWritevFixed(fd, iov.address(), 3, (long) (n - 1 - i) * 2 * BLOCK, 0, 0, "w" + i))
                    .isTrue();
        }
        assertThat(ring.submit()).isEqualTo(n);
        pollUntilCount(n, "vectored fixed writes");
        long inAt = REGION / 2;
        for (int i = 0; i < n; i++) {
            assertThat(done.resultOf("w" + i)).as("WRITEV_FIXED (Linux 6.15) result").isEqualTo(2 * BLOCK);
            assertFileHolds(fd, (long) (n - 1 - i) * 2 * BLOCK, out.asSlice((long) i * 2 * BLOCK, 2 * BLOCK));
            MemorySegment iov = iov(inAt + (long) i * 2 * BLOCK, 512, 512, 2048, 5120);
            assertThat(buffers.prepareReadvFixed(fd, iov.address(), 4, (long) (n - 1 - i) * 2 * BLOCK, 1, "r" + i))
                    .isTrue();
        }
        assertThat(ring.submit()).isEqualTo(n);
        pollUntilCount(2 * n, "vectored fixed reads");
        for (int i = 0; i < n; i++) {
            assertThat(done.resultOf("r" + i)).isEqualTo(2 * BLOCK);
        }
        assertThat(region.asSlice(inAt, out.byteSize()).mismatch(out)).isEqualTo(-1);
        assertThat(ring.counters().shortReadResubmits()).isZero();
    }

    @Test
    void shortFixedReadsAtEndOfFileAreResubmittedForTheRest() {
        int fd = openFile("short", false, 0);
        MemorySegment content = arena.allocate(5000, 8);
        IoVecs.fillPattern(content, 9);
        assertThat(FileIo.pwrite(fd, content.address(), 5000, 0)).isEqualTo(5000);
        assertThat(ring.buffers().register(region)).isZero();
        region.asSlice(0, 3 * 8192).fill((byte) 0x77);
        assertThat(ring.buffers().prepareReadFixed(fd, regionAddr, 8192, 0, 0, "read")).isTrue();
        assertThat(ring.buffers().prepareReadvFixed(fd, iov(8192, BLOCK, 2048, 2048).address(), 3, 0, 0, "readv"))
                .isTrue();
        ring.submit();
        pollUntilCount(2, "short reads");
        assertThat(done.resultOf("read")).as("bytes up to end of file").isEqualTo(5000);
        assertThat(done.resultOf("readv")).isEqualTo(5000);
        assertThat(region.asSlice(0, 5000).mismatch(content)).isEqualTo(-1);
        assertThat(region.asSlice(8192, 5000).mismatch(content)).isEqualTo(-1);
        assertThat(region.get(ValueLayout.JAVA_BYTE, 5000)).as("past the end untouched").isEqualTo((byte) 0x77);
        // Each read returned the 5000 bytes there were, and its resubmitted remainder found end of file.
        assertThat(ring.counters().shortReadResubmits()).isEqualTo(2);
    }

    @Test
    void theKernelsRefusalsCompleteTheRequestOnceWithTheError() {
        int fd = openFile("img", false, REGION);
        UringBuffers buffers = ring.buffers();
        // Nothing registered yet: no buffer 0.
        assertThat(buffers.prepareReadFixed(fd, regionAddr, BLOCK, 0, 0, "unregistered")).isTrue();
        ring.submit();
        pollUntilCount(1, "unregistered");
        assertThat(done.resultOf("unregistered")).isNegative();
        assertThat(buffers.register(region)).isZero();
        assertThat(buffers.register(region)).as("already registered").isEqualTo(-Errno.EBUSY);
        assertThat(buffers.prepareReadFixed(fd, regionAddr, BLOCK, 0, 1, "no-such-index")).isTrue();
        assertThat(buffers.prepareReadFixed(fd, regionAddr + REGION - BLOCK, 2 * BLOCK, 0, 0, "past-the-buffer")).isTrue();
        assertThat(buffers.prepareReadvFixed(fd, iov(REGION - BLOCK, BLOCK, BLOCK).address(), 2, 0, 0,
                "segment-past-the-buffer")).isTrue();
        // An opcode the kernel does not know (as READV_FIXED on a kernel before 6.15): -EINVAL.
        assertThat(ring.take(SqeLayout.IORING_OP_READV_FIXED + 100, fd, iov(0, BLOCK).address(), 1, 0, 0, 0,
                "unknown-opcode")).isTrue();
        ring.submit();
        pollUntilCount(5, "refusals");
        assertThat(done.resultOf("no-such-index")).isEqualTo(-Errno.EFAULT);
        assertThat(done.resultOf("past-the-buffer")).isEqualTo(-Errno.EFAULT);
        assertThat(done.resultOf("segment-past-the-buffer")).isEqualTo(-Errno.EFAULT);
        assertThat(done.resultOf("unknown-opcode")).isEqualTo(-Errno.EINVAL);
        assertThat(ring.inFlight()).isZero();
        assertThat(buffers.unregister()).isZero();
    }

    @Test
    void aRegionOverTheKernelsBufferLimitIsRefusedAndNothingIsRegistered() {
        // Address space only (PROT_NONE, not populated): io_buffer_validate refuses the length first.
        long big = UringBuffers.MAX_BUFFER_BYTES + BLOCK;
        long addr = Mmap.mmap(0, big, Mmap.PROT_NONE, Mmap.MAP_PRIVATE | Mmap.MAP_ANONYMOUS, -1, 0);
        assertThat(addr).isPositive();
        try {
            assertThat(ring.buffers().register(MemorySegment.ofAddress(addr).reinterpret(big)))
                    .isEqualTo(-Errno.EFAULT);
            assertThat(ring.buffers().count()).isZero();
            assertThat(ring.buffers().register()).isEqualTo(-Errno.EINVAL);
        } finally {
            Mmap.munmap(addr, big);
        }
    }
}
