package io.vblk.tools.qmp;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.vblk.aio.AioContext;
import io.vblk.aio.FdHandler;
import io.vblk.aio.sys.Errno;
import io.vblk.aio.sys.FileIo;
import io.vblk.aio.sys.UnixSockets;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletionException;

/**
 * Home thread: the main loop, except {@link #start}, {@link #close}, {@link #addResumeHook} and
 * {@link #setResizer} (any thread that is no context's home thread; they hand over to the loop).
 *
 * <p>The QMP monitors of {@code vblk serve} ({@code --chardev socket,... --monitor chardev=...}):
 * each listening socket is an fd handler on the main loop's AioContext, as is each client
 * connection ({@link QmpConnection}), so a nested wait on the loop still serves the monitor
 * (seed 004). Every monitor shares one command table ({@link QmpCommands}) over the daemon's
 * live graph, and an event goes to every negotiated client of every monitor.
 */
public final class QmpServer {
    private static final System.Logger LOG = System.getLogger(QmpServer.class.getName());
    private static final Duration STEP = Duration.ofSeconds(30);
    private static final int BACKLOG = 16;

    private final AioContext ctx;
    private final Runnable onQuit;
    private final QmpCommands commands;
    private final List<Listener> listeners = new ArrayList<>();
    private final List<QmpConnection> connections = new ArrayList<>();
    private NodeResizer resizer = NodeResizer.FIXED_SIZE;
    private long accepted;

    /** One monitor's listening socket. */
    private record Listener(MonitorSpec spec, int fd, FdHandler handler) {
    }

    private QmpServer(DaemonGraph graph, Runnable onQuit) {
        this.ctx = graph.mainLoop().ctx();
        this.onQuit = onQuit;
        this.commands = new QmpCommands(graph, this);
    }

    /**
     * Opens every monitor on the daemon's main loop. {@code onQuit} runs (on the main loop)
     * after the {@code quit} command has been answered. Throws {@link IllegalArgumentException}
     * naming the {@code --chardev} that cannot listen.
     */
    public static QmpServer start(DaemonGraph graph, List<MonitorSpec> monitors, Runnable onQuit) {
        AioContext main = graph.mainLoop().ctx();
        try {
            return AioContext.await(main.callOn(() -> {
                QmpServer s = new QmpServer(graph, onQuit);
                try {
                    for (MonitorSpec m : monitors) {
                        s.listen(m);
                    }
                } catch (RuntimeException e) {
                    s.closeAll();
                    throw e;
                }
                return s;
            }), STEP);
        } catch (CompletionException e) {
            Throwable c = e.getCause() != null ? e.getCause() : e;
            throw c instanceof IllegalArgumentException iae ? iae : new IllegalArgumentException(c.getMessage(), c);
        }
    }

    private void listen(MonitorSpec m) {
        int fd;
        if (m.path() != null) {
            FileIo.unlink(m.path());
            fd = UnixSockets.unixListen(m.path(), BACKLOG);
            if (fd < 0) {
                throw new IllegalArgumentException("--chardev id=" + m.chardev() + ": cannot listen on " + m.path() + ": " + Errno.name(-fd));
            }
        } else {
            fd = m.fd();
            int r = FileIo.setNonBlocking(fd, true);
            if (r < 0) {
                throw new IllegalArgumentException("--chardev id=" + m.chardev() + ": fd " + fd + " is not usable: " + Errno.name(-r));
            }
        }
        int lfd = fd;
        // A listener: on the AioContext, so a nested wait on this loop accepts (seed 004).
        FdHandler h = ctx.addListener("monitor " + m.chardev() + " listener", fd, ignored -> accept(m, lfd));
        listeners.add(new Listener(m, fd, h));
        LOG.log(System.Logger.Level.INFO, () -> "monitor " + m.chardev() + ": QMP on " + m.describe());
    }

    private void accept(MonitorSpec m, int listenFd) {
        int fd = UnixSockets.accept(listenFd);
        if (fd == -Errno.EAGAIN) {
            return;
        }
        if (fd < 0) {
            LOG.log(System.Logger.Level.WARNING, () -> "monitor " + m.chardev() + ": accept failed: " + Errno.name(-fd));
            return;
        }
        QmpConnection c = new QmpConnection("monitor " + m.chardev() + " client " + (++accepted), ctx, fd, this);
        connections.add(c);
        c.start();
    }

    QmpCommands commands() {
        return commands;
    }

    NodeResizer resizer() {
        return resizer;
    }

    /** The greeting (qmp-spec.rst 2.2): vblk's version, no capabilities offered. */
    JsonNode greeting() {
        ObjectNode g = Qmp.JSON.createObjectNode();
        ObjectNode qmp = g.putObject("QMP");
        ObjectNode v = qmp.putObject("version");
        ObjectNode q = v.putObject("qemu");
        q.put("micro", 0);
        q.put("minor", 1);
        q.put("major", 0);
        v.put("package", "vblk 0.1.0");
        qmp.putArray("capabilities");
        return g;
    }

    /** Sends an event to every client that has left capabilities negotiation. Home thread. */
    void emit(String event, JsonNode data) {
        ctx.assertHome();
        ObjectNode e = Qmp.event(event, data);
        for (QmpConnection c : List.copyOf(connections)) {
            if (c.negotiated()) {
                c.send(e);
            }
        }
    }

    void connectionClosed(QmpConnection c) {
        connections.remove(c);
    }

    /**
     * After {@code quit}: SHUTDOWN and the daemon's stop follow the reply, as in QEMU (two hand-overs:
     * the reply's own hand-over is queued after the first).
     */
    void requestQuit() {
        ctx.runOn(() -> ctx.runOn(() -> {
            ObjectNode d = Qmp.JSON.createObjectNode();
            d.put("guest", false);
            d.put("reason", "host-qmp-quit");
            emit("SHUTDOWN", d);
            onQuit.run();
        }));
    }

    /** Registers a hook {@code cont} runs after the nodes' drained sections end. Any thread. */
    public void addResumeHook(Runnable hook) {
        ctx.runOn(() -> commands.runState.addResumeHook(hook));
    }

    /** Sets the node-resize operation block_resize calls. Any thread. */
    public void setResizer(NodeResizer r) {
        ctx.runOn(() -> resizer = r);
    }

    /** An error policy stopped a device: BLOCK_IO_ERROR went out; the run state turns io-error. Any thread. */
    public void ioErrorStop() {
        ctx.runOn(commands.runState::ioErrorStop);
    }

    /** Emits an event from outside the monitor (an error policy's BLOCK_IO_ERROR, say). Any thread. */
    public void event(String name, JsonNode data) {
        ctx.runOn(() -> emit(name, data));
    }

    /** Closes every monitor and client; the daemon is untouched. Any non-home thread; idempotent. */
    public void close() {
        if (ctx.isClosed()) {
            return;
        }
        try {
            // Jobs first: a running mirror holds channels and perhaps a drained section.
            AioContext.await(AioContext.await(ctx.callOn(commands.jobs::cancelAll), STEP), STEP);
            AioContext.await(ctx.callOn(() -> {
                closeAll();
                return null;
            }), STEP);
        } catch (CompletionException e) {
            LOG.log(System.Logger.Level.WARNING, "monitors did not close: " + e.getCause());
        }
    }

    private void closeAll() {
        for (Listener l : listeners) {
            l.handler().remove();
            FileIo.close(l.fd());
            if (l.spec().path() != null) {
                FileIo.unlink(l.spec().path());
            }
        }
        listeners.clear();
        for (QmpConnection c : List.copyOf(connections)) {
            c.close("monitor closing");
        }
    }
}
