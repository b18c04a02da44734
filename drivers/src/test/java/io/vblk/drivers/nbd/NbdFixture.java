package io.vblk.drivers.nbd;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioOptions;
import io.vblk.aio.IoThread;
import io.vblk.drivers.BlockDriver;
import io.vblk.drivers.nbd.server.NbdExport;
import io.vblk.drivers.nbd.server.NbdServer;
import io.vblk.drivers.node.BlockNode;

import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.Callable;

/**
 * Any thread (the test's). A running NBD server for tests: a "main" IoThread that owns the
 * listener and the node, and an "io" IoThread that serves the clients, as {@code vblk serve} runs
 * them; one export of {@code driver} named {@code name}.
 */
public final class NbdFixture implements AutoCloseable {
    public static final Duration BOUND = Duration.ofSeconds(30);
    public final IoThread main = IoThread.start("nbd-main", AioOptions.DEFAULT);
    public final IoThread io = IoThread.start("nbd-io", AioOptions.DEFAULT);
    public final BlockNode node;
    public final NbdServer server;
    public final NbdExport export;
    public final String socket;
    /** The TCP port, or -1 when it listens on {@link #socket}. */
    public final int port;

    public NbdFixture(Path dir, BlockDriver driver, String name, boolean writable) {
        this(dir.resolve("nbd.sock").toString(), driver, name, writable);
    }

    public NbdFixture(String socket, BlockDriver driver, String name, boolean writable) {
        this.socket = socket;
        this.node = new BlockNode("disk", driver, main.ctx());
        this.server = onMain(() -> socket == null ? NbdServer.listenInet(main.ctx(), "127.0.0.1", 0, 0)
                : NbdServer.listenUnix(main.ctx(), socket, 0));
        this.port = server.port();
        this.export = onMain(() -> {
            NbdExport e = new NbdExport("e0", name, node, io.ctx(), writable);
            server.addExport(e);
            return e;
        });
    }

    /** An nbd+unix URI for the export (libnbd and QEMU both read it). */
    public String uri(String name) {
        return "nbd+unix:///" + name + "?socket=" + socket;
    }

    public <T> T onMain(Callable<T> c) {
        return waitFor(main.ctx().callOn(c));
    }

    /**
     * A plain bounded wait: the calling test thread may be the home of a context of its own (the
     * conformance suite's), which {@link AioContext#await} refuses; nothing the server's loops do
     * depends on that context, so the wait cannot deadlock.
     */
    private static <T> T waitFor(java.util.concurrent.CompletableFuture<T> f) {
        try {
            return f.get(BOUND.toSeconds(), java.util.concurrent.TimeUnit.SECONDS);
        } catch (java.util.concurrent.ExecutionException e) {
            throw e.getCause() instanceof RuntimeException r ? r : new IllegalStateException(e.getCause());
        } catch (InterruptedException | java.util.concurrent.TimeoutException e) {
            throw new IllegalStateException("NBD test server: " + e, e);
        }
    }

    @Override
    public void close() {
        java.util.concurrent.CompletableFuture<Void> closed = new java.util.concurrent.CompletableFuture<>();
        main.ctx().runOn(() -> server.close(() -> closed.complete(null)));
        waitFor(closed);
        onMain(() -> {
            node.close();
            node.driver().close();
            return null;
        });
        io.close();
        main.close();
    }
}
