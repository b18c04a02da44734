package io.vblk.virtio.vhost;

import io.vblk.aio.sys.Errno;
import io.vblk.aio.sys.ReceivedFds;
import io.vblk.aio.sys.Sys;
import io.vblk.virtio.vhost.wire.VhostUserCodec;
import io.vblk.virtio.vhost.wire.VhostUserFramer;
import io.vblk.virtio.vhost.wire.VhostUserMessage;
import io.vblk.virtio.vhost.wire.VhostUserRequest;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * A hand-driven vhost-user client for tests that must send what no well-behaved front-end sends:
 * raw bytes, truncated messages, wrong sizes, missing fds. Blocking socket, bounded waits.
 *
 * <p>Any thread, one at a time (test code).
 */
public final class RawClient implements AutoCloseable {
    private final int fd;
    private final Arena arena = Arena.ofConfined();
    private final MemorySegment buf = arena.allocate(VhostUserFramer.BUFFER_BYTES + 64, 8);
    private final ReceivedFds fds = new ReceivedFds();

    public RawClient(String path) {
        fd = Sys.unixConnect(path, false);
        if (fd < 0) {
            throw new AssertionError("connect " + path + ": " + Errno.name(-fd));
        }
    }

    public void sendBytes(byte[] b, int... attach) {
        MemorySegment.copy(MemorySegment.ofArray(b), 0, buf, 0, b.length);
        long n = Sys.sendmsg(fd, buf.address(), b.length, attach, attach.length);
        if (n != b.length) {
            throw new AssertionError("sendmsg: " + n);
        }
    }

    public void send(VhostUserMessage m) {
        sendBytes(VhostUserCodec.encode(m), m.fds());
    }

    public void send(VhostUserRequest r, boolean needReply, byte[] payload, int... attach) {
        send(VhostUserMessage.request(r, needReply, payload, attach));
    }

    /** Reads one reply (bounded). */
    public VhostUserMessage reply(long timeoutMs) throws Exception {
        VhostUserFramer f = new VhostUserFramer(VhostUserFramer.Direction.REPLIES, buf, Sys::close);
        while (true) {
            int p = Sys.poll(fd, Sys.POLLIN, (int) timeoutMs);
            if (p == 0) {
                throw new AssertionError("no reply within " + timeoutMs + " ms");
            }
            long n = Sys.recvmsg(fd, f.writeAddress(), f.wanted(), fds);
            if (n <= 0) {
                throw new AssertionError("connection closed while waiting for a reply (" + n + ")");
            }
            VhostUserMessage m = f.received((int) n, fds.fds, fds.count, fds.truncated);
            if (m != null) {
                return m;
            }
        }
    }

    /** True when nothing arrives within {@code ms} (the server is silent, e.g. a reply is pending). */
    public boolean silentFor(int ms) {
        return Sys.poll(fd, Sys.POLLIN, ms) == 0;
    }

    /** Waits (bounded) until the server closes the connection; fails if it sends data instead. */
    public void awaitClosedByServer(long timeoutMs) {
        int p = Sys.poll(fd, Sys.POLLIN, (int) timeoutMs);
        if (p == 0) {
            throw new AssertionError("connection still open after " + timeoutMs + " ms");
        }
        long n = Sys.recvmsg(fd, buf.address(), 64, fds);
        fds.closeAll();
        if (n != 0 && n != -Errno.ECONNRESET) {
            throw new AssertionError("expected end of stream, got " + n);
        }
    }

    @Override
    public void close() {
        Sys.close(fd);
        arena.close();
    }
}
