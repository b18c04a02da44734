package io.vblk.virtio.vhost.socket;

import io.vblk.aio.AioContext;
import io.vblk.aio.FdHandler;
import io.vblk.aio.sys.Errno;
import io.vblk.virtio.device.VirtioDevice;
import io.vblk.virtio.memory.GuestMemoryFault;
import io.vblk.virtio.vhost.server.VhostUserSession;
import io.vblk.virtio.vhost.wire.VhostUserFramer;
import io.vblk.virtio.vhost.wire.VhostUserMessage;
import io.vblk.virtio.vhost.wire.VhostUserProtocolException;

import java.util.function.Consumer;

/**
 * Home thread: the control context's. No locking.
 *
 * <p>One front-end's connection to an export: the accepted AF_UNIX socket, registered on the
 * device's control {@link AioContext} as a level-triggered, non-external fd handler (a drained
 * section must not silence the control plane). Each readiness callback reads whole messages
 * through the {@link VhostUserSocket} (the frame reader/writer the front-end uses too, which
 * rejects a malformed message by the request table) and hands them to the
 * {@link VhostUserSession}; replies leave through the same socket.
 *
 * <p>While the session has a message pending (queues stopping), the fd handler is taken off the
 * loop (reading nothing more; level-triggered readiness would otherwise spin) and put back on
 * {@link VhostUserSession.Channel#resume()}.
 *
 * <p>A malformed message, a failed send, or the peer hanging up closes the connection with one
 * log line naming the reason; the session then stops the device's queues (waiting for in-flight
 * requests), resets the device and frees its state, and {@code onClosed} hears of it.
 */
public final class VhostUserConnection {
    private static final System.Logger LOG = System.getLogger(VhostUserConnection.class.getName());
    /** Messages handled per readiness callback before yielding to the loop's other handlers. */
    private static final int MESSAGES_PER_CALLBACK = 64;

    private final String name;
    private final AioContext ctx;
    private final VhostUserSocket socket;
    private final VhostUserSession session;
    private final Consumer<String> onClosed;
    private FdHandler fdHandler;
    private BackendChannel backend;
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
        this.onClosed = onClosed;
        this.socket = new VhostUserSocket(fd, VhostUserFramer.Direction.REQUESTS);
        this.session = new VhostUserSession(name, ctx, device, new Channel());
    }

    /** Starts reading. Home thread. */
    public void start() {
        ctx.assertHome();
        fdHandler = ctx.addFdHandler(name + " vhost-user socket", socket.fd(), ignored -> readable());
    }

    public VhostUserSession session() {
        return session;
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
        for (int handled = 0; handled < MESSAGES_PER_CALLBACK && !paused && !closing; handled++) {
            VhostUserMessage m;
            try {
                m = socket.receive();
            } catch (VhostUserProtocolException e) {
                stats.protocolErrors++;
                close("malformed message: " + e.getMessage());
                return;
            } catch (VhostUserSocket.PeerGoneException e) {
                close(e.errno != 0 ? "recvmsg failed: " + Errno.name(e.errno)
                        : e.midMessage() ? "front-end disconnected mid-message (" + e.bytesSoFar + " bytes of a message read)"
                        : "front-end disconnected");
                return;
            }
            if (m == null) {
                return;
            }
            messages++;
            stats.messages[m.request()]++;
            boolean done;
            try {
                done = session.handle(m);
            } catch (VhostUserProtocolException e) {
                stats.protocolErrors++;
                close("malformed message: " + e.getMessage());
                return;
            } catch (RuntimeException e) {
                // A device or host failure, not the front-end's fault: this session ends, the daemon goes on.
                LOG.log(System.Logger.Level.ERROR, name + ": handling " + m.describe() + " failed", e);
                close("internal error handling " + m.describe() + ": " + e);
                return;
            } catch (InternalError e) {
                // A ring in front-end memory that faults (a memfd truncated after mapping).
                close(GuestMemoryFault.reason("handling " + m.describe(), GuestMemoryFault.check(e)));
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
        fdHandler = ctx.addFdHandler(name + " vhost-user socket", socket.fd(), ignored -> readable());
    }

    private void send(VhostUserMessage reply) {
        if (closing) {
            return;
        }
        long n = socket.send(reply);
        if (n < 0) {
            fail(n == -Errno.EPIPE || n == -Errno.ECONNRESET
                    ? "front-end disconnected before the reply to " + reply.describe()
                    : n == -Errno.EAGAIN
                    ? "the front-end does not read its replies (socket buffer full sending " + reply.describe() + ")"
                    : "sending " + reply.describe() + " failed: " + Errno.name((int) -n));
        }
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
        socket.close();
        if (backend != null) {
            backend.close();
            backend = null;
        }
        session.disconnect(() -> onClosed.accept(reason));
    }

    private final class Channel implements VhostUserSession.Channel {
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
            // The session fails a connection for a protocol violation found asynchronously, or an internal error.
            if (reason.startsWith("malformed message")) {
                stats.protocolErrors++;
            }
            VhostUserConnection.this.fail(reason);
        }

        @Override
        public void backendChannel(int fd) {
            if (backend != null) {
                backend.close();
            }
            backend = new BackendChannel(name, ctx, fd);
        }

        @Override
        public boolean sendConfigChange(boolean needReply) {
            if (closing || backend == null) {
                LOG.log(System.Logger.Level.INFO, () -> name + ": config changed; no backend channel to tell the front-end");
                return false;
            }
            return backend.configChanged(needReply);
        }
    }
}
