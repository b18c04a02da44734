package io.vblk.virtio.vhost;

import io.vblk.aio.sys.Errno;
import io.vblk.aio.sys.UnixSockets;
import io.vblk.virtio.vhost.socket.VhostUserSocket;
import io.vblk.virtio.vhost.wire.VhostUserCodec;
import io.vblk.virtio.vhost.wire.VhostUserMessage;
import io.vblk.virtio.vhost.wire.VhostUserRequest;

/**
 * A hand-driven vhost-user client for tests that must send what no well-behaved front-end sends:
 * raw bytes, truncated messages, wrong sizes, missing fds. It reads and writes through the shared
 * {@link VhostUserSocket} (the frame reader/writer the server and the front-end use) and waits,
 * bounded, with poll.
 *
 * <p>Any thread, one at a time (test code).
 */
public final class RawClient implements AutoCloseable {
    private final VhostUserSocket socket;

    public RawClient(String path) {
        socket = VhostUserSocket.connect(path);
    }

    public void sendBytes(byte[] b, int... attach) {
        long n = socket.sendBytes(b, attach);
        if (n < 0) {
            throw new AssertionError("sendmsg: " + Errno.name((int) -n));
        }
    }

    public void send(VhostUserMessage m) {
        sendBytes(VhostUserCodec.encode(m), m.fds());
    }

    public void send(VhostUserRequest r, boolean needReply, byte[] payload, int... attach) {
        send(VhostUserMessage.request(r, needReply, payload, attach));
    }

    /** Reads one reply (bounded); a reply that breaks the request table fails the test. */
    public VhostUserMessage reply(long timeoutMs) throws Exception {
        long deadline = System.nanoTime() + timeoutMs * 1_000_000;
        while (true) {
            VhostUserMessage m;
            try {
                m = socket.receive();
            } catch (VhostUserSocket.PeerGoneException e) {
                throw new AssertionError("connection closed while waiting for a reply (" + e.getMessage() + ")");
            }
            if (m != null) {
                return m;
            }
            long left = (deadline - System.nanoTime()) / 1_000_000;
            if (left <= 0 || UnixSockets.poll(socket.fd(), UnixSockets.POLLIN, (int) left) == 0) {
                throw new AssertionError("no reply within " + timeoutMs + " ms");
            }
        }
    }

    /** True when nothing arrives within {@code ms} (the server is silent, e.g. a reply is pending). */
    public boolean silentFor(int ms) {
        return UnixSockets.poll(socket.fd(), UnixSockets.POLLIN, ms) == 0;
    }

    /** Waits (bounded) until the server closes the connection; fails if it sends data instead. */
    public void awaitClosedByServer(long timeoutMs) {
        int p = UnixSockets.poll(socket.fd(), UnixSockets.POLLIN, (int) timeoutMs);
        if (p == 0) {
            throw new AssertionError("connection still open after " + timeoutMs + " ms");
        }
        try {
            VhostUserMessage m = socket.receive();
            throw new AssertionError("expected end of stream, got " + m);
        } catch (VhostUserSocket.PeerGoneException e) {
            if (e.errno != 0 && e.errno != Errno.ECONNRESET) {
                throw new AssertionError("expected end of stream, got " + e.getMessage());
            }
        } catch (Exception e) {
            throw new AssertionError("expected end of stream, got " + e, e);
        }
    }

    @Override
    public void close() {
        socket.close();
    }
}
