package io.vblk.virtio.vhost.socket;

import io.vblk.aio.AioContext;
import io.vblk.aio.FdHandler;
import io.vblk.aio.sys.Errno;
import io.vblk.aio.sys.FileIo;
import io.vblk.aio.sys.UnixSockets;
import io.vblk.virtio.device.VirtioDevice;
import io.vblk.virtio.memory.GuestMemoryFault;

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

    private final String id;
    private final AioContext ctx;
    private final VirtioDevice device;
    private final int listenFd;
    private final String path;
    private final List<Consumer<String>> closeListeners = new ArrayList<>();
    private FdHandler listener;
    private VhostUserConnection connection;
    private boolean closed;
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
    }

    /**
     * Listens on {@code path} (a stale socket file there is replaced, as QEMU does). Home thread.
     *
     * @throws IllegalStateException naming the path and the error when it cannot listen
     */
    public static VhostUserExport listen(String id, AioContext ctx, VirtioDevice device, String path) {
        ctx.assertHome();
        FileIo.unlink(path);
        int fd = UnixSockets.unixListen(path, BACKLOG);
        if (fd < 0) {
            throw new IllegalStateException("export " + id + ": cannot listen on " + path + ": " + Errno.name(-fd));
        }
        VhostUserExport e = new VhostUserExport(id, ctx, device, fd, path);
        e.startListening();
        return e;
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
        listener = ctx.addFdHandler("export " + id + " listener", listenFd, ignored -> acceptOne());
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
        } else {
            startListening();
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
