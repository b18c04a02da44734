package io.vblk.tools.qmp;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.vblk.aio.AioContext;
import io.vblk.aio.IoThread;
import io.vblk.drivers.nbd.NbdAddress;
import io.vblk.drivers.nbd.server.NbdExport;
import io.vblk.drivers.nbd.server.NbdService;
import io.vblk.drivers.node.BlockNode;
import io.vblk.tools.qmp.Qmp.Args;

import java.util.HashSet;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.function.BiConsumer;

/**
 * Home thread: the main loop. No locking.
 *
 * <p>The NBD commands, as qemu-storage-daemon has them: {@code nbd-server-start} /
 * {@code nbd-server-stop}, and the {@code type=nbd} half of {@code block-export-add},
 * {@code block-export-del} and {@code query-block-exports}, which {@link ExportCommands} hands over.
 */
final class NbdCommands {
    private final QmpCommands cmds;
    private final NbdService nbd;
    private final Set<String> deleting = new HashSet<>();

    NbdCommands(QmpCommands cmds) {
        this.cmds = cmds;
        this.nbd = cmds.graph.nbd();
    }

    void register(BiConsumer<String, QmpCommands.Handler> add) {
        add.accept("nbd-server-start", this::serverStart);
        add.accept("nbd-server-stop", this::serverStop);
    }

    private CompletableFuture<JsonNode> serverStart(Args a) {
        Args addr = a.object("addr");
        a.optional("tls-creds");
        a.optional("tls-authz");
        Long max = a.optInteger("max-connections");
        a.finish();
        String type = addr.string("type");
        NbdAddress where = switch (type) {
            case "unix" -> new NbdAddress.Unix(addr.string("path"));
            case "inet" -> {
                String host = addr.string("host");
                JsonNode p = addr.require("port"); // a string in QEMU's SocketAddress; a number is taken too
                int port;
                try {
                    port = Integer.parseInt(p.asText());
                } catch (NumberFormatException e) {
                    throw QmpError.generic("Parameter 'addr.port' expects a port number, got '" + p.asText() + "'");
                }
                addr.optional("numeric");
                addr.optional("ipv4");
                addr.optional("ipv6");
                try {
                    yield new NbdAddress.Inet(host, port);
                } catch (IllegalArgumentException e) {
                    throw QmpError.generic(e.getMessage());
                }
            }
            default -> throw QmpError.generic("Parameter 'addr.type' does not accept value '" + type + "'");
        };
        addr.finish();
        if (max != null && (max < 0 || max > 65535)) {
            throw QmpError.generic("max-connections must be 0..65535");
        }
        try {
            nbd.start(where, max == null ? 0 : max.intValue());
        } catch (IllegalStateException | IllegalArgumentException e) {
            throw QmpError.generic(e.getMessage());
        }
        return CompletableFuture.completedFuture(Qmp.JSON.createObjectNode());
    }

    private CompletableFuture<JsonNode> serverStop(Args a) {
        a.finish();
        if (!nbd.running()) {
            throw QmpError.generic("NBD server not running");
        }
        for (NbdExport e : nbd.exports()) {
            deleted(e.id());
        }
        // QEMU answers at once and the clients go away behind it.
        nbd.stop(() -> { });
        return CompletableFuture.completedFuture(Qmp.JSON.createObjectNode());
    }

    /** block-export-add with type=nbd; {@code type} and {@code id} are taken already. */
    CompletableFuture<JsonNode> exportAdd(Args a, String id) {
        String nodeName = a.string("node-name");
        String name = a.optString("name");
        boolean writable = a.bool("writable", false);
        a.bool("writethrough", false);
        a.bool("fixed-iothread", false);
        a.optString("description");
        String iothread = a.optString("iothread");
        if (a.optional("bitmaps") != null) {
            throw QmpError.generic("Parameter 'bitmaps' is not supported by vblk's NBD export");
        }
        a.bool("allocation-depth", false);
        a.finish();
        if (!nbd.running()) {
            throw QmpError.generic("NBD server not running");
        }
        BlockNode node = cmds.node(nodeName);
        AioContext io = cmds.graph.mainLoop().ctx();
        if (iothread != null) {
            IoThread t = cmds.graph.iothreads().get(iothread);
            if (t == null) {
                throw QmpError.generic("Cannot find iothread " + iothread);
            }
            io = t.ctx();
        }
        String exportName = name == null ? nodeName : name;
        if (nbd.server().export(exportName) != null) {
            throw QmpError.generic("Export '" + exportName + "' already exists");
        }
        try {
            nbd.addExport(id, exportName, node, io, writable);
        } catch (IllegalArgumentException | IllegalStateException e) {
            throw QmpError.generic(e.getMessage());
        }
        return CompletableFuture.completedFuture(Qmp.JSON.createObjectNode());
    }

    boolean has(String id) {
        return nbd.export(id) != null;
    }

    boolean usesNode(String node) {
        return !nbd.exportsOf(node).isEmpty();
    }

    /** block-export-del of an NBD export: safe mode refuses while clients are connected, hard disconnects them. */
    CompletableFuture<JsonNode> exportDel(String id, String mode) {
        NbdExport e = nbd.export(id);
        if (deleting.contains(id)) {
            throw QmpError.generic("Export '" + id + "' is already shutting down");
        }
        if (!"hard".equals(mode) && e.clientCount() > 0) {
            throw QmpError.generic("export '" + id + "' still in use");
        }
        deleting.add(id);
        nbd.removeExport(id, () -> deleted(id));
        return CompletableFuture.completedFuture(Qmp.JSON.createObjectNode());
    }

    private void deleted(String id) {
        deleting.remove(id);
        ObjectNode d = Qmp.JSON.createObjectNode();
        d.put("id", id);
        cmds.server.emit("BLOCK_EXPORT_DELETED", d);
    }

    void query(ArrayNode l) {
        for (NbdExport e : nbd.exports()) {
            ObjectNode o = l.addObject();
            o.put("node-name", e.node().name());
            o.put("shutting-down", deleting.contains(e.id()));
            o.put("type", "nbd");
            o.put("id", e.id());
        }
    }
}
