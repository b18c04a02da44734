package io.vblk.drivers.nbd.server;

import io.vblk.aio.AioContext;
import io.vblk.drivers.nbd.NbdAddress;
import io.vblk.drivers.node.BlockNode;

import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Home thread: the main loop. No locking.
 *
 * <p>The daemon's NBD side as qemu-storage-daemon has it: at most one running {@link NbdServer}
 * ({@code --nbd-server}, QMP {@code nbd-server-start}/{@code nbd-server-stop}) and the NBD exports
 * by id ({@code --export type=nbd}, {@code block-export-add}/{@code block-export-del}). An export
 * needs the server; stopping the server removes its exports.
 */
public final class NbdService {
    private final AioContext main;
    private NbdServer server;
    private final Map<String, NbdExport> byId = new LinkedHashMap<>();

    public NbdService(AioContext main) {
        this.main = main;
    }

    public boolean running() {
        return server != null;
    }

    /** The running server, or null. */
    public NbdServer server() {
        return server;
    }

    /**
     * Starts the server on {@code addr}. Throws {@link IllegalStateException} when one runs
     * ("NBD server already running", QEMU's words) or it cannot listen.
     */
    public NbdServer start(NbdAddress addr, int maxConnections) {
        main.assertHome();
        if (server != null) {
            throw new IllegalStateException("NBD server already running");
        }
        server = switch (addr) {
            case NbdAddress.Unix u -> NbdServer.listenUnix(main, u.path(), maxConnections);
            case NbdAddress.Inet i -> NbdServer.listenInet(main, i.host(), i.port(), maxConnections);
        };
        return server;
    }

    /** Stops the server and removes every export; {@code done} runs once all clients are gone. */
    public void stop(Runnable done) {
        main.assertHome();
        if (server == null) {
            throw new IllegalStateException("NBD server not running");
        }
        NbdServer s = server;
        server = null;
        byId.clear();
        s.close(done);
    }

    /**
     * Adds an export of {@code node} named {@code name}, its clients served on {@code ioContext}.
     * Throws {@link IllegalStateException} / {@link IllegalArgumentException} with QEMU's messages.
     */
    public NbdExport addExport(String id, String name, BlockNode node, AioContext ioContext, boolean writable) {
        main.assertHome();
        if (server == null) {
            throw new IllegalStateException("NBD server not running");
        }
        if (byId.containsKey(id)) {
            throw new IllegalArgumentException("Block export id '" + id + "' is already in use");
        }
        NbdExport e = new NbdExport(id, name, node, ioContext, writable);
        server.addExport(e);
        byId.put(id, e);
        return e;
    }

    public NbdExport export(String id) {
        return byId.get(id);
    }

    public Collection<NbdExport> exports() {
        return new ArrayList<>(byId.values());
    }

    /** Removes the export {@code id}: its clients disconnect after their requests; then {@code done}. */
    public void removeExport(String id, Runnable done) {
        main.assertHome();
        NbdExport e = byId.remove(id);
        if (e == null || server == null) {
            done.run();
            return;
        }
        server.removeExport(e.name(), done);
    }

    /** Ids of the exports of {@code node}. */
    public List<String> exportsOf(String nodeName) {
        List<String> l = new ArrayList<>();
        for (NbdExport e : byId.values()) {
            if (e.node().name().equals(nodeName)) {
                l.add(e.id());
            }
        }
        return l;
    }
}
