package io.vblk.guest.vhost;

import io.vblk.aio.AioContext;
import io.vblk.aio.FdHandler;
import io.vblk.aio.sys.Errno;
import io.vblk.aio.sys.FileIo;
import io.vblk.aio.sys.UnixSockets;
import io.vblk.virtio.vhost.wire.VhostUserBackendRequest;
import io.vblk.virtio.vhost.wire.VhostUserCodec;
import io.vblk.virtio.vhost.wire.VhostUserMessage;
import io.vblk.virtio.vhost.wire.VhostUserMessageLayout;
import io.vblk.virtio.vhost.wire.VhostUserRequest;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * Home thread: the front-end's context. No locking.
 *
 * <p>The front-end's end of the backend channel (vhost-user.rst, "Back-end communication"), as
 * QEMU's {@code vhost_setup_backend_channel}: a socketpair whose other end goes to the back-end
 * with SET_BACKEND_REQ_FD. On {@code VHOST_USER_BACKEND_CONFIG_CHANGE_MSG} it re-reads the config
 * space with GET_CONFIG on the main channel (QEMU's {@code vhost_user_blk_handle_config_change}),
 * then answers NEED_REPLY with 0 (or 1 when the re-read failed) and tells {@code onChange}. Any
 * other back-end request, or a malformed header, closes this channel with a log line.
 */
final class FrontendBackendChannel implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger(FrontendBackendChannel.class.getName());
    private static final int BYTES = VhostUserBackendRequest.MAX_MESSAGE_BYTES;

    private final String name;
    private final FrontendChannel channel;
    private final FrontendNegotiation negotiated;
    private final int configBytes;
    private final Runnable onChange;
    private final int fd;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment buf = arena.allocate(BYTES, 8);
    private FdHandler handler;
    private int have;
    private long configChanges;
    private boolean closed;

    private FrontendBackendChannel(String name, AioContext ctx, FrontendChannel channel, FrontendNegotiation negotiated,
                                   int configBytes, Runnable onChange, int fd) {
        this.name = name;
        this.channel = channel;
        this.negotiated = negotiated;
        this.configBytes = configBytes;
        this.onChange = onChange;
        this.fd = fd;
        FileIo.setNonBlocking(fd, true);
        this.handler = ctx.addFdHandler(name + " backend channel", fd, ignored -> readable());
    }

    /** Creates the socketpair and sends SET_BACKEND_REQ_FD (REPLY_ACK'ed when negotiated) after what is queued. */
    static FrontendBackendChannel open(String name, AioContext ctx, FrontendChannel channel, FrontendNegotiation negotiated,
                                       int configBytes, Runnable onChange) {
        int[] sv = new int[2];
        int r = UnixSockets.socketpair(sv);
        if (r < 0) {
            throw new IllegalStateException(name + ": socketpair for the backend channel failed: " + Errno.name(-r));
        }
        FrontendBackendChannel b = new FrontendBackendChannel(name, ctx, channel, negotiated, configBytes, onChange, sv[0]);
        channel.background("SET_BACKEND_REQ_FD", () -> channel.callAck(VhostUserRequest.SET_BACKEND_REQ_FD, new byte[0], sv[1])
                .whenComplete((v, e) -> FileIo.close(sv[1])));
        return b;
    }

    /** CONFIG_CHANGE_MSG messages handled so far. */
    long configChanges() {
        return configChanges;
    }

    private void readable() {
        while (!closed) {
            int want = have < VhostUserMessageLayout.HEADER_BYTES ? VhostUserMessageLayout.HEADER_BYTES
                    : VhostUserMessageLayout.HEADER_BYTES + VhostUserMessageLayout.getInt(buf, VhostUserMessageLayout.SIZE);
            if (have == want && have >= VhostUserMessageLayout.HEADER_BYTES) {
                have = 0;
                handle();
                continue;
            }
            long n = FileIo.read(fd, buf.address() + have, want - have);
            if (n == -Errno.EAGAIN) {
                return;
            }
            if (n <= 0) {
                fail(n == 0 ? "the back-end closed it" : "read failed: " + Errno.name((int) -n));
                return;
            }
            have += (int) n;
            if (have == VhostUserMessageLayout.HEADER_BYTES) {
                int size = VhostUserMessageLayout.getInt(buf, VhostUserMessageLayout.SIZE);
                if (size < 0 || size > VhostUserMessageLayout.U64_BYTES) {
                    fail("message with a payload of " + Integer.toUnsignedString(size) + " bytes");
                    return;
                }
            }
        }
    }

    private void handle() {
        int request = VhostUserMessageLayout.getInt(buf, VhostUserMessageLayout.REQUEST);
        int flags = VhostUserMessageLayout.getInt(buf, VhostUserMessageLayout.FLAGS);
        if (request != VhostUserBackendRequest.CONFIG_CHANGE_MSG
                || (flags & VhostUserMessageLayout.VERSION_MASK) != VhostUserMessageLayout.VERSION) {
            fail("unsupported " + VhostUserBackendRequest.name(request) + " (flags 0x" + Integer.toHexString(flags) + ")");
            return;
        }
        boolean needReply = (flags & VhostUserMessageLayout.FLAG_NEED_REPLY) != 0;
        channel.serial(() -> channel.call(VhostUserRequest.GET_CONFIG, VhostUserCodec.config(0, 0, new byte[configBytes])))
                .whenComplete((reply, e) -> {
                    boolean ok = e == null && reply.size() > 0;
                    if (ok) {
                        try {
                            negotiated.config = VhostUserCodec.decodeConfig(reply).data();
                        } catch (Exception bad) {
                            ok = false;
                        }
                    }
                    if (!ok) {
                        LOG.log(System.Logger.Level.WARNING, () -> name + ": re-reading the config space after "
                                + VhostUserBackendRequest.name(request) + " failed" + (e != null ? ": " + e : ""));
                    }
                    configChanges++;
                    if (needReply) {
                        answer(request, ok ? 0 : 1);
                    }
                    if (ok) {
                        onChange.run();
                    }
                });
    }

    private void answer(int request, long status) {
        if (closed) {
            return;
        }
        byte[] b = VhostUserCodec.encode(VhostUserMessage.reply(request, VhostUserCodec.u64(status)));
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(b.length);
            MemorySegment.copy(MemorySegment.ofArray(b), 0, out, 0, b.length);
            long n = FileIo.write(fd, out.address(), b.length);
            if (n != b.length) {
                fail("sending the reply failed: " + (n < 0 ? Errno.name((int) -n) : "short write"));
            }
        }
    }

    private void fail(String reason) {
        LOG.log(System.Logger.Level.WARNING, () -> name + ": closing the backend channel: " + reason);
        close();
    }

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
