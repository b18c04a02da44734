package io.vblk.tools.qmp;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.vblk.aio.AioContext;
import io.vblk.aio.AioOptions;
import io.vblk.aio.IoThread;
import io.vblk.drivers.node.BlockNode;
import io.vblk.tools.metrics.Binding;
import io.vblk.tools.qmp.Qmp.Args;
import io.vblk.virtio.blk.BlkDevice;
import io.vblk.virtio.blk.BlkDeviceConfig;
import io.vblk.virtio.device.IoThreadMapping;
import io.vblk.virtio.vhost.socket.VhostUserExport;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.function.BiConsumer;

/**
 * Home thread: the main loop. No locking.
 *
 * <p>The export and iothread commands: block-export-add / block-export-del /
 * query-block-exports, object-add / object-del (qom-type iothread or secret) / query-iothreads. An export
 * is built exactly as {@code vblk serve} builds one from {@code --export}; deleting one closes its
 * connection (the queues finish their requests on their IoThreads), then the device, and emits
 * BLOCK_EXPORT_DELETED once the last client is gone. Starting and stopping an IoThread waits for
 * a thread, so it runs on a helper thread and hands the result back to the main loop.
 */
final class ExportCommands {
    private static final System.Logger LOG = System.getLogger(ExportCommands.class.getName());
    /** vblk's largest ring (SplitQueue.MAX_SIZE), as {@code vblk serve} uses. */
    private static final int QUEUE_SIZE = 1024;

    private final QmpCommands cmds;
    /** Each export's node-name (the device knows its node; this survives the device's close). */
    private final Map<String, String> exportNode;
    /** Which iothreads each export's queues run on. */
    private final Map<String, List<String>> exportThreads;
    private final Map<String, List<Binding>> bindings = new HashMap<>();
    private final Set<String> deleting = new HashSet<>();
    private final Set<String> iothreadsPending = new HashSet<>();

    /** The type=nbd exports and the NBD server commands. */
    private final NbdCommands nbd;

    ExportCommands(QmpCommands cmds) {
        this.cmds = cmds;
        this.nbd = new NbdCommands(cmds);
        this.exportNode = cmds.graph.exportNodes();
        this.exportThreads = cmds.graph.exportThreads();
    }

    void register(BiConsumer<String, QmpCommands.Handler> add) {
        add.accept("block-export-add", this::exportAdd);
        add.accept("block-export-del", this::exportDel);
        add.accept("query-block-exports", this::queryExports);
        add.accept("object-add", this::objectAdd);
        add.accept("object-del", this::objectDel);
        add.accept("query-iothreads", this::queryIothreads);
        nbd.register(add);
    }

    boolean usesNode(String node) {
        return exportNode.containsValue(node) || nbd.usesNode(node);
    }

    private int indexOf(String id) {
        List<VhostUserExport> l = cmds.graph.exports();
        for (int i = 0; i < l.size(); i++) {
            if (l.get(i).id().equals(id)) {
                return i;
            }
        }
        return -1;
    }

    private CompletableFuture<JsonNode> exportAdd(Args a) {
        String type = a.string("type");
        String id = a.string("id");
        if (type.equals("nbd")) {
            if (indexOf(id) >= 0 || exportNode.containsKey(id) || nbd.has(id)) {
                throw QmpError.generic("Block export id '" + id + "' is already in use");
            }
            return nbd.exportAdd(a, id);
        }
        String nodeName = a.string("node-name");
        Args addr = a.object("addr");
        boolean writable = a.bool("writable", false);
        a.bool("writethrough", false);
        a.bool("fixed-iothread", false);
        String iothread = a.optString("iothread");
        Long numQueues = a.optInteger("num-queues");
        Long lbs = a.optInteger("logical-block-size");
        if (!type.equals("vhost-user-blk")) {
            throw QmpError.generic("Parameter 'type' does not accept value '" + type + "'");
        }
        String addrType = addr.string("type");
        String path = null;
        int fd = -1;
        switch (addrType) {
            case "unix" -> path = addr.string("path");
            case "fd" -> {
                String s = addr.string("str");
                try {
                    fd = Integer.parseInt(s);
                } catch (NumberFormatException e) {
                    throw QmpError.generic("File descriptor named '" + s + "' has not been found");
                }
            }
            default -> throw QmpError.generic("Parameter 'addr.type' does not accept value '" + addrType + "'");
        }
        addr.finish();
        a.finish();
        if (indexOf(id) >= 0 || exportNode.containsKey(id) || nbd.has(id)) {
            throw QmpError.generic("Block export id '" + id + "' is already in use");
        }
        BlockNode node = cmds.node(nodeName);
        if (writable && node.driver().readOnly()) {
            throw QmpError.generic("Cannot export a read-only node '" + nodeName + "' as writable");
        }
        int q = numQueues == null ? 1 : numQueues.intValue();
        if (numQueues != null && (numQueues < 1 || numQueues > 64)) {
            throw QmpError.generic("num-queues must be greater than 0");
        }
        int blockSize = lbs == null ? 512 : lbs.intValue();
        if (lbs != null && (lbs < 512 || lbs > 65536 || Long.bitCount(lbs) != 1)) {
            throw QmpError.generic("Parameter 'logical-block-size' expects a power of 2 between 512 and 65536");
        }
        AioContext main = cmds.main();
        IoThread t = iothread == null ? null : cmds.graph.iothreads().get(iothread);
        if (iothread != null && t == null) {
            throw QmpError.generic("Cannot find iothread " + iothread);
        }
        BlkDeviceConfig cfg = new BlkDeviceConfig().numQueues(q).queueSize(QUEUE_SIZE).logicalBlockSize(blockSize)
                .readOnly(!writable).serial(id.length() <= 20 ? id : id.substring(0, 20)).events(cmds.graph.events())
                .ioThreads(t == null ? IoThreadMapping.single(main) : IoThreadMapping.single(t.ctx()));
        BlkDevice dev = new BlkDevice(id, node, cfg, main);
        VhostUserExport x;
        try {
            x = path != null ? VhostUserExport.listen(id, main, dev, path) : VhostUserExport.onListeningFd(id, main, dev, fd);
        } catch (RuntimeException e) {
            dev.close(() -> { });
            throw QmpError.generic(e.getMessage());
        }
        cmds.graph.devices().add(dev);
        cmds.graph.exports().add(x);
        exportNode.put(id, nodeName);
        exportThreads.put(id, iothread == null ? List.of() : List.of(iothread));
        if (cmds.graph.metrics() != null) {
            bindings.put(id, List.of(cmds.graph.metrics().bindDevice(id, dev), cmds.graph.metrics().bindVhostExport(x)));
        }
        String where = path != null ? "unix:" + path : "fd:" + fd;
        LOG.log(System.Logger.Level.INFO, () -> "export " + id + ": added by QMP, vhost-user-blk on " + where + ", node " + nodeName);
        return CompletableFuture.completedFuture(Qmp.JSON.createObjectNode());
    }

    private CompletableFuture<JsonNode> exportDel(Args a) {
        String id = a.string("id");
        String mode = a.optString("mode");
        a.finish();
        if (mode != null && !mode.equals("safe") && !mode.equals("hard")) {
            throw QmpError.generic("Parameter 'mode' does not accept value '" + mode + "'");
        }
        if (nbd.has(id)) {
            return nbd.exportDel(id, mode);
        }
        int i = indexOf(id);
        if (i < 0) {
            throw QmpError.generic("Export '" + id + "' is not found");
        }
        if (deleting.contains(id)) {
            throw QmpError.generic("Export '" + id + "' is already shutting down");
        }
        VhostUserExport x = cmds.graph.exports().get(i);
        if (!"hard".equals(mode) && x.connection() != null) {
            // QEMU: a client holds a reference; mode=hard disconnects it.
            throw QmpError.generic("export '" + id + "' still in use");
        }
        deleting.add(id);
        BlkDevice dev = cmds.graph.devices().get(i);
        for (Binding b : bindings.getOrDefault(id, List.of())) {
            b.close();
        }
        bindings.remove(id);
        // QEMU's blk_exp_delete ends in blk_remove_bs → blk_drain: the node is drained first (seed
        // 003: this device and every other one attached stop taking guest requests, and what is in
        // flight finishes), the export and device close inside the section, and it ends once the
        // device has detached, so the node's other devices re-check their queues.
        BlockNode node = dev.node();
        node.drainedBegin().whenComplete((quiet, drainError) -> x.close(() -> dev.close(() -> {
            node.drainedEnd();
            int j = indexOf(id);
            if (j >= 0) {
                cmds.graph.exports().remove(j);
                cmds.graph.devices().remove(j);
            }
            deleting.remove(id);
            exportNode.remove(id);
            exportThreads.remove(id);
            LOG.log(System.Logger.Level.INFO, () -> "export " + id + ": deleted");
            ObjectNode d = Qmp.JSON.createObjectNode();
            d.put("id", id);
            cmds.server.emit("BLOCK_EXPORT_DELETED", d);
        })));
        return CompletableFuture.completedFuture(Qmp.JSON.createObjectNode());
    }

    private CompletableFuture<JsonNode> queryExports(Args a) {
        ArrayNode l = Qmp.JSON.createArrayNode();
        for (VhostUserExport x : cmds.graph.exports()) {
            ObjectNode o = l.addObject();
            o.put("node-name", exportNode.get(x.id()));
            o.put("shutting-down", deleting.contains(x.id()));
            o.put("type", "vhost-user-blk");
            o.put("id", x.id());
        }
        nbd.query(l);
        return QmpCommands.done(a, l);
    }

    private CompletableFuture<JsonNode> objectAdd(Args a) {
        String type = a.string("qom-type");
        String id = a.string("id");
        if (type.equals("secret")) {
            return secretAdd(a, id);
        }
        if (!type.equals("iothread")) {
            throw QmpError.generic("invalid object type: " + type);
        }
        Long pollMax = a.optInteger("poll-max-ns");
        Long grow = a.optInteger("poll-grow");
        Long shrink = a.optInteger("poll-shrink");
        Long batch = a.optInteger("aio-max-batch");
        a.finish();
        if (cmds.graph.iothreads().containsKey(id) || iothreadsPending.contains(id) || cmds.graph.secrets().contains(id)) {
            throw QmpError.generic("attempt to add duplicate property '" + id + "' to object (type 'container')");
        }
        if (!id.matches("[A-Za-z][A-Za-z0-9._-]*")) {
            throw QmpError.generic("Parameter 'id' expects an identifier");
        }
        AioOptions o;
        try {
            o = new AioOptions(pollMax == null ? 32_768 : pollMax, grow == null ? 0 : grow, shrink == null ? 0 : shrink,
                    batch == null ? 0 : batch.intValue());
        } catch (IllegalArgumentException e) {
            throw QmpError.generic(e.getMessage());
        }
        iothreadsPending.add(id);
        AioContext main = cmds.main();
        CompletableFuture<JsonNode> f = new CompletableFuture<>();
        // IoThread.start waits for its thread to run: off this loop, the result handed back to it.
        Thread.ofVirtual().name("iothread-start-" + id).start(() -> {
            IoThread t;
            try {
                t = IoThread.start(id, o);
            } catch (RuntimeException e) {
                main.runOn(() -> {
                    iothreadsPending.remove(id);
                    f.completeExceptionally(QmpError.generic(e.getMessage()));
                });
                return;
            }
            main.runOn(() -> {
                iothreadsPending.remove(id);
                cmds.graph.iothreads().put(id, t);
                if (cmds.graph.metrics() != null) {
                    cmds.graph.metrics().bindLoop(t.ctx());
                }
                f.complete(Qmp.JSON.createObjectNode());
            });
        });
        return f;
    }

    /** {@code object-add qom-type=secret} (QEMU's crypto/secret.c properties data, file, format). */
    private CompletableFuture<JsonNode> secretAdd(Args a, String id) {
        String data = a.optString("data");
        String file = a.optString("file");
        String format = a.optString("format");
        a.finish();
        if (!id.matches("[A-Za-z][A-Za-z0-9._-]*")) {
            throw QmpError.generic("Parameter 'id' expects an identifier");
        }
        if (cmds.graph.iothreads().containsKey(id) || iothreadsPending.contains(id)) {
            throw QmpError.generic("attempt to add duplicate property '" + id + "' to object (type 'container')");
        }
        try {
            cmds.graph.secrets().add(id, Secrets.load(id, data, file, format));
        } catch (IllegalArgumentException e) {
            throw QmpError.generic(e.getMessage());
        }
        return CompletableFuture.completedFuture(Qmp.JSON.createObjectNode());
    }

    private CompletableFuture<JsonNode> objectDel(Args a) {
        String id = a.string("id");
        a.finish();
        if (cmds.graph.secrets().remove(id)) {
            return CompletableFuture.completedFuture(Qmp.JSON.createObjectNode());
        }
        IoThread t = cmds.graph.iothreads().get(id);
        if (t == null) {
            throw QmpError.generic("object '" + id + "' not found");
        }
        for (List<String> l : exportThreads.values()) {
            if (l.contains(id)) {
                throw QmpError.generic("object '" + id + "' is in use, can not be deleted");
            }
        }
        cmds.graph.iothreads().remove(id);
        AioContext main = cmds.main();
        CompletableFuture<JsonNode> f = new CompletableFuture<>();
        Thread.ofVirtual().name("iothread-stop-" + id).start(() -> {
            try {
                t.close();
                main.runOn(() -> f.complete(Qmp.JSON.createObjectNode()));
            } catch (RuntimeException e) {
                main.runOn(() -> f.completeExceptionally(QmpError.generic("stopping iothread " + id + ": " + e.getMessage())));
            }
        });
        return f;
    }

    private CompletableFuture<JsonNode> queryIothreads(Args a) {
        ArrayNode l = Qmp.JSON.createArrayNode();
        for (Map.Entry<String, IoThread> e : cmds.graph.iothreads().entrySet()) {
            AioOptions o = e.getValue().ctx().options();
            ObjectNode n = l.addObject();
            n.put("id", e.getKey());
            n.put("thread-id", e.getValue().thread().threadId());
            n.put("poll-max-ns", o.pollMaxNs());
            n.put("poll-grow", o.pollGrow());
            n.put("poll-shrink", o.pollShrink());
            n.put("aio-max-batch", o.aioMaxBatch());
        }
        return QmpCommands.done(a, l);
    }

    /** Export ids in the order they were added, for logs. */
    List<String> ids() {
        List<String> l = new ArrayList<>();
        for (VhostUserExport x : cmds.graph.exports()) {
            l.add(x.id());
        }
        return l;
    }
}
