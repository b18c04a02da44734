package io.vblk.drivers.nbd.server;

import io.vblk.aio.AioContext;
import io.vblk.aio.FdHandler;
import io.vblk.aio.sys.Errno;
import io.vblk.aio.sys.FileIo;
import io.vblk.aio.sys.InetSockets;
import io.vblk.aio.sys.UnixSockets;

import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Home thread: the main loop (the context it listens on). No locking.
 *
 * <p>vblk's NBD server ({@code --nbd-server}, QMP {@code nbd-server-start}): one listening socket,
 * UNIX or TCP, whose accept handler is registered on the main {@link AioContext} with
 * {@link AioContext#addListener} (seed 004: a nested wait on that loop still accepts, so a client
 * of this very process — an NBD node opened inside a nested wait — gets its handshake). Each
 * accepted client negotiates on this loop ({@link NbdHandshake}) and is then served on its export's
 * IoThread ({@link NbdTransmission}). Exports come and go by name while it runs.
 */
public final class NbdServer implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger(NbdServer.class.getName());
    private static final int BACKLOG = 64;

    private final AioContext ctx;
    private final int listenFd;
    private final String address;
    private final String unixPath;
    private final int maxConnections;
    private final Map<String, NbdExport> exportsByName = new LinkedHashMap<>();
    private final Set<NbdHandshake> handshakes = new LinkedHashSet<>();
    private FdHandler listener;
    private boolean closed;
    private long accepted;
    private int open;

    private NbdServer(AioContext ctx, int listenFd, String address, String unixPath, int maxConnections) {
        this.ctx = ctx;
        this.listenFd = listenFd;
        this.address = address;
        this.unixPath = unixPath;
        this.maxConnections = maxConnections;
    }

    /** Listens on a UNIX socket at {@code path} (a stale socket file is replaced). Home thread. */
    public static NbdServer listenUnix(AioContext ctx, String path, int maxConnections) {
        ctx.assertHome();
        int probe = UnixSockets.unixConnect(path, false);
        if (probe >= 0) {
            FileIo.close(probe);
            throw new IllegalStateException("nbd-server: " + path + " is in use: another process listens on it");
        }
        if (probe == -Errno.ECONNREFUSED) {
            FileIo.unlink(path);
        }
        int fd = UnixSockets.unixListen(path, BACKLOG, 0600);
        if (fd < 0) {
            throw new IllegalStateException("nbd-server: cannot listen on " + path + ": " + Errno.name(-fd));
        }
        NbdServer s = new NbdServer(ctx, fd, "unix:" + path, path, maxConnections);
        s.startListening();
        return s;
    }

    /** Listens on TCP {@code host:port} (port 0: a free port, see {@link #port()}). Home thread. */
    public static NbdServer listenInet(AioContext ctx, String host, int port, int maxConnections) {
        ctx.assertHome();
        int fd = InetSockets.tcpListen(InetSockets.resolve(host), port, BACKLOG);
        if (fd < 0) {
            throw new IllegalStateException("nbd-server: cannot listen on " + host + ":" + port + ": " + Errno.name(-fd));
        }
        NbdServer s = new NbdServer(ctx, fd, "inet:" + host + ":" + InetSockets.localPort(fd), null, maxConnections);
        s.startListening();
        return s;
    }

    public AioContext context() {
        return ctx;
    }

    /** "unix:PATH" or "inet:HOST:PORT". */
    public String address() {
        return address;
    }

    /** The TCP port it listens on, or -1 for a UNIX socket. */
    public int port() {
        return unixPath == null ? InetSockets.localPort(listenFd) : -1;
    }

    public long connectionsAccepted() {
        return accepted;
    }

    /** Adds an export; its name must be free. Home thread. */
    public void addExport(NbdExport e) {
        ctx.assertHome();
        if (exportsByName.containsKey(e.name())) {
            throw new IllegalArgumentException("nbd export name '" + e.name() + "' is already in use");
        }
        e.open();
        exportsByName.put(e.name(), e);
    }

    /** Removes the export named {@code name}: its clients are disconnected, then {@code onClosed} runs. Home thread. */
    public void removeExport(String name, Runnable onClosed) {
        ctx.assertHome();
        NbdExport e = exportsByName.remove(name);
        if (e == null) {
            onClosed.run();
            return;
        }
        e.close(onClosed);
    }

    public NbdExport export(String name) {
        return exportsByName.get(name);
    }

    public Collection<NbdExport> exports() {
        return List.copyOf(exportsByName.values());
    }

    private void startListening() {
        // On the AioContext, never a thread of its own (seed 004).
        listener = ctx.addListener("nbd-server " + address, listenFd, ignored -> acceptAll());
    }

    private void acceptAll() {
        while (!closed) {
            int fd = UnixSockets.accept(listenFd);
            if (fd == -Errno.EAGAIN) {
                return;
            }
            if (fd < 0) {
                LOG.log(System.Logger.Level.WARNING, () -> "nbd-server " + address + ": accept failed: " + Errno.name(-fd));
                return;
            }
            accepted++;
            if (maxConnections > 0 && open >= maxConnections) {
                LOG.log(System.Logger.Level.WARNING, () -> "nbd-server " + address + ": refusing a client: "
                        + maxConnections + " connections are open (max-connections)");
                FileIo.close(fd);
                continue;
            }
            if (unixPath == null) {
                InetSockets.setNoDelay(fd);
            }
            open++;
            NbdHandshake h = new NbdHandshake(this, fd, "nbd client " + accepted);
            handshakes.add(h);
            h.start();
        }
    }

    /** A handshake ended: closed, or handed over to {@code export}'s IoThread. Home thread. */
    void handshakeDone(NbdHandshake h, int fd, NbdExport export, boolean structured, boolean metaAllocation) {
        handshakes.remove(h);
        if (export == null) {
            open--;
            return;
        }
        NbdTransmission t = new NbdTransmission(this, export, fd, h.name(), structured, metaAllocation);
        export.added(t);
        export.ioContext().runOn(t::start);
    }

    /** A transmission ended on its IoThread; back here to forget it. Any thread. */
    void transmissionDone(NbdTransmission t) {
        ctx.runOn(() -> {
            open--;
            t.export().removed(t);
        });
    }

    /** The export a handshake asks for, unless it is going away. Home thread. */
    NbdExport lookup(String name) {
        NbdExport e = exportsByName.get(name);
        return e == null || e.closing() ? null : e;
    }

    /**
     * Stops listening, removes every export (disconnecting its clients after their requests in
     * flight) and runs {@code onClosed} on this thread when nothing is left. Home thread.
     */
    public void close(Runnable onClosed) {
        ctx.assertHome();
        if (closed) {
            onClosed.run();
            return;
        }
        closed = true;
        if (listener != null) {
            listener.remove();
            listener = null;
        }
        FileIo.close(listenFd);
        if (unixPath != null) {
            FileIo.unlink(unixPath);
        }
        for (NbdHandshake h : new ArrayList<>(handshakes)) {
            h.abort("the NBD server is stopping");
        }
        List<String> names = new ArrayList<>(exportsByName.keySet());
        if (names.isEmpty()) {
            onClosed.run();
            return;
        }
        AtomicInteger left = new AtomicInteger(names.size());
        for (String n : names) {
            removeExport(n, () -> {
                if (left.decrementAndGet() == 0) {
                    onClosed.run();
                }
            });
        }
    }

    /** Closes without waiting for clients. Home thread. */
    @Override
    public void close() {
        close(() -> { });
    }

    @Override
    public String toString() {
        return "NbdServer[" + address + "]";
    }
}
