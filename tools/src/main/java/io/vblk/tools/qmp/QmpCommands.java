package io.vblk.tools.qmp;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.vblk.aio.AioContext;
import io.vblk.aio.AioOptions;
import io.vblk.aio.IoThread;
import io.vblk.aio.engine.AioMode;
import io.vblk.drivers.BlockDriver;
import io.vblk.drivers.file.FileDriver;
import io.vblk.drivers.node.BlockNode;
import io.vblk.drivers.nullblk.NullDriver;
import io.vblk.drivers.qcow2.Qcow2Driver;
import io.vblk.drivers.rbd.RbdDriver;
import io.vblk.drivers.spec.DriverSpec;
import io.vblk.tools.qmp.Qmp.Args;
import io.vblk.tools.qmp.DaemonGraph.NodeInfo;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;

/**
 * Home thread: the main loop. No locking.
 *
 * <p>The QMP command table: each command with QEMU's name, argument names and result shape,
 * run on the main loop against the daemon's live {@link DaemonGraph}. A command that needs
 * an IoThread (closing a device's queues) returns a future the IoThread completes through a
 * hand-over; the main loop never waits (seed 004). Exports and iothreads are in
 * {@link ExportCommands}; this class has the table, the node commands and the run state.
 */
final class QmpCommands {
    /** One command: checked arguments in, the {@code return} value (or a {@link QmpError}) out. */
    @FunctionalInterface
    interface Handler {
        CompletableFuture<JsonNode> run(Args args);
    }

    private final Map<String, Handler> table = new LinkedHashMap<>();
    final DaemonGraph graph;
    final QmpServer server;
    final Map<String, NodeInfo> nodeInfo;
    final ExportCommands exports;
    final RunState runState;
    final JobCommands jobs;

    QmpCommands(DaemonGraph graph, QmpServer server) {
        this.graph = graph;
        this.server = server;
        this.nodeInfo = graph.nodeInfo();
        this.exports = new ExportCommands(this);
        this.runState = new RunState(graph, server);
        this.jobs = new JobCommands(this);
        add("qmp_capabilities", a -> { throw new IllegalStateException("handled by the connection"); });
        add("query-version", this::queryVersion);
        add("query-commands", this::queryCommands);
        add("quit", this::quit);
        add("query-status", runState::query);
        add("stop", runState::stop);
        add("cont", runState::cont);
        add("blockdev-add", this::blockdevAdd);
        add("blockdev-del", this::blockdevDel);
        add("query-named-block-nodes", this::queryNamedBlockNodes);
        add("query-block", a -> done(a, Qmp.JSON.createArrayNode()));
        add("query-blockstats", this::queryBlockstats);
        add("block_resize", this::blockResize);
        add("block-resize", this::blockResize);
        exports.register(this::add);
        jobs.register(this::add);
        new QomCommands(this).register(this::add);
    }

    void add(String name, Handler h) {
        table.put(name, h);
    }

    /** Runs {@code name}; unknown commands fail with CommandNotFound, as QEMU's dispatcher does. */
    CompletableFuture<JsonNode> execute(String name, ObjectNode args) {
        graph.mainLoop().ctx().assertHome();
        Handler h = table.get(name);
        if (h == null) {
            return CompletableFuture.failedFuture(new QmpError(QmpError.COMMAND_NOT_FOUND, "The command " + name + " has not been found"));
        }
        try {
            return h.run(new Args(args));
        } catch (QmpError e) {
            return CompletableFuture.failedFuture(e);
        }
    }

    static CompletableFuture<JsonNode> done(Args a, JsonNode result) {
        a.finish();
        return CompletableFuture.completedFuture(result);
    }

    static CompletableFuture<JsonNode> empty(Args a) {
        return done(a, Qmp.JSON.createObjectNode());
    }

    private CompletableFuture<JsonNode> queryVersion(Args a) {
        ObjectNode v = Qmp.JSON.createObjectNode();
        ObjectNode q = v.putObject("qemu");
        q.put("micro", 0);
        q.put("minor", 1);
        q.put("major", 0);
        v.put("package", "vblk 0.1.0");
        return done(a, v);
    }

    private CompletableFuture<JsonNode> queryCommands(Args a) {
        ArrayNode l = Qmp.JSON.createArrayNode();
        for (String n : table.keySet()) {
            l.addObject().put("name", n);
        }
        return done(a, l);
    }

    private CompletableFuture<JsonNode> quit(Args a) {
        a.finish();
        server.requestQuit();
        return CompletableFuture.completedFuture(Qmp.JSON.createObjectNode());
    }

    // ---------------------------------------------------------------- nodes

    private CompletableFuture<JsonNode> blockdevAdd(Args a) {
        String driver = a.string("driver");
        String name = a.string("node-name");
        boolean ro = a.bool("read-only", false);
        a.optString("discard");
        a.optString("detect-zeroes");
        a.bool("auto-read-only", false);
        DriverSpec spec;
        NodeInfo info;
        if (driver.equals("qcow2")) {
            return blockdevAddQcow2(a, name, ro);
        }
        switch (driver) {
            case "file", "host_device" -> {
                String filename = a.string("filename");
                String aio = a.optString("aio");
                AioMode mode;
                try {
                    mode = AioMode.parse(aio == null ? AioMode.THREADS.spelling() : aio);
                } catch (IllegalArgumentException e) {
                    throw QmpError.generic("Parameter 'aio' does not accept value '" + aio + "'");
                }
                boolean direct = false;
                JsonNode cache = a.optional("cache");
                if (cache != null) {
                    if (!cache.isObject()) {
                        throw QmpError.generic("Invalid parameter type for 'cache', expected: object");
                    }
                    Args c = new Args((ObjectNode) cache);
                    direct = c.bool("direct", false);
                    if (c.bool("no-flush", false)) {
                        throw QmpError.generic("Parameter 'cache.no-flush' does not accept value 'true'");
                    }
                    c.finish();
                }
                if (mode == AioMode.NATIVE && !direct) {
                    throw QmpError.generic("aio=native was specified, but it requires cache.direct=on, which was not specified.");
                }
                spec = new DriverSpec.File(filename, mode, direct ? FileDriver.Cache.NONE : FileDriver.Cache.WRITEBACK, ro);
                info = new NodeInfo(driver, filename, direct, ro);
            }
            case "null-co", "null-aio" -> {
                Long size = a.optInteger("size");
                long s = size == null ? 1L << 30 : size;
                if (a.bool("read-zeroes", false)) {
                    throw QmpError.generic("Parameter 'read-zeroes' does not accept value 'true'");
                }
                spec = new DriverSpec.Null(s, driver.equals("null-aio") ? NullDriver.Completion.ASYNC : NullDriver.Completion.SYNC, 32, ro, false);
                info = new NodeInfo(driver, "json:{\"driver\": \"" + driver + "\", \"size\": " + s + "}", false, ro);
            }
            case "rbd" -> {
                String pool = a.string("pool");
                String image = a.string("image");
                String namespace = a.optString("namespace");
                String snapshot = a.optString("snapshot");
                String conf = a.optString("conf");
                String user = a.optString("user");
                String keySecret = a.optString("key-secret");
                String key = null;
                if (keySecret != null) {
                    try {
                        key = graph.secrets().base64(keySecret); // QEMU: qcrypto_secret_lookup_as_base64
                    } catch (IllegalArgumentException e) {
                        throw QmpError.generic(e.getMessage());
                    }
                }
                if (snapshot != null && !ro) {
                    throw QmpError.generic("rbd snapshots are read-only");
                }
                spec = new DriverSpec.Rbd(new RbdDriver.Options(pool, image, namespace, snapshot, conf, user, key, ro));
                info = new NodeInfo(driver, "rbd:" + pool + "/" + (namespace == null ? "" : namespace + "/") + image
                        + (snapshot == null ? "" : "@" + snapshot), false, ro);
            }
            case "nbd" -> {
                DriverSpec.Nbd n = nbdSpec(a);
                spec = n;
                info = new NodeInfo(driver, "nbd+" + n.server().describe() + "/" + n.export(), false, ro);
            }
            default -> throw QmpError.generic("Parameter 'driver' does not accept value '" + driver + "'");
        }
        a.finish();
        if (!name.matches("[A-Za-z][A-Za-z0-9._-]*")) {
            throw QmpError.generic("Invalid node-name: '" + name + "'");
        }
        if (graph.nodes().containsKey(name)) {
            throw QmpError.generic("Duplicate nodes with node-name='" + name + "'");
        }
        BlockDriver d;
        try {
            d = spec.open();
        } catch (RuntimeException e) {
            throw QmpError.generic("Could not open '" + info.filename() + "': " + e.getMessage());
        }
        graph.drivers().put(name, d);
        graph.nodes().put(name, new BlockNode(name, d, graph.mainLoop().ctx()));
        nodeInfo.put(name, info);
        return CompletableFuture.completedFuture(Qmp.JSON.createObjectNode());
    }

    /** BlockdevOptionsNbd: {@code server} (a SocketAddress), {@code export}, {@code reconnect-delay}. */
    private static DriverSpec.Nbd nbdSpec(Args a) {
        Args srv = a.object("server");
        String type = srv.string("type");
        io.vblk.drivers.nbd.NbdAddress addr = switch (type) {
            case "unix" -> new io.vblk.drivers.nbd.NbdAddress.Unix(srv.string("path"));
            case "inet" -> {
                String host = srv.string("host");
                JsonNode p = srv.optional("port"); // a string in QEMU's SocketAddress
                try {
                    yield new io.vblk.drivers.nbd.NbdAddress.Inet(host, p == null
                            ? io.vblk.drivers.nbd.NbdAddress.DEFAULT_PORT : Integer.parseInt(p.asText()));
                } catch (IllegalArgumentException e) {
                    throw QmpError.generic("Parameter 'server.port' does not accept value '" + p.asText() + "'");
                }
            }
            default -> throw QmpError.generic("Parameter 'server.type' does not accept value '" + type + "'");
        };
        srv.finish();
        String export = a.optString("export");
        Long delay = a.optInteger("reconnect-delay");
        if (delay != null && (delay < 0 || delay > 3600)) {
            throw QmpError.generic("reconnect-delay must be 0..3600");
        }
        return new DriverSpec.Nbd(addr, export == null ? "" : export, delay == null ? 0 : delay.intValue());
    }

    /**
     * {@code driver=qcow2, file=NODE[, backing=NODE|null|{driver: nbd, ...}]}: opened here, on the main loop, in a
     * nested wait (as QEMU's blockdev-add opens a qcow2 chain); the file node's driver is shared.
     */
    private CompletableFuture<JsonNode> blockdevAddQcow2(Args a, String name, boolean ro) {
        String file = a.string("file");
        boolean noBacking = a.isNull("backing");
        JsonNode backingArg = noBacking ? null : a.optional("backing");
        String backing = null;
        DriverSpec.Nbd inline = null;
        if (backingArg != null && backingArg.isObject()) {
            // An inline BlockdevOptions: opened inside the qcow2 open (seed 004's setting when its
            // server is this daemon's own NBD export).
            Args b = a.object("backing");
            String bd = b.string("driver");
            if (!bd.equals("nbd")) {
                throw QmpError.generic("Parameter 'backing.driver' does not accept value '" + bd
                        + "' (inline backing nodes: nbd; or name a node)");
            }
            b.optString("node-name");
            inline = nbdSpec(b);
            b.finish();
        } else if (backingArg != null) {
            backing = a.optString("backing");
        }
        a.finish();
        if (!name.matches("[A-Za-z][A-Za-z0-9._-]*")) {
            throw QmpError.generic("Invalid node-name: '" + name + "'");
        }
        if (graph.nodes().containsKey(name)) {
            throw QmpError.generic("Duplicate nodes with node-name='" + name + "'");
        }
        BlockDriver child = graph.drivers().get(file);
        if (child == null) {
            throw QmpError.generic("Cannot find device='' nor node-name='" + file + "'");
        }
        BlockDriver back = null;
        if (backing != null) {
            back = graph.drivers().get(backing);
            if (back == null) {
                throw QmpError.generic("Cannot find device='' nor node-name='" + backing + "'");
            }
        }
        BlockDriver d;
        try {
            DriverSpec.Nbd nbd = inline;
            d = nbd != null ? Qcow2Driver.openWithBacking(child, nbd::open, ro, graph.mainLoop().ctx())
                    : Qcow2Driver.open(child, back, !noBacking && back == null, ro, graph.mainLoop().ctx());
        } catch (RuntimeException e) {
            throw QmpError.generic("Could not open node '" + file + "': " + e.getMessage());
        }
        NodeInfo fi = nodeInfo.get(file);
        graph.drivers().put(name, d);
        graph.nodes().put(name, new BlockNode(name, d, graph.mainLoop().ctx()));
        nodeInfo.put(name, new NodeInfo("qcow2", fi != null ? fi.filename() : file, false, d.readOnly()));
        return CompletableFuture.completedFuture(Qmp.JSON.createObjectNode());
    }

    private CompletableFuture<JsonNode> blockdevDel(Args a) {
        String name = a.string("node-name");
        a.finish();
        BlockNode n = graph.nodes().get(name);
        if (n == null) {
            throw QmpError.generic("Failed to find node with node-name='" + name + "'");
        }
        if (jobs.uses(n)) {
            throw QmpError.generic("Node '" + name + "' is busy: block device is in use by block job");
        }
        boolean child = graph.drivers().values().stream().anyMatch(d -> d instanceof Qcow2Driver q
                && (q.file() == n.driver() || q.backing() == n.driver()));
        if (!n.parents().isEmpty() || exports.usesNode(name) || child) {
            throw QmpError.generic("Node " + name + " is in use");
        }
        n.close();
        graph.nodes().remove(name);
        graph.drivers().remove(name);
        nodeInfo.remove(name);
        return CompletableFuture.completedFuture(Qmp.JSON.createObjectNode());
    }

    BlockNode node(String name) {
        BlockNode n = graph.nodes().get(name);
        if (n == null) {
            throw QmpError.generic("Cannot find device='' nor node-name='" + name + "'");
        }
        return n;
    }

    private CompletableFuture<JsonNode> queryNamedBlockNodes(Args a) {
        a.bool("flat", false);
        ArrayNode l = Qmp.JSON.createArrayNode();
        // Newest first, as qemu-storage-daemon lists them.
        for (BlockNode n : new java.util.ArrayList<>(graph.nodes().values()).reversed()) {
            NodeInfo i = nodeInfo.getOrDefault(n.name(), new NodeInfo(n.driver().kind(), n.name(), false, n.driver().readOnly()));
            ObjectNode o = l.addObject();
            o.put("iops_rd", 0);
            o.put("detect_zeroes", "off");
            ObjectNode img = o.putObject("image");
            img.put("virtual-size", n.driver().length());
            img.put("filename", i.filename());
            img.put("format", i.drv());
            img.put("actual-size", 0);
            if (i.drv().equals("file") || i.drv().equals("host_device")) {
                img.put("dirty-flag", false);
            }
            o.put("iops_wr", 0);
            o.put("ro", i.readOnly());
            o.put("node-name", n.name());
            o.put("backing_file_depth", 0);
            o.put("drv", i.drv());
            o.put("iops", 0);
            o.put("bps_wr", 0);
            o.put("write_threshold", 0);
            o.put("encrypted", false);
            o.put("bps", 0);
            o.put("bps_rd", 0);
            ObjectNode c = o.putObject("cache");
            c.put("no-flush", false);
            c.put("direct", i.direct());
            c.put("writeback", true);
            o.put("file", i.filename());
        }
        return done(a, l);
    }

    private CompletableFuture<JsonNode> queryBlockstats(Args a) {
        boolean nodes = a.bool("query-nodes", false);
        a.finish();
        ArrayNode l = Qmp.JSON.createArrayNode();
        if (!nodes) {
            // As qemu-storage-daemon: an export's block backend is anonymous, so no named device to list.
            return CompletableFuture.completedFuture(l);
        }
        for (BlockNode n : graph.nodes().values()) {
            BlockStats s = BlockStats.of(n, graph.devices());
            ObjectNode o = l.addObject();
            o.set("stats", s.toJson());
            o.put("node-name", n.name());
            NodeInfo i = nodeInfo.get(n.name());
            if (i != null && (i.drv().equals("file") || i.drv().equals("host_device"))) {
                ObjectNode ds = o.putObject("driver-specific");
                ds.put("discard-bytes-ok", 0);
                ds.put("discard-nb-ok", s.discards());
                ds.put("driver", i.drv());
                ds.put("discard-nb-failed", 0);
            }
        }
        return CompletableFuture.completedFuture(l);
    }

    /**
     * block_resize / block-resize: {@code device} or {@code node-name}, and {@code size}. The node
     * changes size through {@link QmpServer#resizer()} (the node-resize seam; the vhost-user side
     * tells the front end with CONFIG_CHANGE_MSG).
     */
    private CompletableFuture<JsonNode> blockResize(Args a) {
        String device = a.optString("device");
        String nodeName = a.optString("node-name");
        long size = a.integer("size");
        a.finish();
        if (size < 0) {
            throw QmpError.generic("Parameter 'size' expects a >0 size");
        }
        String name = nodeName != null ? nodeName : device;
        BlockNode n = name == null ? null : graph.nodes().get(name);
        if (n == null) {
            throw QmpError.generic("Cannot find device='" + (device == null ? "" : device) + "' nor node-name='"
                    + (nodeName == null ? "" : nodeName) + "'");
        }
        if (n.driver().readOnly()) {
            throw QmpError.generic("Cannot resize a read-only node '" + n.name() + "'");
        }
        return server.resizer().resize(n, size).thenApply(v -> Qmp.JSON.createObjectNode());
    }

    /** The ids of iothreads known to the graph. */
    Set<String> iothreadIds() {
        return graph.iothreads().keySet();
    }

    static AioOptions options(IoThread t) {
        return t.ctx().options();
    }

    AioContext main() {
        return graph.mainLoop().ctx();
    }
}
