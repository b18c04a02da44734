package io.vblk.virtio.vhost.socket;

import io.vblk.aio.AioContext;
import io.vblk.aio.FdHandler;
import io.vblk.aio.sys.Errno;
import io.vblk.aio.sys.FileIo;
import io.vblk.aio.sys.UnixSockets;
import io.vblk.virtio.vhost.wire.VhostUserBackendRequest;
import io.vblk.virtio.vhost.wire.VhostUserCodec;
import io.vblk.virtio.vhost.wire.VhostUserMessage;
import io.vblk.virtio.vhost.wire.VhostUserMessageLayout;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * Home thread: the connection's control context. No locking.
 *
 * <p>The back-end's end of the backend channel (vhost-user.rst, "Back-end communication"): the
 * socket the front-end passed with {@code VHOST_USER_SET_BACKEND_REQ_FD}. vblk sends
 * {@link VhostUserBackendRequest#CONFIG_CHANGE_MSG} on it and, when it set NEED_REPLY (REPLY_ACK
 * negotiated), reads the front-end's u64 answer with a level-triggered fd handler — never waiting
 * for it: QEMU handles the message by sending GET_CONFIG on the main socket before it answers, and
 * that message is read by the same loop. A reply that is not the expected u64 closes this channel
 * (with a log line), not the connection; a non-zero answer is logged.
 */
final class BackendChannel implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger(BackendChannel.class.getName());
    private static final int REPLY_BYTES = VhostUserBackendRequest.MAX_MESSAGE_BYTES;

    private final String name;
    private final AioContext ctx;
    private final int fd;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment buf = arena.allocate(REPLY_BYTES, 8);
    private int have;
    private int repliesOwed;
    private long sent;
    private FdHandler handler;
    private boolean closed;

    /** Takes ownership of {@code fd}. */
    BackendChannel(String name, AioContext ctx, int fd) {
        this.name = name;
        this.ctx = ctx;
        this.fd = fd;
        FileIo.setNonBlocking(fd, true);
        handler = ctx.addFdHandler(name + " backend channel", fd, ignored -> readable());
    }

    /** Messages sent so far. */
    long sent() {
        return sent;
    }

    /** Sends CONFIG_CHANGE_MSG, with NEED_REPLY when REPLY_ACK was negotiated. Returns false when the channel is gone. */
    boolean configChanged(boolean needReply) {
        ctx.assertHome();
        if (closed) {
            return false;
        }
        int flags = VhostUserMessageLayout.VERSION | (needReply ? VhostUserMessageLayout.FLAG_NEED_REPLY : 0);
        byte[] bytes = VhostUserCodec.encode(new VhostUserMessage(VhostUserBackendRequest.CONFIG_CHANGE_MSG, flags,
                new byte[0], new int[0]));
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(bytes.length);
            MemorySegment.copy(MemorySegment.ofArray(bytes), 0, out, 0, bytes.length);
            // A 12-byte message on an empty stream socket goes out whole or not at all.
            long n = UnixSockets.sendmsg(fd, out.address(), bytes.length, new int[0], 0);
            if (n != bytes.length) {
                fail("sending " + VhostUserBackendRequest.name(VhostUserBackendRequest.CONFIG_CHANGE_MSG) + " failed: "
                        + (n < 0 ? Errno.name((int) -n) : "short write of " + n + " bytes"));
                return false;
            }
        }
        sent++;
        if (needReply) {
            repliesOwed++;
        }
        return true;
    }

    private void readable() {
        while (!closed) {
            long n = FileIo.read(fd, buf.address() + have, REPLY_BYTES - have);
            if (n == -Errno.EAGAIN) {
                return;
            }
            if (n <= 0) {
                fail(n == 0 ? "the front-end closed it" : "read failed: " + Errno.name((int) -n));
                return;
            }
            have += (int) n;
            if (have < REPLY_BYTES) {
                continue;
            }
            have = 0;
            int request = VhostUserMessageLayout.getInt(buf, VhostUserMessageLayout.REQUEST);
            int flags = VhostUserMessageLayout.getInt(buf, VhostUserMessageLayout.FLAGS);
            int size = VhostUserMessageLayout.getInt(buf, VhostUserMessageLayout.SIZE);
            if (repliesOwed == 0 || request != VhostUserBackendRequest.CONFIG_CHANGE_MSG
                    || (flags & VhostUserMessageLayout.FLAG_REPLY) == 0 || size != VhostUserMessageLayout.U64_BYTES) {
                fail("unexpected message from the front-end: request " + request + ", flags 0x"
                        + Integer.toHexString(flags) + ", size " + size + " (" + repliesOwed + " replies owed)");
                return;
            }
            repliesOwed--;
            long status = VhostUserMessageLayout.getLong(buf, VhostUserMessageLayout.HEADER_BYTES);
            if (status != 0) {
                LOG.log(System.Logger.Level.WARNING, () -> name + ": the front-end answered "
                        + VhostUserBackendRequest.name(request) + " with failure " + status);
            }
        }
    }

    private void fail(String reason) {
        LOG.log(System.Logger.Level.WARNING, () -> name + ": closing the backend channel: " + reason);
        close();
    }

    /** Idempotent. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        if (handler != null) {
            handler.remove();
            handler = null;
        }
        FileIo.close(fd);
        arena.close();
    }
}
