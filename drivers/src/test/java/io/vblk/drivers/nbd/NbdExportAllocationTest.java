package io.vblk.drivers.nbd;

import io.vblk.drivers.nullblk.NullDriver;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.file.Path;

import static io.vblk.drivers.nbd.NbdProtocol.*;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * The export's request path allocates no object per request: 4 KiB reads, 8 in flight, from a raw
 * client; the bytes the export's IoThread allocates over a window of requests are counted with
 * {@code ThreadMXBean.getThreadAllocatedBytes} once the JIT has settled (the best of a few windows,
 * as {@code Allocations} does for the engines). The smallest object is 16 bytes, so under 4 bytes
 * per request means at most one object per four requests. Measured (two runs, loaded machine):
 * windows of 35–78 KB (under 4 bytes a request) while the JIT settles, then a window of 0 bytes;
 * the bound is kept loose because on a loaded machine the settling can take longer than the test.
 */
@Timeout(120)
class NbdExportAllocationTest {
    private static final int WINDOW = 20_000;
    private static final int DEPTH = 8;

    @TempDir
    Path dir;

    @Test
    void readsAllocateNoObjectPerRequestOnTheExportsIoThread() throws IOException {
        try (NbdFixture s = new NbdFixture(dir, new NullDriver(1 << 20, NullDriver.Completion.SYNC), "disk", true);
             SocketChannel ch = SocketChannel.open(UnixDomainSocketAddress.of(s.socket))) {
            negotiate(ch);
            com.sun.management.ThreadMXBean mx = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
            long tid = s.io.thread().threadId();
            ByteBuffer req = ByteBuffer.allocateDirect(28 * DEPTH);
            ByteBuffer reply = ByteBuffer.allocateDirect((16 + 4096) * DEPTH);
            run(ch, req, reply, 3 * WINDOW); // warm-up: the JIT settles, buffers and pools reach size
            long best = Long.MAX_VALUE;
            for (int w = 0; w < 8 && best > 1024; w++) {
                long before = mx.getThreadAllocatedBytes(tid);
                run(ch, req, reply, WINDOW);
                best = Math.min(best, mx.getThreadAllocatedBytes(tid) - before);
                System.out.println("nbd export io thread: " + (mx.getThreadAllocatedBytes(tid) - before) + " bytes over "
                        + WINDOW + " reads");
            }
            assertThat(best).as("bytes allocated by the export's IoThread over %d reads", WINDOW).isLessThan(4L * WINDOW);
        }
    }

    private static void negotiate(SocketChannel ch) throws IOException {
        read(ch, ByteBuffer.allocate(18));
        ch.write(ByteBuffer.allocate(4).putInt(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES).flip());
        byte[] n = "disk".getBytes();
        ByteBuffer go = ByteBuffer.allocate(16 + 6 + n.length).putLong(IHAVEOPT).putInt(OPT_GO).putInt(6 + n.length)
                .putInt(n.length).put(n).putShort((short) 0).flip();
        while (go.hasRemaining()) {
            ch.write(go);
        }
        while (true) {
            ByteBuffer h = read(ch, ByteBuffer.allocate(20));
            int type = h.getInt(12);
            read(ch, ByteBuffer.allocate(h.getInt(16)));
            if (type == REP_ACK) {
                return;
            }
        }
    }

    private static ByteBuffer read(SocketChannel ch, ByteBuffer b) throws IOException {
        while (b.hasRemaining()) {
            if (ch.read(b) < 0) {
                throw new IOException("closed");
            }
        }
        return b.flip();
    }

    /** {@code n} reads of 4 KiB, {@link #DEPTH} at a time. */
    private static void run(SocketChannel ch, ByteBuffer req, ByteBuffer reply, int n) throws IOException {
        for (int done = 0; done < n; done += DEPTH) {
            req.clear();
            for (int i = 0; i < DEPTH; i++) {
                req.putInt(REQUEST_MAGIC).putShort((short) 0).putShort((short) CMD_READ).putLong(i)
                        .putLong(4096L * i).putInt(4096);
            }
            req.flip();
            while (req.hasRemaining()) {
                ch.write(req);
            }
            reply.clear();
            while (reply.hasRemaining()) {
                if (ch.read(reply) < 0) {
                    throw new IOException("closed");
                }
            }
            assertThat(reply.getInt(0)).isEqualTo(SIMPLE_REPLY_MAGIC);
            assertThat(reply.getInt(4)).isZero();
        }
    }
}
