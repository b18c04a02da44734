package io.vblk.aio.uring;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioOptions;
import io.vblk.aio.IoThread;
import io.vblk.aio.sys.Errno;
import io.vblk.aio.sys.Sys;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** Home thread: the ring lives on an IoThread; the test thread only hands work over and waits. */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class IoUringIoThreadTest {
    private static final int BLOCK = 4096;

    @TempDir
    Path dir;

    @ParameterizedTest(name = "wake={0}")
    @EnumSource(IoUring.Wake.class)
    void completionsWakeTheRingsIoThread(IoUring.Wake wake) throws Exception {
        int fd = Sys.open(dir.resolve("img").toString(), Sys.O_RDWR | Sys.O_CREAT | Sys.O_CLOEXEC | Sys.O_DIRECT, 0600);
        assertThat(fd).as("open: %s", Errno.name(fd)).isGreaterThanOrEqualTo(0);
        assertThat(Sys.ftruncate(fd, 1 << 20)).isZero();
        try (Arena arena = Arena.ofShared(); IoThread t = IoThread.start("uring-io", AioOptions.DEFAULT)) {
            MemorySegment b = arena.allocate(BLOCK, BLOCK);
            MemorySegment iovSeg = arena.allocate(16, 8);
            iovSeg.set(ValueLayout.JAVA_LONG, 0, b.address());
            iovSeg.set(ValueLayout.JAVA_LONG, 8, BLOCK);
            long iov = iovSeg.address();
            AioContext ioCtx = t.ctx();
            CompletableFuture<Long> result = new CompletableFuture<>();
            IoUring[] r = new IoUring[1];
            AioContext.await(ioCtx.callOn(() -> {
                r[0] = IoUring.open(ioCtx, 8, (req, res) -> result.complete(res), null, true, wake);
                assertThat(r[0].prepareReadv(fd, iov, 1, 0, "read")).isTrue();
                return r[0].submit();
            }), Duration.ofSeconds(10));
            assertThat(result.get(10, TimeUnit.SECONDS)).isEqualTo(BLOCK);
            assertThatThrownBy(() -> r[0].prepareNop("x")).as("another thread is refused (seed 002)")
                    .isInstanceOf(IllegalStateException.class).hasMessageContaining("home thread");
            AioContext.await(ioCtx.callOn(() -> {
                r[0].close();
                return null;
            }), Duration.ofSeconds(10));
        } finally {
            Sys.close(fd);
        }
    }
}
