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

    public NbdFixture(Path dir, BlockDriver driver, String name, boolean writable) {
        this.socket = dir.resolve("nbd.sock").toString();
        this.node = new BlockNode("disk", driver, main.ctx());
        this.server = onMain(() -> NbdServer.listenUnix(main.ctx(), socket, 0));
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
        return AioContext.await(main.ctx().callOn(c), BOUND);
    }

    @Override
    public void close() {
        java.util.concurrent.CompletableFuture<Void> closed = new java.util.concurrent.CompletableFuture<>();
        main.ctx().runOn(() -> server.close(() -> closed.complete(null)));
        AioContext.await(closed, BOUND);
        onMain(() -> {
            node.close();
            return null;
        });
        io.close();
        main.close();
    }
}
