package io.vblk.virtio.vhost.socket;

import io.vblk.aio.AioContext;
import io.vblk.aio.FdHandler;
import io.vblk.aio.sys.Errno;
import io.vblk.aio.sys.ReceivedFds;
import io.vblk.aio.sys.Sys;
import io.vblk.virtio.device.VirtioDevice;
import io.vblk.virtio.vhost.server.VhostUserDeviceHandler;
import io.vblk.virtio.vhost.wire.VhostUserCodec;
import io.vblk.virtio.vhost.wire.VhostUserFramer;
import io.vblk.virtio.vhost.wire.VhostUserMessage;
import io.vblk.virtio.vhost.wire.VhostUserMessageLayout;
import io.vblk.virtio.vhost.wire.VhostUserProtocolException;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.function.Consumer;

/**
 * Home thread: the control context's. No locking.
 *
 * <p>One front-end's connection to an export: the accepted AF_UNIX socket, registered on the
 * device's control {@link AioContext} as a level-triggered, non-external fd handler (a drained
 * section must not silence the control plane). Each readiness callback reads with non-blocking
 * {@code recvmsg} (MSG_CMSG_CLOEXEC, up to 8 fds per message) exactly what the
 * {@link VhostUserFramer} still wants, so partial reads resume where they stopped and fds stay
 * with their message; whole messages go to the {@link VhostUserDeviceHandler}; replies leave with
 * {@code sendmsg}. Netty's domain-socket channel cannot carry vhost-user messages (it keeps one fd
 * per read), hence the raw fd.
 *
 * <p>While the handler has a message pending (queues stopping), the fd handler is taken off the
 * loop (reading nothing more; level-triggered readiness would otherwise spin) and put back on
 * {@link VhostUserDeviceHandler.Channel#resume()}.
 *
 * <p>A malformed message, a failed send, or the peer hanging up closes the connection with one
 * log line naming the reason; the handler then stops the device's queues (waiting for in-flight
 * requests), resets the device and frees the session, and {@code onClosed} hears of it.
 */
public final class VhostUserConnection {
    private static final System.Logger LOG = System.getLogger(VhostUserConnection.class.getName());
    /** Messages handled per readiness callback before yielding to the loop's other handlers. */
    private static final int MESSAGES_PER_CALLBACK = 64;

    private final String name;
    private final AioContext ctx;
    private final int fd;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment sendBuf = arena.allocate(VhostUserFramer.BUFFER_BYTES, 8);
    private final VhostUserFramer framer;
    private final ReceivedFds received = new ReceivedFds();
    private final VhostUserDeviceHandler handler;
    private final Consumer<String> onClosed;
    private FdHandler fdHandler;
    private boolean paused;
    private boolean closing;
    private long messages;
    private VhostUserStats stats = new VhostUserStats();

    /**
     * @param name     "export e0" (log lines start with it)
     * @param fd       the connected socket, non-blocking; the connection owns it
     * @param onClosed told, on the home thread, once the session is torn down, with the close reason
     */
    public VhostUserConnection(String name, AioContext ctx, int fd, VirtioDevice device, Consumer<String> onClosed) {
        this.name = name;
        this.ctx = ctx;
        this.fd = fd;
        this.onClosed = onClosed;
        this.framer = new VhostUserFramer(VhostUserFramer.Direction.REQUESTS,
                arena.allocate(VhostUserFramer.BUFFER_BYTES, 8), Sys::close);
        this.handler = new VhostUserDeviceHandler(name, ctx, device, new Channel());
    }

    /** Starts reading. Home thread. */
    public void start() {
        ctx.assertHome();
        fdHandler = ctx.addFdHandler(name + " vhost-user socket", fd, false, ignored -> readable());
    }

    public VhostUserDeviceHandler handler() {
        return handler;
    }

    public long messagesHandled() {
        return messages;
    }

    /** Counts into {@code s} (the export's, shared by its connections) instead of its own. Before start. */
    void countInto(VhostUserStats s) {
        this.stats = s;
    }

    public boolean closing() {
        return closing;
    }

    private void readable() {
        for (int handled = 0; handled < MESSAGES_PER_CALLBACK && !paused && !closing; ) {
            int want = framer.wanted();
            long n = Sys.recvmsg(fd, framer.writeAddress(), want, received);
            if (n == -Errno.EAGAIN) {
                return;
            }
            if (n < 0) {
                received.closeAll();
                close("recvmsg failed: " + Errno.name((int) -n));
                return;
            }
            if (n == 0) {
                received.closeAll();
                close(framer.midMessage()
                        ? "front-end disconnected mid-message (" + framer.bytesSoFar() + " bytes of a message read)"
                        : "front-end disconnected");
                return;
            }
            VhostUserMessage m;
            try {
                m = framer.received((int) n, received.fds, received.count, received.truncated);
            } catch (VhostUserProtocolException e) {
                stats.protocolErrors++;
                close("malformed message: " + e.getMessage());
                return;
            }
            if (m == null) {
                continue;
            }
            handled++;
            messages++;
            if (m.kind() != null) {
                stats.messages[m.kind().id]++;
            }
            boolean done;
            try {
                done = handler.handle(m);
            } catch (VhostUserProtocolException e) {
                stats.protocolErrors++;
                close("malformed message: " + e.getMessage());
                return;
            } catch (RuntimeException e) {
                // A device or host failure, not the front-end's fault: this session ends, the daemon goes on.
                LOG.log(System.Logger.Level.ERROR, name + ": handling " + m.describe() + " failed", e);
                close("internal error handling " + m.describe() + ": " + e);
                return;
            }
            if (!done && !closing) {
                pause();
            }
        }
    }

    private void pause() {
        paused = true;
        if (fdHandler != null) {
            fdHandler.remove();
            fdHandler = null;
        }
    }

    private void resume() {
        if (closing || !paused) {
            return;
        }
        paused = false;
        // Level-triggered: bytes that arrived meanwhile make the new handler run at once.
        fdHandler = ctx.addFdHandler(name + " vhost-user socket", fd, false, ignored -> readable());
    }

    private boolean send(VhostUserMessage reply) {
        if (closing) {
            return false;
        }
        int len = VhostUserMessageLayout.HEADER_BYTES + reply.size();
        VhostUserCodec.putHeader(sendBuf, 0, reply);
        MemorySegment.copy(MemorySegment.ofArray(reply.payload()), 0, sendBuf, VhostUserMessageLayout.HEADER_BYTES, reply.size());
        long off = 0;
        int[] fds = reply.fds();
        while (off < len) {
            // The fds ride with the first byte; a short write sends the rest without them.
            long n = Sys.sendmsg(fd, sendBuf.address() + off, len - off, fds, off == 0 ? fds.length : 0);
            if (n < 0) {
                fail(n == -Errno.EPIPE || n == -Errno.ECONNRESET
                        ? "front-end disconnected before the reply to " + reply.describe()
                        : n == -Errno.EAGAIN
                        ? "the front-end does not read its replies (socket buffer full sending " + reply.describe() + ")"
                        : "sending " + reply.describe() + " failed: " + Errno.name((int) -n));
                return false;
            }
            off += n;
        }
        return true;
    }

    /** Closes from outside the read path (a failed send in a late reply, the export closing). */
    public void fail(String reason) {
        ctx.assertHome();
        if (closing) {
            return;
        }
        // Stop reading now; tear down from a fresh loop iteration so the handler is never re-entered.
        pause();
        closing = true;
        LOG.log(reason.startsWith("front-end disconnected") ? System.Logger.Level.INFO : System.Logger.Level.WARNING,
                () -> name + ": closing connection: " + reason);
        ctx.runOn(() -> teardown(reason));
    }

    private void close(String reason) {
        if (closing) {
            return;
        }
        pause();
        closing = true;
        LOG.log(reason.startsWith("front-end disconnected") ? System.Logger.Level.INFO : System.Logger.Level.WARNING,
                () -> name + ": closing connection: " + reason);
        teardown(reason);
    }

    private void teardown(String reason) {
        framer.discard();
        Sys.close(fd);
        handler.disconnect(() -> {
            arena.close();
            onClosed.accept(reason);
        });
    }

    private final class Channel implements VhostUserDeviceHandler.Channel {
        @Override
        public void send(VhostUserMessage reply) {
            VhostUserConnection.this.send(reply);
        }

        @Override
        public void resume() {
            VhostUserConnection.this.resume();
        }

        @Override
        public void fail(String reason) {
            // The handler fails a connection for a protocol violation found asynchronously, or an internal error.
            if (reason.startsWith("malformed message")) {
                stats.protocolErrors++;
            }
            VhostUserConnection.this.fail(reason);
        }
    }
}
