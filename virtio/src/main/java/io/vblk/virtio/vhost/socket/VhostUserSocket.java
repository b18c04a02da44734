package io.vblk.virtio.vhost.socket;

import io.vblk.aio.sys.Errno;
import io.vblk.aio.sys.ReceivedFds;
import io.vblk.aio.sys.FileIo;
import io.vblk.aio.sys.UnixSockets;
import io.vblk.virtio.vhost.wire.VhostUserCodec;
import io.vblk.virtio.vhost.wire.VhostUserFramer;
import io.vblk.virtio.vhost.wire.VhostUserMessage;
import io.vblk.virtio.vhost.wire.VhostUserMessageLayout;
import io.vblk.virtio.vhost.wire.VhostUserProtocolException;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * Home thread: its owner's (a connection's or a front-end's control context, or one test thread).
 * No locking.
 *
 * <p>The frame reader/writer of one vhost-user connection, shared by vblk's server
 * ({@link VhostUserConnection}) and the front-end (the guest side): an AF_UNIX stream fd, read
 * with non-blocking {@code recvmsg} (MSG_CMSG_CLOEXEC, room for 8 fds, MSG_CTRUNC reported) into a
 * {@link VhostUserFramer}, which keeps the partial-read state, frames by the header's size and
 * checks every message against the table of
 * {@link io.vblk.virtio.vhost.wire.VhostUserRequest}; and written with {@code sendmsg}, the fds
 * riding on the first byte. Netty's domain-socket channel cannot carry vhost-user messages (it
 * keeps one fd per read), hence the raw fd.
 *
 * <p>Reads stop at the end of the current message: the kernel merges fd-less messages in one
 * read but keeps a message's fds with its first byte, so fds that come with a read belong to the
 * message being assembled. Fds of a rejected or half-read message are closed.
 */
public final class VhostUserSocket implements AutoCloseable {
    /** The peer hung up ({@link #errno} 0) or the socket failed; carries what was read of a message. */
    public static final class PeerGoneException extends Exception {
        /** 0 for an orderly end of stream, else the errno recvmsg returned. */
        public final int errno;
        /** Bytes of a partly read message, 0 between messages. */
        public final int bytesSoFar;

        PeerGoneException(int errno, int bytesSoFar) {
            super(errno == 0 ? "end of stream" : "recvmsg failed: " + Errno.name(errno), null, false, false);
            this.errno = errno;
            this.bytesSoFar = bytesSoFar;
        }

        /** True when the peer went away in the middle of a message (bytes or fds of it were read). */
        public boolean midMessage() {
            return bytesSoFar > 0;
        }
    }

    private final int fd;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment sendBuf = arena.allocate(VhostUserFramer.BUFFER_BYTES, 8);
    private final VhostUserFramer framer;
    private final ReceivedFds received = new ReceivedFds();
    private boolean closed;

    /**
     * @param fd    a connected AF_UNIX stream socket, non-blocking; the socket owns it from now on
     * @param reads which side's messages arrive here: {@link VhostUserFramer.Direction#REQUESTS} on
     *              the back-end, {@link VhostUserFramer.Direction#REPLIES} on the front-end
     */
    public VhostUserSocket(int fd, VhostUserFramer.Direction reads) {
        this.fd = fd;
        this.framer = new VhostUserFramer(reads, arena.allocate(VhostUserFramer.BUFFER_BYTES, 8), FileIo::close);
    }

    /**
     * Connects to the vhost-user socket at {@code path} (non-blocking, close-on-exec), as a
     * front-end. Throws {@link IllegalStateException} naming the path and the error.
     */
    public static VhostUserSocket connect(String path) {
        int fd = UnixSockets.unixConnect(path, true);
        if (fd < 0) {
            throw new IllegalStateException("vhost-user " + path + ": connect failed: " + Errno.name(-fd));
        }
        return new VhostUserSocket(fd, VhostUserFramer.Direction.REPLIES);
    }

    public int fd() {
        return fd;
    }

    /**
     * Reads until one message is complete and returns it (its fds are the caller's now), or
     * returns null when the socket has nothing more to read now (EAGAIN; a partial message is kept).
     *
     * @throws VhostUserProtocolException the message broke the table (its fds are closed); the
     *                                    socket must be closed
     * @throws PeerGoneException          end of stream or a failed read; the socket must be closed
     */
    public VhostUserMessage receive() throws VhostUserProtocolException, PeerGoneException {
        while (true) {
            long n = UnixSockets.recvmsg(fd, framer.writeAddress(), framer.wanted(), received);
            if (n == -Errno.EAGAIN) {
                return null;
            }
            if (n <= 0) {
                received.closeAll();
                throw new PeerGoneException((int) -n, framer.bytesSoFar());
            }
            VhostUserMessage m = framer.received((int) n, received.fds, received.count, received.truncated);
            if (m != null) {
                return m;
            }
        }
    }

    /**
     * Sends {@code m} (header, payload, its fds with the first byte; the sender keeps its fds).
     * Returns 0, or -errno: -EAGAIN when the peer does not read and the socket buffer is full,
     * -EPIPE / -ECONNRESET when it has gone.
     */
    public long send(VhostUserMessage m) {
        VhostUserCodec.putHeader(sendBuf, 0, m);
        MemorySegment.copy(MemorySegment.ofArray(m.payload()), 0, sendBuf, VhostUserMessageLayout.HEADER_BYTES, m.size());
        return sendBuffered(VhostUserMessageLayout.HEADER_BYTES + m.size(), m.fds());
    }

    /**
     * Sends raw bytes with {@code fds} on the first byte: for tests that must write what no
     * well-behaved peer writes (a truncated header, a bad size). Returns 0 or -errno.
     */
    public long sendBytes(byte[] bytes, int... fds) {
        if (bytes.length > sendBuf.byteSize()) {
            throw new IllegalArgumentException(bytes.length + " bytes, at most " + sendBuf.byteSize() + " per send");
        }
        MemorySegment.copy(MemorySegment.ofArray(bytes), 0, sendBuf, 0, bytes.length);
        return sendBuffered(bytes.length, fds);
    }

    private long sendBuffered(int len, int[] fds) {
        if (closed) {
            return -Errno.EBADF;
        }
        long off = 0;
        while (off < len) {
            // The fds ride with the first byte; a short write sends the rest without them.
            long n = UnixSockets.sendmsg(fd, sendBuf.address() + off, len - off, fds, off == 0 ? fds.length : 0);
            if (n < 0) {
                return n;
            }
            off += n;
        }
        return 0;
    }

    /** Closes the socket and the fds of a partly read message. Idempotent. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        framer.discard();
        FileIo.close(fd);
        arena.close();
    }
}
