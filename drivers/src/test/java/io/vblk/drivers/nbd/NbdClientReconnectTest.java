package io.vblk.drivers.nbd;

import io.vblk.aio.AioContext;
import io.vblk.aio.linuxaio.LoopSteps;
import io.vblk.aio.sys.Errno;
import io.vblk.drivers.BlockChannel;
import io.vblk.drivers.BlockDriver;
import io.vblk.drivers.BlockIo;
import io.vblk.drivers.TestImages;
import io.vblk.drivers.spec.DriverSpec;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The NBD client losing its server (qemu-nbd, Debian qemu-utils, killed and started again over the
 * same image and socket): with reconnect-delay a request made while the server is gone waits and
 * completes with the right data once it is back; with reconnect-delay=0 it fails with EIO at once,
 * and the channel reconnects by itself for the requests after.
 */
@Tag("real")
@Timeout(120)
class NbdClientReconnectTest {
    @TempDir
    Path dir;

    private long run(AioContext ctx, BlockChannel ch, BlockIo io) {
        long[] result = {Long.MIN_VALUE};
        io.completion = (d, r) -> result[0] = r;
        ch.submit(io);
        LoopSteps.pollUntil(ctx, () -> result[0] != Long.MIN_VALUE, BlockIo.opName(io.op) + " completes");
        return result[0];
    }

    @Test
    void requestsWaitForTheServerWithinReconnectDelay() {
        String img = TestImages.create(dir, "img", 4 << 20);
        String sock = dir.resolve("q.sock").toString();
        AioContext ctx = AioContext.forCurrentThread("nbd-reconnect");
        Daemons.Daemon q = Daemons.qemuNbd(dir, sock, "disk", img, false);
        try (Arena arena = Arena.ofConfined();
             BlockDriver d = DriverSpec.open("nbd:server.type=unix,server.path=" + sock + ",export=disk,reconnect-delay=30")) {
            BlockChannel ch = d.openChannel(ctx);
            MemorySegment buf = arena.allocate(8192, 4096);
            buf.fill((byte) 0x6b);
            BlockIo w = new BlockIo(arena, 1).rw(BlockIo.WRITE, 8192, null);
            w.iov.add(buf.address(), 8192);
            assertThat(run(ctx, ch, w)).isEqualTo(8192);
            assertThat(run(ctx, ch, new BlockIo(arena, 1).range(BlockIo.FLUSH, 0, 0, 0, null))).isZero();

            q.close(); // the server goes away
            MemorySegment r = arena.allocate(8192, 4096);
            long[] result = {Long.MIN_VALUE};
            BlockIo rd = new BlockIo(arena, 1).rw(BlockIo.READ, 8192, (io, res) -> result[0] = res);
            rd.iov.add(r.address(), 8192);
            ch.submit(rd);
            for (int i = 0; i < 20; i++) {
                ctx.poll(false); // the end of stream is there already: the server has exited
            }
            assertThat(result[0]).as("the read waits for the server").isEqualTo(Long.MIN_VALUE);
            q = Daemons.qemuNbd(dir, sock, "disk", img, false);
            LoopSteps.pollUntil(ctx, () -> result[0] != Long.MIN_VALUE, "the read completes after the reconnect");
            assertThat(result[0]).isEqualTo(8192);
            for (long i = 0; i < 8192; i++) {
                assertThat(r.get(java.lang.foreign.ValueLayout.JAVA_BYTE, i)).isEqualTo((byte) 0x6b);
            }
            ch.close();
        } finally {
            q.close();
            ctx.close();
        }
    }

    @Test
    void withoutReconnectDelayRequestsFailThenTheChannelComesBack() {
        String img = TestImages.create(dir, "img", 4 << 20);
        String sock = dir.resolve("q.sock").toString();
        AioContext ctx = AioContext.forCurrentThread("nbd-reconnect0");
        Daemons.Daemon q = Daemons.qemuNbd(dir, sock, "disk", img, false);
        try (Arena arena = Arena.ofConfined();
             BlockDriver d = DriverSpec.open("nbd:server.type=unix,server.path=" + sock + ",export=disk")) {
            BlockChannel ch = d.openChannel(ctx);
            MemorySegment buf = arena.allocate(4096, 4096);
            q.close();
            long res;
            do { // the first request after the kill may still be written before the loss is seen
                BlockIo rd = new BlockIo(arena, 1).rw(BlockIo.READ, 0, null);
                rd.iov.add(buf.address(), 4096);
                res = run(ctx, ch, rd);
            } while (res == 4096);
            assertThat(res).isEqualTo(-Errno.EIO);
            q = Daemons.qemuNbd(dir, sock, "disk", img, false);
            long deadline = System.nanoTime() + 60_000_000_000L;
            while (true) {
                BlockIo rd = new BlockIo(arena, 1).rw(BlockIo.READ, 0, null);
                rd.iov.add(buf.address(), 4096);
                if (run(ctx, ch, rd) == 4096) {
                    break;
                }
                assertThat(System.nanoTime()).as("reads succeed again once the channel reconnected").isLessThan(deadline);
                ctx.poll(true); // blocks until the reconnect timer (1 s) fires
            }
            ch.close();
        } finally {
            q.close();
            ctx.close();
        }
    }
}
