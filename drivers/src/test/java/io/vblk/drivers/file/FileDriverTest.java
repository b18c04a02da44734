package io.vblk.drivers.file;

import io.vblk.aio.engine.AioMode;
import io.vblk.aio.AioContext;
import io.vblk.aio.linuxaio.LoopSteps;
import io.vblk.aio.sys.FileIo;
import io.vblk.aio.sys.Mmap;
import io.vblk.drivers.BlockChannel;
import io.vblk.drivers.BlockIo;
import io.vblk.drivers.TestImages;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

@Timeout(value = 30, unit = TimeUnit.SECONDS)
class FileDriverTest {
    @TempDir
    Path dir;

    private static long run(AioContext ctx, BlockChannel ch, BlockIo io) {
        long[] res = {Long.MIN_VALUE};
        int[] count = {0};
        io.completion = (q, r) -> {
            res[0] = r;
            count[0]++;
        };
        ch.submit(io);
        LoopSteps.pollUntil(ctx, () -> count[0] > 0, BlockIo.opName(io.op));
        ctx.poll(false);
        assertThat(count[0]).isEqualTo(1);
        return res[0];
    }

    /**
     * Secure erase on a regular file is served by zero writes (the conformance suite reads the
     * zeroes back); BLKSECDISCARD itself is a block-device ioctl: on a file the facade returns
     * -ENOTTY and the probe says no, so a file never takes the ioctl path.
     */
    @Test
    void secureEraseOnARegularFileIsZeroWritesNotTheIoctl() {
        String img = TestImages.create(dir, "erase.img", 1 << 20);
        try (FileDriver d = FileDriver.open(img, AioMode.THREADS, FileDriver.Cache.WRITEBACK, false);
             FileDriver ro = FileDriver.open(img, AioMode.THREADS, FileDriver.Cache.WRITEBACK, true)) {
            assertThat(d.isBlockDevice()).isFalse();
            assertThat(d.supportsSecureErase()).isTrue();
            assertThat(d.secureDiscard()).isFalse();
            assertThat(ro.supportsSecureErase()).isFalse();
            assertThat(FileIo.secureDiscard(d.fd(), 0, 4096)).isEqualTo(-io.vblk.aio.sys.Errno.ENOTTY);
            assertThat(FileIo.secureDiscardSupported(d.fd())).isFalse();
        }
    }

    @Test
    void writeZeroesFallsBackToWritingWhenZeroRangeIsUnsupported() {
        // A memfd lives on shmem, whose fallocate knows PUNCH_HOLE but not ZERO_RANGE (EOPNOTSUPP).
        int mfd = Mmap.memfdCreate("vblk-zero-fallback", Mmap.MFD_CLOEXEC);
        assertThat(FileIo.ftruncate(mfd, 1 << 20)).isZero();
        AioContext ctx = AioContext.forCurrentThread("zero-fallback");
        try (Arena arena = Arena.ofConfined();
             FileDriver d = FileDriver.open("/proc/self/fd/" + mfd, AioMode.NATIVE, FileDriver.Cache.WRITEBACK, false)) {
            BlockChannel ch = d.openChannel(ctx);
            MemorySegment buf = arena.allocate(3L << 20 >> 2, 4096); // 768 KiB
            buf.fill((byte) 0x77);
            BlockIo io = new BlockIo(arena, 4).rw(BlockIo.WRITE, 0, null);
            io.iov.add(buf.address(), buf.byteSize());
            assertThat(run(ctx, ch, io)).isEqualTo(buf.byteSize());
            assertThat(d.writesZeroes()).isFalse();
            // The first request finds out that ZERO_RANGE is unsupported; the second goes straight
            // to writing zeroes.
            assertThat(run(ctx, ch, io.range(BlockIo.WRITE_ZEROES, 1000, 300 * 1024 + 5, 0, null))).isZero();
            assertThat(d.writesZeroes()).isTrue();
            assertThat(run(ctx, ch, io.range(BlockIo.WRITE_ZEROES, 400 * 1024, 1, 0, null))).isZero();
            buf.fill((byte) 1);
            io.rw(BlockIo.READ, 0, null);
            io.iov.add(buf.address(), buf.byteSize());
            assertThat(run(ctx, ch, io)).isEqualTo(buf.byteSize());
            MemorySegment want = arena.allocate(buf.byteSize());
            want.fill((byte) 0x77);
            want.asSlice(1000, 300 * 1024 + 5).fill((byte) 0);
            want.set(ValueLayout.JAVA_BYTE, 400 * 1024, (byte) 0);
            assertThat(buf.mismatch(want)).as("first differing byte").isEqualTo(-1);
            ch.close();
        } finally {
            ctx.close();
            FileIo.close(mfd);
        }
    }

    @Test
    void largeWriteZeroesFallbackSpansManyChunks() {
        int mfd = Mmap.memfdCreate("vblk-zero-chunks", Mmap.MFD_CLOEXEC);
        long size = 8L << 20;
        assertThat(FileIo.ftruncate(mfd, size)).isZero();
        AioContext ctx = AioContext.forCurrentThread("zero-chunks");
        try (Arena arena = Arena.ofConfined();
             FileDriver d = FileDriver.open("/proc/self/fd/" + mfd, AioMode.THREADS, FileDriver.Cache.WRITEBACK, false)) {
            BlockChannel ch = d.openChannel(ctx);
            MemorySegment buf = arena.allocate(size, 4096);
            buf.fill((byte) 0x33);
            BlockIo io = new BlockIo(arena, 4).rw(BlockIo.WRITE, 0, null);
            io.iov.add(buf.address(), size);
            assertThat(run(ctx, ch, io)).isEqualTo(size);
            assertThat(run(ctx, ch, io.range(BlockIo.WRITE_ZEROES, 4096, size - 8192, 0, null))).isZero();
            io.rw(BlockIo.READ, 0, null);
            io.iov.add(buf.address(), size);
            assertThat(run(ctx, ch, io)).isEqualTo(size);
            assertThat(buf.get(ValueLayout.JAVA_BYTE, 4095)).isEqualTo((byte) 0x33);
            assertThat(buf.asSlice(4096, size - 8192).mismatch(arena.allocate(size - 8192))).isEqualTo(-1);
            assertThat(buf.get(ValueLayout.JAVA_BYTE, size - 4096)).isEqualTo((byte) 0x33);
            ch.close();
        } finally {
            ctx.close();
            FileIo.close(mfd);
        }
    }

    /**
     * A read that ends past end of file comes back short from every engine (io_uring: the ring
     * resubmits the remainder, which reads 0 bytes at end of file) and the driver zero-fills the rest.
     */
    @ParameterizedTest
    @EnumSource(AioMode.class)
    void readPastAShrunkFileIsPaddedWithZeroes(AioMode mode) {
        String img = TestImages.create(dir, "shrink", 64 * 1024);
        AioContext ctx = AioContext.forCurrentThread("shrink");
        try (Arena arena = Arena.ofConfined();
             FileDriver d = FileDriver.open(img, mode, FileDriver.Cache.WRITEBACK, false)) {
            BlockChannel ch = d.openChannel(ctx);
            MemorySegment buf = arena.allocate(8192, 4096);
            buf.fill((byte) 0x44);
            BlockIo io = new BlockIo(arena, 2).rw(BlockIo.WRITE, 32 * 1024, null);
            io.iov.add(buf.address(), 8192);
            assertThat(run(ctx, ch, io)).isEqualTo(8192);
            int fd = FileIo.open(img, FileIo.O_RDWR, 0);
            assertThat(FileIo.ftruncate(fd, 36 * 1024)).isZero(); // someone shrinks it underneath
            FileIo.close(fd);
            buf.fill((byte) 0x55);
            io.rw(BlockIo.READ, 32 * 1024, null);
            io.iov.add(buf.address(), 8192);
            assertThat(run(ctx, ch, io)).isEqualTo(8192);
            assertThat(buf.get(ValueLayout.JAVA_BYTE, 4095)).isEqualTo((byte) 0x44);
            assertThat(buf.get(ValueLayout.JAVA_BYTE, 4096)).isZero();
            assertThat(buf.get(ValueLayout.JAVA_BYTE, 8191)).isZero();
            ch.close();
        } finally {
            ctx.close();
        }
    }

    @Test
    void openErrorsNameThePathAndTheReason() {
        String missing = dir.resolve("missing.img").toString();
        assertThatThrownBy(() -> FileDriver.open(missing, AioMode.THREADS, FileDriver.Cache.WRITEBACK, false))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining(missing).hasMessageContaining("ENOENT");
        String odd = TestImages.create(dir, "odd.img", 1000);
        assertThatThrownBy(() -> FileDriver.open(odd, AioMode.NATIVE, FileDriver.Cache.NONE, false))
                .hasMessageContaining("cache=none").hasMessageContaining("1000 bytes");
        assertThatThrownBy(() -> FileDriver.open(odd, AioMode.IO_URING, FileDriver.Cache.NONE, false))
                .hasMessageContaining("cache=none").hasMessageContaining("1000 bytes");
        try (FileDriver d = FileDriver.open(odd, AioMode.NATIVE, FileDriver.Cache.WRITEBACK, true)) {
            assertThat(d.length()).isEqualTo(1000);
            assertThat(d.alignment()).isEqualTo(1);
            assertThat(d.readOnly()).isTrue();
        }
    }

    @Test
    void directIoReportsTheKernelsAlignment() {
        String img = TestImages.create(dir, "al.img", 1 << 20);
        try (FileDriver d = FileDriver.open(img, AioMode.NATIVE, FileDriver.Cache.NONE, false)) {
            assertThat(Integer.bitCount(d.alignment())).isEqualTo(1);
            assertThat(d.alignment()).isBetween(512, 4096);
            assertThat(Integer.bitCount(d.memoryAlignment())).isEqualTo(1);
        }
    }
}
