package io.vblk.virtio.vhost.socket;

import io.vblk.aio.AioContext;
import io.vblk.aio.FdHandler;
import io.vblk.aio.sys.Errno;
import io.vblk.aio.sys.FileIo;
import io.vblk.aio.sys.UnixSockets;
import io.vblk.virtio.device.VirtioDevice;
import io.vblk.virtio.memory.GuestMemoryFault;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

/**
 * Home thread: the control context's. No locking.
 *
 * <p>A device served over vhost-user on one listening socket: a UNIX path it creates, or a listening
 * fd it inherited. The listener is an fd handler on the device's control {@link AioContext}
 * (seed 004: a listener lives on an AioContext, so a nested wait on that loop still accepts) and
 * accepts with non-blocking {@code accept4}. One front-end at a time, as qemu-storage-daemon
 * does: while a connection is open or its session is being torn down the listener is off the
 * loop and new clients wait in the backlog; after the teardown (queues stopped, device reset)
 * it accepts the next one. The export, its socket and the device outlive any connection.
 */
public final class VhostUserExport implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger(VhostUserExport.class.getName());
    private static final int BACKLOG = 16;
    /** stat(2)'s file-type bits and the socket type (sys/stat.h). */
    private static final int S_IFMT = 0170000;
    private static final int S_IFSOCK = 0140000;

    private final String id;
    private final AioContext ctx;
    private final VirtioDevice device;
    private final int listenFd;
    private final String path;
    private final List<Consumer<String>> closeListeners = new ArrayList<>();
    private FdHandler listener;
    private VhostUserConnection connection;
    private boolean closed;
    /** False once {@link #stopAccepting} ran: no connection is accepted any more, the open one goes on. */
    private boolean accepting = true;
    private long accepted;
    private final VhostUserStats stats = new VhostUserStats();
    private Runnable onIdle;

    private VhostUserExport(String id, AioContext ctx, VirtioDevice device, int listenFd, String path) {
        this.id = id;
        this.ctx = ctx;
        this.device = device;
        this.listenFd = listenFd;
        this.path = path;
        device.onNeedsReset(this::deviceNeedsReset);
        device.onConfigChange(this::deviceConfigChanged);
    }

    /** The socket file's mode unless the caller says otherwise: the owner only (read-write = may connect). */
    public static final int DEFAULT_SOCKET_MODE = 0600;

    /** Listens on {@code path} with {@link #DEFAULT_SOCKET_MODE}. Home thread. */
    public static VhostUserExport listen(String id, AioContext ctx, VirtioDevice device, String path) {
        return listen(id, ctx, device, path, DEFAULT_SOCKET_MODE);
    }

    /**
     * Listens on {@code path}, its socket file created with permission bits {@code mode}. A socket
     * file left there by a daemon that died (nobody listens: connect is refused) is replaced; a
     * socket some live process listens on is refused, never unlinked from under it; any other
     * file is left alone and the bind fails. Home thread.
     *
     * @throws IllegalStateException naming the path and the error when it cannot listen
     */
    public static VhostUserExport listen(String id, AioContext ctx, VirtioDevice device, String path, int mode) {
        ctx.assertHome();
        // A live listener accepts (or queues) the probe; a stale socket file refuses it (ECONNREFUSED).
        int probe = UnixSockets.unixConnect(path, false);
        if (probe >= 0) {
            FileIo.close(probe);
            throw new IllegalStateException("export " + id + ": " + path + " is in use: another process (a running"
                    + " vblk serve?) listens on it; stop it or choose another path");
        }
        if (probe == -Errno.ECONNREFUSED && isSocketFile(path)) {
            LOG.log(System.Logger.Level.INFO, () -> "export " + id + ": replacing stale socket " + path);
            FileIo.unlink(path);
        }
        int fd = UnixSockets.unixListen(path, BACKLOG, mode);
        if (fd < 0) {
            throw new IllegalStateException("export " + id + ": cannot listen on " + path + ": " + Errno.name(-fd));
        }
        VhostUserExport e = new VhostUserExport(id, ctx, device, fd, path);
        e.startListening();
        return e;
    }

    private static boolean isSocketFile(String path) {
        try {
            return Files.readAttributes(Path.of(path), "unix:mode", LinkOption.NOFOLLOW_LINKS).get("mode")
                    instanceof Integer m && (m & S_IFMT) == S_IFSOCK;
        } catch (IOException | UnsupportedOperationException e) {
            return false;
        }
    }

    /** Serves on an inherited listening socket ({@code addr.type=fd}); the export owns it from now on. Home thread. */
    public static VhostUserExport onListeningFd(String id, AioContext ctx, VirtioDevice device, int fd) {
        ctx.assertHome();
        int r = FileIo.setNonBlocking(fd, true);
        if (r < 0) {
            throw new IllegalStateException("export " + id + ": fd " + fd + " is not usable: " + Errno.name(-r));
        }
        VhostUserExport e = new VhostUserExport(id, ctx, device, fd, null);
        e.startListening();
        return e;
    }

    public String id() {
        return id;
    }

    /** The socket path, or null for an inherited fd. */
    public String path() {
        return path;
    }

    public VirtioDevice device() {
        return device;
    }

    public long connectionsAccepted() {
        return accepted;
    }

    /** 1 while a front-end is connected, else 0. Any thread (a racy read). */
    public int connectionsOpen() {
        return connection != null ? 1 : 0;
    }

    /** Messages by type and protocol errors, over all connections. Getters: any thread. */
    public VhostUserStats stats() {
        return stats;
    }

    /** The open connection, or null. Home thread. */
    public VhostUserConnection connection() {
        return connection;
    }

    /** Hears every connection's close reason, after its session is torn down. Home thread. */
    public void onConnectionClosed(Consumer<String> listener) {
        closeListeners.add(listener);
    }

    private void startListening() {
        // On the AioContext (seed 004): a nested wait on this loop must be able to accept.
        listener = ctx.addListener("export " + id + " listener", listenFd, ignored -> acceptOne());
    }

    private void acceptOne() {
        int fd = UnixSockets.accept(listenFd);
        if (fd == -Errno.EAGAIN) {
            return;
        }
        if (fd < 0) {
            // EMFILE and friends: log and keep listening; the client stays in the backlog.
            LOG.log(System.Logger.Level.WARNING, () -> "export " + id + ": accept failed: " + Errno.name(-fd));
            return;
        }
        accepted++;
        listener.remove();
        listener = null;
        String name = "export " + id + " connection " + accepted;
        connection = new VhostUserConnection(name, ctx, fd, device, this::connectionClosed);
        connection.countInto(stats);
        LOG.log(System.Logger.Level.INFO, () -> name + ": front-end connected");
        connection.start();
    }

    private void connectionClosed(String reason) {
        connection = null;
        for (Consumer<String> l : List.copyOf(closeListeners)) {
            l.accept(reason);
        }
        if (closed) {
            finishClose();
        } else if (accepting) {
            startListening();
        }
    }

    /** A resize: the connected front-end (if any) hears VHOST_USER_BACKEND_CONFIG_CHANGE_MSG. */
    private void deviceConfigChanged() {
        if (connection != null && !connection.closing()) {
            connection.session().deviceConfigChanged();
        }
    }

    private void deviceNeedsReset() {
        LOG.log(System.Logger.Level.WARNING, () -> "export " + id + ": device needs reset: " + device.needsResetReason());
        if (connection != null && !connection.closing()) {
            String reason = device.needsResetReason();
            if (reason != null && reason.startsWith(GuestMemoryFault.REASON)) {
                // The front-end's memory is gone under us: nothing more can be served on it.
                connection.fail(reason);
                return;
            }
            connection.session().deviceNeedsReset();
        }
    }

    /**
     * Takes no new front end from now on (a daemon's first shutdown step); the open connection, if
     * any, keeps running until {@link #close}. New clients wait in the backlog until the socket
     * closes. Home thread.
     */
    public void stopAccepting() {
        ctx.assertHome();
        accepting = false;
        if (listener != null) {
            listener.remove();
            listener = null;
        }
    }

    /**
     * Stops accepting, closes the connection (its queues finish their in-flight requests) and
     * runs {@code onIdle} once nothing of the export remains. Home thread.
     */
    public void close(Runnable onIdle) {
        ctx.assertHome();
        if (closed) {
            onIdle.run();
            return;
        }
        closed = true;
        this.onIdle = onIdle;
        if (listener != null) {
            listener.remove();
            listener = null;
        }
        FileIo.close(listenFd);
        if (path != null) {
            FileIo.unlink(path);
        }
        if (connection != null) {
            connection.fail("export " + id + " is shutting down");
        } else {
            finishClose();
        }
    }

    private void finishClose() {
        Runnable r = onIdle;
        onIdle = null;
        if (r != null) {
            r.run();
        }
    }

    /** Closes without waiting (the connection's teardown still completes on the loop). Home thread. */
    @Override
    public void close() {
        close(() -> { });
    }
}
