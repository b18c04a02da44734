package io.vblk.tools.serve;

import io.vblk.virtio.queue.SplitQueue;
import io.vblk.virtio.blk.BlkDeviceConfig;
import io.vblk.aio.engine.AioMode;
import io.vblk.tools.qmp.Secrets;
import io.vblk.virtio.blk.ErrorPolicy;
import io.vblk.tools.serve.ServeConfig.Address;
import io.vblk.tools.serve.ServeConfig.Blockdev;
import io.vblk.tools.serve.ServeConfig.ExportSpec;
import io.vblk.tools.serve.ServeConfig.FileNode;
import io.vblk.tools.serve.ServeConfig.InheritedFd;
import io.vblk.tools.serve.ServeConfig.IoThreadSpec;
import io.vblk.tools.serve.ServeConfig.NullNode;
import io.vblk.tools.serve.ServeConfig.RbdNode;
import io.vblk.tools.serve.ServeConfig.UnixPath;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Any thread: stateless.
 *
 * <p>Turns {@code qemu-storage-daemon}-style option arguments into a checked {@link ServeConfig}.
 * Accepted (what vblk supports of qemu-storage-daemon's syntax, plus vblk's own keys in the same
 * style):
 * <pre>
 * --blockdev driver=file,node-name=N,filename=F[,aio=threads|native|io_uring][,cache.direct=on|off]
 *            [,cache.no-flush=off][,read-only=on|off]
 * --blockdev driver=null-co|null-aio,node-name=N[,size=S][,read-zeroes=off][,read-only=on|off]
 * --blockdev driver=rbd,node-name=N,pool=P,image=I[,namespace=NS][,snapshot=S][,conf=PATH][,user=U][,key-secret=ID]
 *            [,read-only=on|off]
 *            (a Ceph RBD image through librbd; a snapshot needs read-only=on, as QEMU's rbd driver; key-secret: the
 *            cephx key from a secret object, set as librados' "key")
 * --object secret,id=ID,data=STRING|file=PATH[,format=raw|base64]   (see {@link Secrets})
 * --blockdev driver=raw,node-name=N,file=NODE          (raw format over a file node: pass-through)
 * --blockdev driver=qcow2,node-name=N,file=NODE[,backing=NODE|null][,read-only=on|off]
 *            (a qcow2 image over an earlier node; without backing= the image's own backing file is opened)
 *            or [,backing.driver=nbd,backing.server.type=unix|inet,backing.server.path=P|.host=H,.port=N,
 *            backing.export=NAME] (an NBD backing node opened inside the qcow2 open)
 * --blockdev driver=blkdebug,node-name=N,image=NODE | image.driver=file,image.filename=F
 *            [,inject-error.I.event=E,...][,set-state.I.event=E,...]   (see {@link BlkdebugOptions})
 * --object iothread,id=I[,poll-max-ns=NS][,poll-grow=G][,poll-shrink=S][,aio-max-batch=B][,cpu-affinity=LIST]
 * --blockdev driver=nbd,node-name=N,server.type=unix,server.path=P | server.type=inet,server.host=H,server.port=N
 *            [,export=NAME][,reconnect-delay=S]
 * --nbd-server addr.type=unix,addr.path=P | addr.type=inet,addr.host=H,addr.port=N
 * --export type=nbd,id=E,node-name=N[,name=NAME][,writable=on|off][,iothread=I]
 * --export type=vhost-user-blk,id=E,node-name=N,addr.type=unix,addr.path=P | addr.type=fd,addr.str=FD
 *          [,writable=on|off][,num-queues=Q][,logical-block-size=B]
 *          [,werror=enospc|stop|report|ignore][,rerror=report|stop|enospc|ignore]   (QEMU's device options)
 *          [,submit-batch=N]   (vblk: requests a pass submits before it notifies and goes on; 0 = whole pass)
 *          [,iothread=I | ,iothread.0=I0,iothread.1=I1,...]   (vblk: queue q runs on iothread.(q mod n))
 * </pre>
 */
public final class ServeOptionParser {
    /** QEMU's null-co/null-aio default size (1 GiB). */
    static final long NULL_DEFAULT_SIZE = 1L << 30;
    /** QEMU's defaults for an iothread object (iothread.c): 32 us adaptive polling, grow/shrink automatic. */
    static final long DEFAULT_POLL_MAX_NS = 32_768;
    /** Queues per export: virtio-blk's num_queues is a u16; vblk caps at 64 (one IoThread each at most). */
    static final int MAX_QUEUES = 64;
    /** Logical block size: a power of two, at least a sector, at most 64 KiB. */
    static final int MIN_BLOCK = 512;
    static final int MAX_BLOCK = 65536;

    private ServeOptionParser() {
    }

    /** {@code driver=rbd}: QEMU's option names; {@code key-secret} names an {@code --object secret} (the cephx key). */
    static RbdNode rbd(KeyValueOptions o, String nodeName, Secrets secrets) throws ServeOptionException {
        String pool = o.require("pool", "the Ceph pool that holds the image");
        String image = o.require("image", "the RBD image name");
        String namespace = o.take("namespace");
        String snapshot = o.take("snapshot");
        String conf = o.take("conf");
        String user = o.take("user");
        String keySecret = o.take("key-secret");
        String key = null;
        if (keySecret != null) {
            try {
                key = secrets.base64(keySecret);
            } catch (IllegalArgumentException e) {
                throw new ServeOptionException(o.where() + ": key-secret=" + keySecret + ": " + e.getMessage()
                        + "; accepts the id of an --object secret,id=ID,data=KEY,format=base64 (or file=PATH)");
            }
        }
        boolean ro = o.takeBool("read-only", false);
        if (snapshot != null && !ro) {
            // QEMU: bdrv_apply_auto_read_only(bs, "rbd snapshots are read-only", errp).
            throw new ServeOptionException(o.where() + ": rbd snapshots are read-only; add read-only=on");
        }
        for (String[] kv : new String[][] {{"pool", pool}, {"image", image}, {"namespace", namespace},
                {"snapshot", snapshot}, {"conf", conf}, {"user", user}, {"key-secret", keySecret}}) {
            if (kv[1] != null && kv[1].isEmpty()) {
                throw new ServeOptionException(o.where() + ": " + kv[0] + " must not be empty");
            }
        }
        o.finish();
        return new RbdNode(nodeName, pool, image, namespace, snapshot, conf, user, keySecret, key, ro);
    }

    public static ServeConfig parse(List<String> blockdevs, List<String> objects, List<String> exports, String pidfile)
            throws ServeOptionException {
        return parse(blockdevs, objects, exports, pidfile, false);
    }

    /** As above; with {@code monitor} (a QMP monitor will add exports at run time) no --export is needed. */
    public static ServeConfig parse(List<String> blockdevs, List<String> objects, List<String> exports, String pidfile,
                                    boolean monitor) throws ServeOptionException {
        return parse(blockdevs, objects, exports, pidfile, monitor, null);
    }

    /** As above, with {@code nbdServer} the {@code --nbd-server} argument or null. */
    public static ServeConfig parse(List<String> blockdevs, List<String> objects, List<String> exports, String pidfile,
                                    boolean monitor, String nbdServer) throws ServeOptionException {
        // Secrets first: a --blockdev may name one (qemu-storage-daemon needs the --object earlier on its command line).
        Secrets secrets = new Secrets();
        Map<String, byte[]> secretValues = new java.util.LinkedHashMap<>();
        List<String> otherObjects = new ArrayList<>();
        for (String text : objects) {
            KeyValueOptions o = KeyValueOptions.parse("--object", text, "qom-type");
            if (!"secret".equals(o.take("qom-type"))) {
                otherObjects.add(text);
                continue;
            }
            String id = o.require("id", "a name for the secret, used by key-secret=");
            checkId(o, "id", id);
            String data = o.take("data");
            String file = o.take("file");
            String format = o.take("format");
            o.finish();
            try {
                byte[] v = Secrets.load(id, data, file, format);
                secrets.add(id, v);
                secretValues.put(id, v);
            } catch (IllegalArgumentException e) {
                throw new ServeOptionException(o.where() + ": " + e.getMessage());
            }
        }
        Map<String, Blockdev> nodes = new HashMap<>();
        Map<String, String> rawAliases = new HashMap<>();
        List<Blockdev> nodeList = new ArrayList<>();
        for (String text : blockdevs) {
            KeyValueOptions o = KeyValueOptions.parse("--blockdev", text, null);
            String driver = o.require("driver", "file, null-co, null-aio, rbd, nbd, raw, qcow2 or blkdebug");
            String nodeName = o.require("node-name", "a name for this node, used by --export node-name=");
            checkId(o, "node-name", nodeName);
            if (nodes.containsKey(nodeName) || rawAliases.containsKey(nodeName)) {
                throw new ServeOptionException(o.where() + ": node-name " + nodeName + " is used by another --blockdev");
            }
            switch (driver) {
                case "file", "host_device" -> {
                    String filename = o.require("filename", "the image file or block device path");
                    AioMode aio = AioMode.parse(o.takeChoice("aio", AioMode.THREADS.spelling(), AioMode.spellings()));
                    boolean direct = o.takeBool("cache.direct", false);
                    if (o.takeBool("cache.no-flush", false)) {
                        throw new ServeOptionException(o.where() + ": cache.no-flush=on is not supported (vblk always"
                                + " passes FLUSH to the image); accepts cache.no-flush=off");
                    }
                    boolean ro = o.takeBool("read-only", false);
                    if (aio == AioMode.NATIVE && !direct) {
                        // QEMU refuses this too: "aio=native was specified, but it requires cache.direct=on".
                        throw new ServeOptionException(o.where() + ": aio=native requires cache.direct=on (Linux AIO is"
                                + " only asynchronous with O_DIRECT); accepts aio=threads, or add cache.direct=on");
                    }
                    o.finish();
                    FileNode n = new FileNode(nodeName, filename, aio, direct, ro);
                    nodes.put(nodeName, n);
                    nodeList.add(n);
                }
                case "null-co", "null-aio" -> {
                    long size = o.takeSize("size", NULL_DEFAULT_SIZE);
                    if (o.takeBool("read-zeroes", false)) {
                        throw new ServeOptionException(o.where() + ": read-zeroes=on is not supported (vblk's null"
                                + " driver leaves read buffers untouched, as null-co's default does); accepts read-zeroes=off");
                    }
                    boolean ro = o.takeBool("read-only", false);
                    o.finish();
                    NullNode n = new NullNode(nodeName, driver.equals("null-aio"), size, ro);
                    nodes.put(nodeName, n);
                    nodeList.add(n);
                }
                case "rbd" -> {
                    RbdNode n = rbd(o, nodeName, secrets);
                    nodes.put(nodeName, n);
                    nodeList.add(n);
                }
                case "raw" -> {
                    String file = o.require("file", "the node-name of the file node underneath");
                    o.takeBool("read-only", false);
                    o.finish();
                    rawAliases.put(nodeName, file);
                }
                case "nbd" -> {
                    io.vblk.drivers.nbd.NbdAddress server = nbdAddress(o, "server");
                    String export = o.take("export");
                    int delay = (int) o.takeLong("reconnect-delay", 0, 0, 3600);
                    o.takeBool("read-only", false);
                    o.finish();
                    Blockdev n = new ServeConfig.NbdNode(nodeName, server, export == null ? "" : export, delay);
                    nodes.put(nodeName, n);
                    nodeList.add(n);
                }
                case "qcow2" -> {
                    Blockdev n = qcow2(o, nodeName, nodes, rawAliases);
                    nodes.put(nodeName, n);
                    nodeList.add(n);
                }
                case "blkdebug" -> {
                    Blockdev n = BlkdebugOptions.parse(o, nodeName, nodes, rawAliases);
                    nodes.put(nodeName, n);
                    nodeList.add(n);
                }
                default -> throw new ServeOptionException(o.where() + ": driver=" + driver
                        + " is not supported; accepts file, host_device, null-co, null-aio, rbd, nbd, raw, qcow2, blkdebug");
            }
        }
        for (Map.Entry<String, String> e : rawAliases.entrySet()) {
            if (!nodes.containsKey(e.getValue())) {
                throw new ServeOptionException("--blockdev driver=raw,node-name=" + e.getKey() + ": file=" + e.getValue()
                        + " names no file or null node; accepts the node-name of an earlier --blockdev");
            }
        }

        Map<String, IoThreadSpec> threads = new HashMap<>();
        List<IoThreadSpec> threadList = new ArrayList<>();
        for (String text : otherObjects) {
            KeyValueOptions o = KeyValueOptions.parse("--object", text, "qom-type");
            String type = o.require("qom-type", "iothread, secret or metrics");
            if (!type.equals("iothread")) {
                throw new ServeOptionException(o.where() + ": object type " + type
                        + " is not supported; accepts iothread, secret or metrics");
            }
            String id = o.require("id", "a name for the IoThread, used by --export iothread=");
            checkId(o, "id", id);
            long pollMax = o.takeLong("poll-max-ns", DEFAULT_POLL_MAX_NS, 0, Long.MAX_VALUE);
            long grow = o.takeLong("poll-grow", 0, 0, Long.MAX_VALUE);
            long shrink = o.takeLong("poll-shrink", 0, 0, Long.MAX_VALUE);
            int batch = (int) o.takeLong("aio-max-batch", 0, 0, 1024);
            java.util.BitSet cpus = null;
            String affinity = o.take("cpu-affinity");
            if (affinity != null) {
                try {
                    cpus = io.vblk.aio.sys.CpuAffinity.parse(affinity);
                } catch (IllegalArgumentException e) {
                    throw new ServeOptionException(o.where() + ": cpu-affinity=" + affinity + ": " + e.getMessage()
                            + " (',' ends the property: write 0-1:3)");
                }
            }
            o.finish();
            if (threads.containsKey(id) || secretValues.containsKey(id)) {
                throw new ServeOptionException(o.where() + ": id " + id + " is used by another --object");
            }
            IoThreadSpec t = new IoThreadSpec(id, pollMax, grow, shrink, batch, cpus);
            threads.put(id, t);
            threadList.add(t);
        }

        List<ExportSpec> exportList = new ArrayList<>();
        List<ServeConfig.NbdExportSpec> nbdList = new ArrayList<>();
        Set<String> nbdNames = new HashSet<>();
        io.vblk.drivers.nbd.NbdAddress nbdAddr = null;
        if (nbdServer != null) {
            KeyValueOptions o = KeyValueOptions.parse("--nbd-server", nbdServer, null);
            nbdAddr = nbdAddress(o, "addr");
            o.finish();
        }
        Set<String> exportIds = new HashSet<>();
        Set<String> addresses = new HashSet<>();
        for (String text : exports) {
            KeyValueOptions o = KeyValueOptions.parse("--export", text, null);
            String type = o.require("type", "vhost-user-blk or nbd");
            if (type.equals("nbd")) {
                String id = o.require("id", "a name for the export");
                checkId(o, "id", id);
                if (!exportIds.add(id)) {
                    throw new ServeOptionException(o.where() + ": id " + id + " is used by another --export");
                }
                String nodeName = o.require("node-name", "the node-name of a --blockdev");
                String resolved = rawAliases.getOrDefault(nodeName, nodeName);
                Blockdev node = nodes.get(resolved);
                if (node == null) {
                    throw new ServeOptionException(o.where() + ": node-name=" + nodeName
                            + " names no --blockdev; accepts one of " + String.join(", ", allNames(nodes, rawAliases)));
                }
                String name = o.take("name");
                name = name == null ? nodeName : name;
                if (!nbdNames.add(name)) {
                    throw new ServeOptionException(o.where() + ": NBD export name '" + name + "' is used by another --export");
                }
                boolean writable = o.takeBool("writable", false);
                if (writable && node.readOnly()) {
                    throw new ServeOptionException(o.where() + ": writable=on but node " + nodeName
                            + " is read-only; accepts writable=off, or drop read-only=on from the --blockdev");
                }
                String iothread = o.take("iothread");
                if (iothread != null && !threads.containsKey(iothread)) {
                    throw new ServeOptionException(o.where() + ": iothread " + iothread + " is not defined; accepts the id"
                            + " of an --object iothread,id=...");
                }
                o.take("fixed-iothread");
                o.take("description");
                o.finish();
                if (nbdAddr == null) {
                    throw new ServeOptionException(o.where() + ": an NBD export needs --nbd-server addr.type=unix,addr.path=P"
                            + " (or addr.type=inet,addr.host=H,addr.port=N)");
                }
                nbdList.add(new ServeConfig.NbdExportSpec(id, resolved, name, writable, iothread));
                continue;
            }
            if (!type.equals("vhost-user-blk")) {
                throw new ServeOptionException(o.where() + ": type=" + type + " is not supported; accepts vhost-user-blk or nbd");
            }
            String id = o.require("id", "a name for the export");
            checkId(o, "id", id);
            if (!exportIds.add(id)) {
                throw new ServeOptionException(o.where() + ": id " + id + " is used by another --export");
            }
            String nodeName = o.require("node-name", "the node-name of a --blockdev");
            String resolved = rawAliases.getOrDefault(nodeName, nodeName);
            Blockdev node = nodes.get(resolved);
            if (node == null) {
                throw new ServeOptionException(o.where() + ": node-name=" + nodeName
                        + " names no --blockdev; accepts one of " + String.join(", ", allNames(nodes, rawAliases)));
            }
            String addrType = o.require("addr.type", "unix or fd");
            Address address = switch (addrType) {
                case "unix" -> new UnixPath(o.require("addr.path", "the socket path to listen on"));
                case "fd" -> {
                    String s = o.require("addr.str", "the number of an inherited listening socket");
                    try {
                        int fd = Integer.parseInt(s);
                        if (fd < 0) {
                            throw new NumberFormatException();
                        }
                        yield new InheritedFd(fd);
                    } catch (NumberFormatException e) {
                        throw new ServeOptionException(o.where() + ": addr.str=" + s
                                + " is not a file descriptor number; accepts a non-negative integer");
                    }
                }
                default -> throw new ServeOptionException(o.where() + ": addr.type=" + addrType
                        + " is not supported; accepts unix or fd");
            };
            if (!addresses.add(address.describe())) {
                throw new ServeOptionException(o.where() + ": address " + address.describe() + " is used by another --export");
            }
            boolean writable = o.takeBool("writable", false);
            if (writable && node.readOnly()) {
                throw new ServeOptionException(o.where() + ": writable=on but node " + nodeName
                        + " is read-only; accepts writable=off, or drop read-only=on from the --blockdev");
            }
            int queues = (int) o.takeLong("num-queues", 1, 1, MAX_QUEUES);
            int lbs = (int) o.takeLong("logical-block-size", MIN_BLOCK, MIN_BLOCK, MAX_BLOCK);
            if (Integer.bitCount(lbs) != 1) {
                throw new ServeOptionException(o.where() + ": logical-block-size=" + lbs
                        + " is not a power of two; accepts 512, 1024, 2048, ... " + MAX_BLOCK);
            }
            String single = o.take("iothread");
            List<String> list = o.takeList("iothread");
            if (single != null && !list.isEmpty()) {
                throw new ServeOptionException(o.where() + ": give either iothread=I or the list iothread.0=I0,iothread.1=I1,..., not both");
            }
            List<String> ios = single != null ? List.of(single) : List.copyOf(list);
            for (String t : ios) {
                if (!threads.containsKey(t)) {
                    throw new ServeOptionException(o.where() + ": iothread " + t + " is not defined; accepts the id of an"
                            + " --object iothread,id=..." + (threads.isEmpty() ? " (none is defined)"
                            : " (defined: " + String.join(", ", threads.keySet()) + ")"));
                }
            }
            if (node instanceof ServeConfig.Qcow2Node && ios.size() > 1) {
                throw new ServeOptionException(o.where() + ": node " + nodeName + " is qcow2, which vblk serves from one"
                        + " IoThread; accepts iothread=I (one IoThread for every queue)");
            }
            o.take("fixed-iothread"); // QEMU: whether the export may move between IoThreads; vblk never moves one.
            ErrorPolicy werror = policy(o, "werror", ErrorPolicy.DEFAULT_WRITE);
            ErrorPolicy rerror = policy(o, "rerror", ErrorPolicy.DEFAULT_READ);
            int submitBatch = (int) o.takeLong("submit-batch", BlkDeviceConfig.DEFAULT_SUBMIT_BATCH, 0, SplitQueue.MAX_SIZE);
            o.finish();
            exportList.add(new ExportSpec(id, resolved, address, writable, queues, lbs, ios, werror, rerror, submitBatch));
        }
        if (exportList.isEmpty() && nbdList.isEmpty() && nbdAddr == null && !monitor) {
            throw new ServeOptionException("no --export given; accepts --export type=vhost-user-blk,id=E,node-name=N,"
                    + "addr.type=unix,addr.path=PATH (or the short form: vblk serve IMAGE --socket PATH)");
        }
        return new ServeConfig(List.copyOf(nodeList), List.copyOf(threadList), List.copyOf(exportList), pidfile, nbdAddr,
                List.copyOf(nbdList), java.util.Collections.unmodifiableMap(secretValues));
    }

    /** {@code PREFIX.type=unix,PREFIX.path=P} or {@code PREFIX.type=inet,PREFIX.host=H,PREFIX.port=N} (QEMU's SocketAddress). */
    static io.vblk.drivers.nbd.NbdAddress nbdAddress(KeyValueOptions o, String prefix) throws ServeOptionException {
        String type = o.require(prefix + ".type", "unix or inet");
        switch (type) {
            case "unix" -> {
                return new io.vblk.drivers.nbd.NbdAddress.Unix(o.require(prefix + ".path", "the socket path"));
            }
            case "inet" -> {
                String host = o.require(prefix + ".host", "a host name or address");
                long port = o.takeLong(prefix + ".port", io.vblk.drivers.nbd.NbdAddress.DEFAULT_PORT, 1, 65535);
                return new io.vblk.drivers.nbd.NbdAddress.Inet(host, (int) port);
            }
            default -> throw new ServeOptionException(o.where() + ": " + prefix + ".type=" + type
                    + " is not supported; accepts unix or inet");
        }
    }

    /** {@code driver=qcow2,file=NODE[,backing=NODE|null][,read-only=on|off]}. */
    private static Blockdev qcow2(KeyValueOptions o, String nodeName, Map<String, Blockdev> nodes,
                                  Map<String, String> rawAliases) throws ServeOptionException {
        String file = o.require("file", "the node-name of the node holding the image (an earlier --blockdev driver=file)");
        Blockdev child = nodes.get(rawAliases.getOrDefault(file, file));
        if (child == null) {
            throw new ServeOptionException(o.where() + ": file=" + file + " names no earlier --blockdev; accepts the"
                    + " node-name of an earlier node, e.g. --blockdev driver=file,node-name=f,filename=IMG first");
        }
        String inlineDriver = o.take("backing.driver");
        if (inlineDriver != null) {
            if (!inlineDriver.equals("nbd")) {
                throw new ServeOptionException(o.where() + ": backing.driver=" + inlineDriver + " is not supported inline;"
                        + " accepts backing.driver=nbd, or backing=NODE naming an earlier --blockdev");
            }
            if (o.take("backing") != null) {
                throw new ServeOptionException(o.where() + ": give either backing=NODE or backing.driver=nbd, not both");
            }
            io.vblk.drivers.nbd.NbdAddress server = nbdAddress(o, "backing.server");
            String export = o.take("backing.export");
            int delay = (int) o.takeLong("backing.reconnect-delay", 0, 0, 3600);
            boolean ro = o.takeBool("read-only", false) || child.readOnly();
            o.finish();
            return new ServeConfig.Qcow2Node(nodeName, child.nodeName(), null, false, ro,
                    new ServeConfig.NbdNode(nodeName + "-backing", server, export == null ? "" : export, delay));
        }
        String backing = o.take("backing");
        boolean none = "null".equals(backing);
        if (backing != null && !none && nodes.get(rawAliases.getOrDefault(backing, backing)) == null) {
            throw new ServeOptionException(o.where() + ": backing=" + backing + " names no earlier --blockdev; accepts"
                    + " the node-name of an earlier node, or null (no backing image)");
        }
        boolean ro = o.takeBool("read-only", false) || child.readOnly();
        o.finish();
        return new ServeConfig.Qcow2Node(nodeName, child.nodeName(), none || backing == null ? null
                : rawAliases.getOrDefault(backing, backing), none, ro);
    }

    private static ErrorPolicy policy(KeyValueOptions o, String key, ErrorPolicy dflt) throws ServeOptionException {
        String v = o.take(key);
        try {
            return v == null ? dflt : ErrorPolicy.parse(key, v);
        } catch (IllegalArgumentException e) {
            throw new ServeOptionException(o.where() + ": " + e.getMessage());
        }
    }

    private static List<String> allNames(Map<String, Blockdev> nodes, Map<String, String> aliases) {
        List<String> l = new ArrayList<>(nodes.keySet());
        l.addAll(aliases.keySet());
        l.sort(null);
        return l.isEmpty() ? List.of("(none is defined)") : l;
    }

    /** QEMU ids: a letter first, then letters, digits, '-', '.', '_' (id_wellformed). */
    private static void checkId(KeyValueOptions o, String key, String id) throws ServeOptionException {
        if (!id.matches("[A-Za-z][A-Za-z0-9._-]*")) {
            throw new ServeOptionException(o.where() + ": " + key + "=" + id
                    + " is not a valid name; accepts a letter followed by letters, digits, '-', '.' or '_'");
        }
    }
}
