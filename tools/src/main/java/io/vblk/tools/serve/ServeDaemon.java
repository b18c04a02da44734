package io.vblk.tools.serve;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioOptions;
import io.vblk.aio.IoThread;
import io.vblk.aio.sys.Errno;
import io.vblk.aio.sys.FileIo;
import io.vblk.drivers.BlockDriver;
import io.vblk.drivers.file.FileDriver;
import io.vblk.drivers.node.BlockNode;
import io.vblk.tools.metrics.FootprintSampler;
import io.vblk.tools.metrics.MetricsOptions;
import io.vblk.tools.metrics.MetricsServer;
import io.vblk.tools.metrics.VblkMetrics;
import io.vblk.tools.serve.ServeConfig.BlkdebugNode;
import io.vblk.tools.qmp.DaemonGraph;
import io.vblk.tools.qmp.QmpEvents;
import io.vblk.tools.qmp.QmpServer;
import io.vblk.virtio.blk.BlockErrorAction;
import io.vblk.tools.serve.ServeConfig.Blockdev;
import io.vblk.tools.serve.ServeConfig.ExportSpec;
import io.vblk.tools.serve.ServeConfig.NbdExportSpec;
import io.vblk.tools.serve.ServeConfig.NbdNode;
import io.vblk.drivers.nbd.server.NbdService;
import io.vblk.tools.serve.ServeConfig.FileNode;
import io.vblk.tools.serve.ServeConfig.InheritedFd;
import io.vblk.tools.serve.ServeConfig.IoThreadSpec;
import io.vblk.tools.serve.ServeConfig.NullNode;
import io.vblk.tools.serve.ServeConfig.RbdNode;
import io.vblk.tools.serve.ServeConfig.Qcow2Node;
import io.vblk.tools.serve.ServeConfig.UnixPath;
import io.vblk.virtio.blk.BlkDevice;
import io.vblk.virtio.blk.BlkDeviceConfig;
import io.vblk.virtio.device.IoThreadMapping;
import io.vblk.virtio.vhost.socket.VhostUserExport;

import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.function.BiConsumer;

/**
 * Any thread that is no context's home thread (the CLI's main thread, a test).
 *
 * <p>What {@code vblk serve} runs: a main loop (an {@link IoThread} named "main-loop" hosting every
 * export's listener, connection and device control, as QEMU's main loop does), the IoThreads of
 * {@code --object iothread}, one {@link BlockNode} (an opened driver) per {@code --blockdev}, and
 * per export a {@link BlkDevice} attached to its node, with its queues on the export's IoThreads,
 * and a {@link VhostUserExport} on its own socket.
 *
 * <p>Shutdown ({@link #shutdown}): stop accepting new front ends, begin a drained section of
 * every node (its devices stop taking guest requests; the requests in flight finish), close each
 * connection and socket, close
 * the devices and drivers, fsync every writable image (the
 * page cache of a cache.direct=off image holds acknowledged writes a guest never flushed), stop
 * the threads; bounded in time.
 */
public final class ServeDaemon {
    private static final System.Logger LOG = System.getLogger(ServeDaemon.class.getName());
    /** Bound on each start-up step that waits for the main loop. */
    private static final Duration STEP = Duration.ofSeconds(30);
    /** How often the footprint gauges are read from /proc (with --metrics). */
    static final Duration FOOTPRINT_PERIOD = Duration.ofSeconds(10);
    /** vblk's largest ring (SplitQueue.MAX_SIZE); QEMU's vhost-user-blk allows queue-size up to 1024. */
    static final int QUEUE_SIZE = 1024;

    private final ServeConfig config;
    private final IoThread mainLoop;
    private final Map<String, IoThread> iothreads = new LinkedHashMap<>();
    private final Map<String, BlockDriver> drivers = new LinkedHashMap<>();
    /** The node over each driver, by node-name: filled at start-up, then used on the main loop (the nodes' home). */
    private final Map<String, BlockNode> nodes = new LinkedHashMap<>();
    private final List<BlkDevice> devices = new ArrayList<>();
    private final List<VhostUserExport> exports = new ArrayList<>();
    /** Every device's BLOCK_IO_ERROR: logged, and handed to the monitor once one listens. */
    private final DaemonEvents events = new DaemonEvents();
    /** The NBD server and its exports ({@code --nbd-server}, {@code --export type=nbd}). */
    private final NbdService nbd;
    private final MetricsOptions metricsOptions;
    private VblkMetrics metrics;
    private MetricsServer metricsServer;
    private FootprintSampler footprint;
    /** The images shutdown fsynced (every writable file node, however it was added). */
    private volatile List<String> flushed = List.of();
    /** Permission bits of the UNIX socket files the exports create. */
    private final int socketMode;
    /** Start-up finished: the exports served, so shutdown reports what each one did. */
    private boolean serving;
    private boolean shutDown;
    /** Guards switched off on every loop (reproducers and tests only). */
    private java.util.Set<io.vblk.aio.Guard> guardsOff = java.util.Set.of();
    /** Start-up only (the starting thread): the NBD server started, the NBD exports made. */
    private boolean nbdServerStarted;
    private final java.util.Set<String> nbdExported = new java.util.HashSet<>();
    private final List<String> shutdownProblems = new ArrayList<>();

    private ServeDaemon(ServeConfig config, MetricsOptions metricsOptions, int socketMode) {
        this.config = config;
        this.metricsOptions = metricsOptions;
        this.socketMode = socketMode;
        this.mainLoop = IoThread.start("main-loop", AioOptions.DEFAULT);
        this.nbd = new NbdService(mainLoop.ctx());
    }

    /**
     * Starts everything {@code config} names. A host error (an image that does not open, a socket
     * path that cannot be bound) stops start-up with a {@link ServeOptionException} naming the
     * option; whatever had started is shut down again.
     */
    public static ServeDaemon start(ServeConfig config) throws ServeOptionException {
        return start(config, null);
    }

    /**
     * Starts everything, and with {@code metrics} non-null the Prometheus endpoint: JVM, every
     * loop (main loop and IoThreads), each export's device and vhost-user counters, the Linux AIO
     * engines the drivers opened.
     */
    public static ServeDaemon start(ServeConfig config, MetricsOptions metrics) throws ServeOptionException {
        return start(config, metrics, VhostUserExport.DEFAULT_SOCKET_MODE);
    }

    /** Starts everything, the UNIX socket files created with permission bits {@code socketMode}. */
    public static ServeDaemon start(ServeConfig config, MetricsOptions metrics, int socketMode) throws ServeOptionException {
        return start(config, metrics, socketMode, java.util.Set.of());
    }

    /**
     * Starts everything with the hazard guards {@code guardsOff} switched off on the main loop and
     * every IoThread before anything is registered there; for reproducers and tests only (as
     * {@link AioContext#setGuard}). With {@link io.vblk.aio.Guard#NO_BLOCKING_WAIT} off the NBD
     * server's listener (and every other) is a main-loop source a nested wait never runs: seed 004.
     */
    public static ServeDaemon start(ServeConfig config, MetricsOptions metrics, int socketMode,
                                    java.util.Set<io.vblk.aio.Guard> guardsOff) throws ServeOptionException {
        ServeDaemon d = new ServeDaemon(config, metrics, socketMode);
        d.guardsOff = java.util.Set.copyOf(guardsOff);
        for (io.vblk.aio.Guard g : d.guardsOff) {
            d.mainLoop.ctx().setGuard(g, false);
        }
        try {
            d.startAll();
            d.startMetrics();
            d.serving = true;
            return d;
        } catch (ServeOptionException | RuntimeException e) {
            d.shutdown(STEP);
            throw e;
        }
    }

    private void startAll() throws ServeOptionException {
        for (IoThreadSpec t : config.iothreads()) {
            AioOptions o = new AioOptions(t.pollMaxNs(), t.pollGrow(), t.pollShrink(), t.aioMaxBatch());
            try {
                IoThread started = IoThread.start(t.id(), io.vblk.aio.NanoClock.SYSTEM, o, t.cpuAffinity());
                for (io.vblk.aio.Guard g : guardsOff) {
                    started.ctx().setGuard(g, false);
                }
                iothreads.put(t.id(), started);
            } catch (IllegalArgumentException e) {
                throw new ServeOptionException("--object iothread,id=" + t.id() + ": " + e.getMessage());
            }
        }
        // A qcow2 node with an inline NBD backing opens after the NBD server and the exports of the
        // nodes before it, since its server may be this daemon's own (qemu-storage-daemon takes its
        // options in order: --nbd-server and --export before such a --blockdev).
        for (Blockdev b : config.blockdevs()) {
            if (b instanceof Qcow2Node q && q.backingNbd() != null) {
                startNbd(); // once
            }
            try {
                BlockDriver d = b instanceof Qcow2Node q ? BlockdevOpen.qcow2(q, drivers, mainLoop.ctx())
                        : BlockdevOpen.spec(b).open();
                drivers.put(b.nodeName(), d);
                nodes.put(b.nodeName(), new BlockNode(b.nodeName(), d, mainLoop.ctx()));
            } catch (RuntimeException e) {
                throw new ServeOptionException("--blockdev node-name=" + b.nodeName() + ": cannot open: " + e.getMessage());
            }
        }
        startNbd();
        startNbdExports();
        AioContext main = mainLoop.ctx();
        for (ExportSpec e : config.exports()) {
            BlkDeviceConfig cfg = new BlkDeviceConfig().numQueues(e.numQueues()).queueSize(QUEUE_SIZE)
                    .logicalBlockSize(e.logicalBlockSize()).readOnly(!e.writable()).serial(serial(e.id()))
                    .werror(e.werror()).rerror(e.rerror()).submitBatch(e.submitBatch()).events(events)
                    .ioThreads(e.iothreads().isEmpty() ? IoThreadMapping.single(main)
                            : IoThreadMapping.roundRobin(e.iothreads().stream().map(id -> iothreads.get(id).ctx()).toList()));
            BlockNode node = nodes.get(e.nodeName());
            String where = "--export id=" + e.id();
            try {
                VhostUserExport x = AioContext.await(main.callOn(() -> {
                    BlkDevice dev = new BlkDevice(e.id(), node, cfg, main);
                    devices.add(dev);
                    return switch (e.address()) {
                        case UnixPath p -> VhostUserExport.listen(e.id(), main, dev, p.path(), socketMode);
                        case InheritedFd f -> VhostUserExport.onListeningFd(e.id(), main, dev, f.fd());
                    };
                }), STEP);
                exports.add(x);
            } catch (CompletionException ce) {
                Throwable c = ce.getCause() != null ? ce.getCause() : ce;
                throw new ServeOptionException(where + ": " + c.getMessage());
            }
            LOG.log(System.Logger.Level.INFO, () -> "export " + e.id() + ": vhost-user-blk on " + e.address().describe()
                    + ", node " + e.nodeName() + ", " + e.numQueues() + " queue(s)"
                    + (e.iothreads().isEmpty() ? " on the main loop" : " on " + String.join(",", e.iothreads()))
                    + (e.writable() ? "" : ", read-only"));
        }
    }

    /** The NBD server and its exports, after the nodes: each export's clients on its IoThread (or the main loop). */
    private void startNbd() throws ServeOptionException {
        if (config.nbdServer() == null || nbdServerStarted) {
            return;
        }
        nbdServerStarted = true;
        AioContext main = mainLoop.ctx();
        try {
            AioContext.await(main.callOn(() -> {
                nbd.start(config.nbdServer(), 0);
                return null;
            }), STEP);
        } catch (CompletionException ce) {
            throw new ServeOptionException("--nbd-server: " + (ce.getCause() != null ? ce.getCause() : ce).getMessage());
        }
        LOG.log(System.Logger.Level.INFO, () -> "nbd-server: listening on " + config.nbdServer().describe());
        startNbdExports();
    }

    /** The NBD exports whose nodes are open and that are not exported yet. */
    private void startNbdExports() throws ServeOptionException {
        if (config.nbdServer() == null) {
            return;
        }
        AioContext main = mainLoop.ctx();
        for (NbdExportSpec x : config.nbdExports()) {
            if (nodes.get(x.nodeName()) == null || !nbdExported.add(x.id())) {
                continue;
            }
            AioContext io = x.iothread() == null ? main : iothreads.get(x.iothread()).ctx();
            try {
                AioContext.await(main.callOn(() -> nbd.addExport(x.id(), x.name(), nodes.get(x.nodeName()), io,
                        x.writable())), STEP);
            } catch (CompletionException ce) {
                throw new ServeOptionException("--export id=" + x.id() + ": " + (ce.getCause() != null ? ce.getCause() : ce)
                        .getMessage());
            }
            LOG.log(System.Logger.Level.INFO, () -> "export " + x.id() + ": nbd name '" + x.name() + "', node " + x.nodeName()
                    + (x.writable() ? "" : ", read-only") + " on " + io.name());
        }
    }

    /** The NBD server and exports (QMP's nbd-server-start and block-export-add type=nbd change them). */
    public NbdService nbd() {
        return nbd;
    }

    private void startMetrics() throws ServeOptionException {
        if (metricsOptions == null) {
            return;
        }
        metrics = new VblkMetrics();
        metrics.bindJvm();
        metrics.bindLoop(mainLoop.ctx());
        for (IoThread t : iothreads.values()) {
            metrics.bindLoop(t.ctx());
        }
        for (int i = 0; i < exports.size(); i++) {
            metrics.bindDevice(exports.get(i).id(), devices.get(i));
            metrics.bindVhostExport(exports.get(i));
        }
        footprint = FootprintSampler.start(metrics, mainLoop.ctx(), FOOTPRINT_PERIOD);
        try {
            metricsServer = MetricsServer.start(metricsOptions, metrics);
        } catch (IllegalArgumentException | IllegalStateException e) {
            throw new ServeOptionException(e.getMessage());
        }
    }

    /** The metrics endpoint's URL, or null without one. */
    public String metricsUrl() {
        return metricsServer == null ? null : metricsServer.url();
    }

    /**
     * Resizes block node {@code nodeName} to {@code bytes} online (QMP {@code block_resize}; the
     * monitor calls this): the node is drained, its image truncated off the loop, every device on it
     * takes the new capacity and each connected vhost-user front-end hears
     * VHOST_USER_BACKEND_CONFIG_CHANGE_MSG. Any thread, never blocks: {@code done} runs on the main
     * loop with the new size, or with the error (an {@link IllegalArgumentException} carrying QEMU's
     * message for an unknown node, a negative size, a read-only node).
     */
    public void resize(String nodeName, long bytes, BiConsumer<Long, Throwable> done) {
        mainLoop.ctx().runOn(() -> {
            BlockNode n = nodes.get(nodeName);
            if (n == null) {
                done.accept(null, new IllegalArgumentException("Cannot find device='' nor node-name='" + nodeName + "'"));
                return;
            }
            n.resize(bytes).whenComplete((size, e) -> done.accept(size, e instanceof CompletionException c ? c.getCause() : e));
        });
    }

    /** GET_ID: the export id, cut to the 20 bytes virtio-blk allows. */
    private static String serial(String id) {
        return id.length() <= 20 ? id : id.substring(0, 20);
    }

    /**
     * Resumes every device an I/O error stopped (werror / rerror = stop): the hook for QMP
     * {@code cont} and SIGUSR2. Returns how many were stopped. Any thread.
     */
    public int resumeStoppedDevices() {
        int n = 0;
        for (BlkDevice d : List.copyOf(devices)) {
            if (d.ioErrorStopped()) {
                n++;
                d.resume();
            }
        }
        int stopped = n;
        LOG.log(System.Logger.Level.INFO, () -> "vblk serve: resume requested: " + stopped + " device(s) stopped by"
                + " an I/O error resume");
        return n;
    }

    /** The ids of the exports whose device an I/O error stopped. Any thread. */
    public List<String> stoppedDevices() {
        return List.copyOf(devices).stream().filter(BlkDevice::ioErrorStopped).map(BlkDevice::name).toList();
    }

    public AioContext mainLoop() {
        return mainLoop.ctx();
    }

    public List<VhostUserExport> exports() {
        return List.copyOf(exports);
    }

    public ServeConfig config() {
        return config;
    }

    /** The live graph the QMP monitor changes at run time; its collections are this daemon's own. */
    /**
     * Connects a QMP monitor to the daemon: {@code cont} resumes every device an error policy
     * stopped, {@code block_resize} resizes the node (and tells the front ends), and each device's
     * BLOCK_IO_ERROR goes to the monitor's clients. Any thread.
     */
    public void attachMonitor(QmpServer qmp) {
        qmp.addResumeHook(this::resumeStoppedDevices);
        qmp.setResizer((node, size) -> node.resize(size).thenApply(newSize -> null));
        events.listen(e -> {
            qmp.event("BLOCK_IO_ERROR", QmpEvents.blockIoError(e));
            if (e.action() == BlockErrorAction.STOP) {
                qmp.ioErrorStop();
            }
        });
    }

    /** The daemon's block events (error policies), for a monitor to listen to. Any thread. */
    public DaemonEvents events() {
        return events;
    }

    public DaemonGraph graph() {
        Map<String, DaemonGraph.NodeInfo> info = new LinkedHashMap<>();
        for (Blockdev b : config.blockdevs()) {
            info.put(b.nodeName(), switch (b) {
                case FileNode f -> new DaemonGraph.NodeInfo("file", f.filename(), f.cacheDirect(), f.readOnly());
                case NullNode n -> new DaemonGraph.NodeInfo(n.aio() ? "null-aio" : "null-co", "json:{\"driver\": \""
                        + (n.aio() ? "null-aio" : "null-co") + "\", \"size\": " + n.size() + "}", false, n.readOnly());
                case BlkdebugNode d -> new DaemonGraph.NodeInfo("blkdebug", "blkdebug::" + d.image().nodeName(), false,
                        d.readOnly());
                case RbdNode r -> new DaemonGraph.NodeInfo("rbd", "rbd:" + r.describe(), false, r.readOnly());
                case NbdNode n -> new DaemonGraph.NodeInfo("nbd", "nbd+" + n.server().describe() + "/" + n.export(), false,
                        drivers.containsKey(n.nodeName()) && drivers.get(n.nodeName()).readOnly());
                case Qcow2Node q -> new DaemonGraph.NodeInfo("qcow2", config.node(q.file()) instanceof FileNode f
                        ? f.filename() : q.file(), false, q.readOnly());
            });
        }
        Map<String, String> exportNodes = new LinkedHashMap<>();
        Map<String, List<String>> exportThreads = new LinkedHashMap<>();
        for (ExportSpec e : config.exports()) {
            exportNodes.put(e.id(), e.nodeName());
            exportThreads.put(e.id(), e.iothreads());
        }
        io.vblk.tools.qmp.Secrets secrets = new io.vblk.tools.qmp.Secrets();
        config.secrets().forEach(secrets::add);
        return new DaemonGraph(mainLoop, iothreads, drivers, nodes, devices, exports, metrics, info, exportNodes, exportThreads,
                events, nbd, secrets);
    }

    /**
     * Drains every node (bdrv_drain_all_begin: no new guest request, the ones in flight finish),
     * stops accepting, closes the connections, devices and
     * drivers, flushes writable images, stops the threads. Returns false (and logs what was left)
     * when a step overran {@code bound}. Idempotent.
     */
    public synchronized boolean shutdown(Duration bound) {
        if (shutDown) {
            return true;
        }
        shutDown = true;
        long deadline = System.nanoTime() + bound.toNanos();
        boolean clean = true;
        // The daemon's periodic work ends first, at once whatever its period (seed 001's stop).
        if (footprint != null && !footprint.stop(left(deadline))) {
            clean = false;
            problem("vblk serve: shutdown did not finish stopping the footprint sampler within " + bound);
        }
        // No scrape may read a device or engine while it is being torn down.
        if (metricsServer != null) {
            metricsServer.close();
        }
        if (metrics != null) {
            metrics.close();
        }
        AioContext main = mainLoop.ctx();
        List<CompletableFuture<Void>> idle = new ArrayList<>();
        String step = "draining the nodes";
        try {
            // NBD clients first: each finishes its requests in flight, then its connection closes.
            CompletableFuture<Void> nbdStopped = AioContext.await(main.callOn(() -> {
                CompletableFuture<Void> f = new CompletableFuture<>();
                if (nbd.running()) {
                    nbd.stop(() -> f.complete(null));
                } else {
                    f.complete(null);
                }
                return f;
            }), left(deadline));
            AioContext.await(nbdStopped, left(deadline));
            // The sections stay open: the devices are closed inside them (closing detaches them).
            List<CompletableFuture<Void>> quiet = AioContext.await(main.callOn(() -> {
                for (VhostUserExport x : exports) {
                    x.stopAccepting(); // no front end connects while the daemon winds down
                }
                List<CompletableFuture<Void>> l = new ArrayList<>();
                for (BlockNode n : nodes.values()) {
                    l.add(n.drainedBegin());
                }
                return l;
            }), left(deadline));
            AioContext.await(CompletableFuture.allOf(quiet.toArray(new CompletableFuture<?>[0])), left(deadline));
            step = "closing the exports";
            AioContext.await(main.callOn(() -> {
                for (VhostUserExport x : exports) {
                    CompletableFuture<Void> f = new CompletableFuture<>();
                    idle.add(f);
                    x.close(() -> f.complete(null));
                }
                return null;
            }), left(deadline));
            AioContext.await(CompletableFuture.allOf(idle.toArray(new CompletableFuture<?>[0])), left(deadline));
            List<CompletableFuture<Void>> closed = new ArrayList<>();
            step = "closing the devices";
            AioContext.await(main.callOn(() -> {
                for (BlkDevice d : devices) {
                    CompletableFuture<Void> f = new CompletableFuture<>();
                    closed.add(f);
                    d.close(() -> f.complete(null));
                }
                return null;
            }), left(deadline));
            AioContext.await(CompletableFuture.allOf(closed.toArray(new CompletableFuture<?>[0])), left(deadline));
        } catch (CompletionException e) {
            clean = false;
            problem("vblk serve: shutdown did not finish " + step + " within " + bound + ": " + e.getCause());
        }
        if (serving) {
            for (BlkDevice d : devices) {
                System.err.println(summary(d.name(), d));
            }
        }
        // Every writable image, whether from the command line or QMP's blockdev-add: flushed below.
        java.util.Set<String> toFlush = new java.util.LinkedHashSet<>();
        for (Blockdev b : config.blockdevs()) {
            Blockdev img = b instanceof BlkdebugNode d ? d.image() : b; // blkdebug writes through to its image
            if (img instanceof FileNode f && !f.readOnly() && drivers.containsKey(b.nodeName())) {
                toFlush.add(f.filename());
            }
        }
        for (BlockDriver d : drivers.values()) {
            if (d instanceof FileDriver f && !f.readOnly()) {
                toFlush.add(f.path());
            }
        }
        // Newest first: a format node (qcow2) closes before the file node under it.
        for (Map.Entry<String, BlockDriver> e : new ArrayList<>(drivers.entrySet()).reversed()) {
            try {
                e.getValue().close();
            } catch (RuntimeException ex) {
                clean = false;
                problem("vblk serve: closing node " + e.getKey() + ": " + ex.getMessage());
            }
        }
        for (String path : toFlush) {
            clean &= flush(path);
        }
        flushed = List.copyOf(toFlush);
        for (IoThread t : iothreads.values()) {
            clean &= closeThread(t);
        }
        clean &= closeThread(mainLoop);
        return clean;
    }

    /** The image files the last shutdown fsynced, in node order; empty before one. */
    public List<String> flushedImages() {
        return flushed;
    }

    /** Stops a daemon whose start-up failed after {@link #start} (e.g. its pidfile): no summary lines. */
    synchronized boolean abortStart(Duration bound) {
        serving = false;
        return shutdown(bound);
    }

    /**
     * One line of what an export served, summed over its queues, e.g.
     * {@code vblk serve: export e0 served reads=10 writes=5 flushes=2 ... }.
     */
    static String summary(String exportId, BlkDevice dev) {
        long reads = 0, writes = 0, flushes = 0, discards = 0, writeZeroes = 0, ioErrors = 0, unsupported = 0;
        long readBytes = 0, writtenBytes = 0;
        for (int q = 0; q < dev.numQueues(); q++) {
            var s = dev.queueStats(q);
            reads += s.reads();
            writes += s.writes();
            flushes += s.flushes();
            discards += s.discards();
            writeZeroes += s.writeZeroes();
            ioErrors += s.ioErrors();
            unsupported += s.unsupported();
            readBytes += s.readBytes();
            writtenBytes += s.writtenBytes();
        }
        return "vblk serve: export " + exportId + " served reads=" + reads + " writes=" + writes + " flushes=" + flushes
                + " discards=" + discards + " write_zeroes=" + writeZeroes + " read_bytes=" + readBytes
                + " written_bytes=" + writtenBytes + " ioerr=" + ioErrors + " unsupp=" + unsupported;
    }

    /** fsync(2) flushes the file's dirty pages whichever descriptor it is called on. */
    private boolean flush(String path) {
        int fd = FileIo.open(path, FileIo.O_RDONLY | FileIo.O_CLOEXEC, 0);
        if (fd < 0) {
            problem("vblk serve: cannot open " + path + " to flush it: " + Errno.name(-fd));
            return false;
        }
        int r = FileIo.fsync(fd);
        FileIo.close(fd);
        if (r < 0) {
            problem("vblk serve: fsync of " + path + " failed: " + Errno.name(-r));
            return false;
        }
        return true;
    }

    private boolean closeThread(IoThread t) {
        try {
            t.close();
            return true;
        } catch (RuntimeException e) {
            problem("vblk serve: stopping " + t.name() + ": " + e.getMessage());
            return false;
        }
    }

    /** Logs why shutdown was not clean and keeps the line for {@link #shutdownProblems}. */
    private void problem(String line) {
        shutdownProblems.add(line);
        LOG.log(System.Logger.Level.ERROR, line);
    }

    /** What made {@link #shutdown} report an unclean stop, one log line each (empty after a clean one). */
    public synchronized List<String> shutdownProblems() {
        return List.copyOf(shutdownProblems);
    }

    private static Duration left(long deadline) {
        return Duration.ofNanos(Math.max(1, deadline - System.nanoTime()));
    }
}
