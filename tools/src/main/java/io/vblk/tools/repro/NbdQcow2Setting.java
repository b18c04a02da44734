package io.vblk.tools.repro;

import com.fasterxml.jackson.databind.JsonNode;
import io.vblk.aio.AioContext;
import io.vblk.aio.Guard;
import io.vblk.drivers.qcow2.Qcow2Create;
import io.vblk.guest.GuestBlkDriver;
import io.vblk.guest.Workload;
import io.vblk.guest.WorkloadResult;
import io.vblk.guest.WorkloadRun;
import io.vblk.guest.vhost.VhostUserTransport;
import io.vblk.tools.qmp.MonitorSpec;
import io.vblk.tools.qmp.QmpClient;
import io.vblk.tools.qmp.QmpServer;
import io.vblk.tools.serve.ServeConfig;
import io.vblk.tools.serve.ServeDaemon;
import io.vblk.tools.serve.ServeOptionException;
import io.vblk.tools.serve.ServeOptionParser;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.stream.Stream;

/**
 * Home thread: the caller's (no context's home thread); owns the daemon it starts.
 *
 * <p>Seed 004 in its real setting ({@code vblk repro nested-wait-deadlock --mode nbd-qcow2}): one
 * {@link ServeDaemon} with {@code --nbd-server} exporting a raw base node, and a qcow2 node whose
 * backing is {@code driver=nbd} pointing at that same daemon's export — given at start-up
 * ({@code --blockdev driver=qcow2,...,backing.driver=nbd,...}) and added at run time by QMP
 * {@code blockdev-add} over the real monitor socket. The qcow2 open runs on the main loop; the
 * NBD client's handshake inside it waits in a nested poll of the main loop
 * ({@code Qcow2Open → NbdClientDriver.open → NbdClientHandshake → AioContext.waitWhile}).
 *
 * <p>Guard on: the NBD server's listener is on the main loop's AioContext, the nested poll accepts,
 * the server's handshake answers, the open completes, and an in-process verifying guest is served
 * over vhost-user from the new node. Guard off (the daemon started with
 * {@link Guard#NO_BLOCKING_WAIT} off, so its listeners are main-loop sources the nested poll never
 * dispatches): the open hangs. The reproducer sees it hang — no answer for {@code hangAfter} while
 * the main loop's stack is in the nested wait under the NBD handshake — and then sees the product's
 * bound end it (the open fails naming the handshake's bound, and the loop counts a nested-wait
 * timeout). Both together are the verdict; anything else is {@code missed} or {@code inconclusive}.
 */
final class NbdQcow2Setting {
    private static final long SIZE = 64L << 20;
    /** How long a QMP command or start-up may take before the run is called stuck beyond the product's bounds. */
    private static final Duration OUTER = Duration.ofSeconds(90);
    private static final List<String> NESTED_WAIT_FRAMES = List.of("io.vblk.aio.NestedWait.run",
            "io.vblk.drivers.nbd.client.NbdClientHandshake", "io.vblk.drivers.qcow2.Qcow2Open");

    private final String hazard;
    private final Path dir;
    private final Path nbdSock;
    private final Path base;

    private NbdQcow2Setting(String hazard, Path dir) {
        this.hazard = hazard;
        this.dir = dir;
        this.nbdSock = dir.resolve("nbd.sock");
        this.base = dir.resolve("base.raw");
    }

    static ReproResult run(String hazard, boolean guardOn, ReproOptions options) throws Exception {
        Path dir = Files.createTempDirectory("vblk-repro-nbd-");
        try {
            NbdQcow2Setting s = new NbdQcow2Setting(hazard, dir);
            try (RandomAccessFile f = new RandomAccessFile(s.base.toFile(), "rw")) {
                f.setLength(SIZE);
            }
            return guardOn ? s.guardOn(options) : s.guardOff(options);
        } finally {
            try (Stream<Path> w = Files.walk(dir)) {
                for (Path p : w.sorted(Comparator.reverseOrder()).toList()) {
                    Files.deleteIfExists(p);
                }
            }
        }
    }

    // ------------------------------------------------------------------ the configuration

    private String inlineNbdBacking() {
        return "backing.driver=nbd,backing.server.type=unix,backing.server.path=" + nbdSock + ",backing.export=base";
    }

    private Path topImage(String name) throws IOException {
        Path p = dir.resolve(name + ".qcow2");
        Qcow2Create.create(p, SIZE);
        return p;
    }

    /** base (raw, exported read-only over NBD as "base"), optionally the start-up qcow2 node top0. */
    private ServeConfig config(boolean withTop0) throws Exception {
        List<String> blockdevs = new ArrayList<>(List.of("driver=file,node-name=base,filename=" + base));
        List<String> exports = new ArrayList<>(List.of("type=nbd,id=nb,node-name=base,name=base"));
        if (withTop0) {
            blockdevs.add("driver=file,node-name=f0,filename=" + topImage("top0"));
            blockdevs.add("driver=qcow2,node-name=top0,file=f0," + inlineNbdBacking());
            exports.add("type=vhost-user-blk,id=e0,node-name=top0,addr.type=unix,addr.path=" + dir.resolve("e0.sock")
                    + ",writable=on");
        }
        return ServeOptionParser.parse(blockdevs, List.of(), exports, null, true,
                "addr.type=unix,addr.path=" + nbdSock);
    }

    /** A started daemon with its QMP monitor. */
    private record Daemon(ServeDaemon d, QmpServer qmp, Path monitor) implements AutoCloseable {
        @Override
        public void close() {
            qmp.close();
            d.shutdown(Duration.ofSeconds(30));
        }
    }

    private Daemon start(ServeConfig cfg, boolean guardOn) throws ServeOptionException {
        ServeDaemon d = ServeDaemon.start(cfg, null, io.vblk.virtio.vhost.socket.VhostUserExport.DEFAULT_SOCKET_MODE,
                guardOn ? Set.of() : Set.of(Guard.NO_BLOCKING_WAIT));
        Path m = dir.resolve("qmp.sock");
        try {
            QmpServer qmp = QmpServer.start(d.graph(), List.of(new MonitorSpec("m", m.toString(), -1)), () -> { });
            d.attachMonitor(qmp);
            return new Daemon(d, qmp, m);
        } catch (RuntimeException e) {
            d.shutdown(Duration.ofSeconds(30));
            throw e;
        }
    }

    private static String blockdevAddFile(String node, Path file) {
        return "{\"execute\": \"blockdev-add\", \"arguments\": {\"driver\": \"file\", \"node-name\": \"" + node
                + "\", \"filename\": \"" + file + "\"}}";
    }

    private String blockdevAddTop(String node, String fileNode) {
        return "{\"execute\": \"blockdev-add\", \"arguments\": {\"driver\": \"qcow2\", \"node-name\": \"" + node
                + "\", \"file\": \"" + fileNode + "\", \"backing\": {\"driver\": \"nbd\", \"server\": {\"type\": \"unix\","
                + " \"path\": \"" + nbdSock + "\"}, \"export\": \"base\"}}}";
    }

    // ------------------------------------------------------------------ guard on

    private ReproResult guardOn(ReproOptions options) throws Exception {
        long deadline = System.nanoTime() + options.timeLimit().toNanos();
        int opened = 0;
        long served = 0;
        Daemon started;
        try {
            started = start(config(true), true); // top0 opened at start-up, inside the nested wait
        } catch (ServeOptionException e) {
            return (e.getMessage().contains("no answer within")
                    ? ReproResult.of(hazard, true, true, 0, "the start-up open hung with the listener on the AioContext: "
                    + e.getMessage()) : ReproResult.inconclusive(hazard, true, 0, "start-up: " + e.getMessage()))
                    .with("mode", "nbd-qcow2");
        }
        try (Daemon v = started) {
            opened++;
            String bad = serveGuest(dir.resolve("e0.sock"), options.seed());
            if (bad != null) {
                return ReproResult.inconclusive(hazard, true, opened, "start-up node top0: " + bad);
            }
            served++;
            try (QmpClient q = QmpClient.connect(v.monitor()).negotiate()) {
                int runtime = Math.min(options.iterations(), 20);
                for (int i = 1; i <= runtime && System.nanoTime() - deadline < 0; i++) {
                    JsonNode r = q.raw(blockdevAddFile("f" + i, topImage("top" + i)));
                    if (!r.has("return")) {
                        return ReproResult.inconclusive(hazard, true, opened, "blockdev-add file: " + r);
                    }
                    CompletableFuture<JsonNode> add = call(q, blockdevAddTop("top" + i, "f" + i));
                    JsonNode reply = add.get(OUTER.toSeconds(), TimeUnit.SECONDS);
                    if (!reply.has("return")) {
                        // Only the open's nested wait running out is the hazard; another failure is not.
                        boolean hung = reply.path("error").path("desc").asText().contains("no answer within");
                        return (hung ? ReproResult.of(hazard, true, true, opened, "blockdev-add of top" + i
                                + " hung with the listener on the AioContext: " + reply)
                                : ReproResult.inconclusive(hazard, true, opened, "blockdev-add of top" + i + ": " + reply))
                                .with("mode", "nbd-qcow2");
                    }
                    opened++;
                    Path sock = dir.resolve("e" + i + ".sock");
                    r = q.raw("{\"execute\": \"block-export-add\", \"arguments\": {\"type\": \"vhost-user-blk\", \"id\": \"e"
                            + i + "\", \"node-name\": \"top" + i + "\", \"addr\": {\"type\": \"unix\", \"path\": \""
                            + sock + "\"}, \"writable\": true}}");
                    if (!r.has("return")) {
                        return ReproResult.inconclusive(hazard, true, opened, "block-export-add: " + r);
                    }
                    bad = serveGuest(sock, options.seed() + i);
                    if (bad != null) {
                        return ReproResult.inconclusive(hazard, true, opened, "node top" + i + ": " + bad);
                    }
                    served++;
                }
            }
            AioContext main = v.d().mainLoop();
            long accepted = AioContext.await(main.callOn(() -> v.d().nbd().server().connectionsAccepted()),
                    Duration.ofSeconds(30));
            long waits = AioContext.await(main.callOn(main::nestedWaits), Duration.ofSeconds(30));
            return ReproResult.of(hazard, true, false, opened, "every qcow2 open over this daemon's own NBD export"
                            + " completed (start-up and blockdev-add) and served a verifying guest")
                    .with("mode", "nbd-qcow2").with("opened", opened).with("guests_served", served)
                    .with("nbd_connections_accepted", accepted).with("nested_waits", waits)
                    .with("listener", "aio-context");
        }
    }

    /** A verifying random read/write workload over vhost-user; null when it ran clean. */
    private static String serveGuest(Path sock, long seed) throws InterruptedException {
        Duration t = Duration.ofSeconds(60);
        try (VhostUserTransport tr = VhostUserTransport.connect(sock.toString(), t);
             GuestBlkDriver g = GuestBlkDriver.attach(tr, GuestBlkDriver.Options.defaults())) {
            WorkloadResult r = WorkloadRun.start(g, Workload.of(Workload.Pattern.RANDRW).withQueueDepth(8)
                    .withRequests(400).withVerify(true).withSeed(seed)).await(t);
            if (r.error() != null || r.total().ioErrors != 0 || r.total().completed < 400) {
                return "the guest's workload failed: " + (r.error() != null ? r.error() : r.total().ioErrors + " I/O errors");
            }
            return null;
        } catch (RuntimeException e) {
            return "the guest failed: " + e;
        }
    }

    // ------------------------------------------------------------------ guard off

    private ReproResult guardOff(ReproOptions options) throws Exception {
        Duration hang = options.hangAfter();
        // 1. At start-up: the qcow2 node's open on the main loop never gets its NBD greeting.
        CompletableFuture<Daemon> starting = new CompletableFuture<>();
        ServeConfig withTop = config(true);
        Thread.ofPlatform().daemon().name("repro-start").start(() -> {
            try {
                starting.complete(start(withTop, false));
            } catch (Throwable e) {
                starting.completeExceptionally(e);
            }
        });
        Watch startWatch = watch(starting, hang);
        String startError = null;
        if (starting.isDone() && !starting.isCompletedExceptionally()) {
            starting.join().close();
        } else if (starting.isCompletedExceptionally()) {
            startError = String.valueOf(starting.handle((x, e) -> e.getCause() != null ? e.getCause() : e).join());
        }
        if (!startWatch.finished) {
            return ReproResult.inconclusive(hazard, false, 1, "the start-up open did not end within " + OUTER.toSeconds()
                    + " s: the product's own bound on the open did not end it").with("mode", "nbd-qcow2");
        }
        // 2. At run time: blockdev-add of the same node into a daemon that serves the export.
        Watch addWatch;
        JsonNode reply;
        long timeouts;
        try (Daemon v = start(config(false), false);
             QmpClient q = QmpClient.connect(v.monitor()).negotiate()) {
            JsonNode r = q.raw(blockdevAddFile("f1", topImage("top1")));
            if (!r.has("return")) {
                return ReproResult.inconclusive(hazard, false, 1, "blockdev-add file: " + r);
            }
            CompletableFuture<JsonNode> add = call(q, blockdevAddTop("top1", "f1"));
            addWatch = watch(add, hang);
            if (!add.isDone()) {
                return ReproResult.inconclusive(hazard, false, 2, "blockdev-add did not return within "
                        + OUTER.toSeconds() + " s: the product's own bound on the open did not end it");
            }
            reply = add.join();
            AioContext main = v.d().mainLoop();
            timeouts = AioContext.await(main.callOn(main::nestedWaitTimeouts), Duration.ofSeconds(30));
        }
        boolean startHung = startWatch.stuckInNestedWait && startError != null && startError.contains("no answer within");
        boolean addHung = addWatch.stuckInNestedWait && reply.has("error")
                && reply.get("error").path("desc").asText().contains("no answer within") && timeouts > 0;
        String detail = "start-up: " + startWatch.describe(hang) + ", then " + (startError == null ? "opened" : startError)
                + "; blockdev-add: " + addWatch.describe(hang) + ", then " + reply;
        if (startError == null || reply.has("return")) { // an open completed: the listener ran after all
            return ReproResult.of(hazard, false, false, 2, detail).with("mode", "nbd-qcow2");
        }
        ReproResult res = startHung && addHung
                ? ReproResult.of(hazard, false, true, 2, "deadlock: the qcow2 open waited in a nested poll of the main"
                        + " loop for the NBD greeting of this daemon's own server, whose listener (a main-loop source)"
                        + " that poll never dispatches; " + detail)
                : ReproResult.inconclusive(hazard, false, 2, detail);
        return res.with("mode", "nbd-qcow2").with("nested_wait_timeouts", timeouts).with("listener", "main-loop-source")
                .with("stack", startWatch.stack);
    }

    /** What the watcher saw while an open was pending. */
    private static final class Watch {
        boolean finished;
        boolean stuckInNestedWait;
        long pendingMillis;
        String stack = "-";

        String describe(Duration hang) {
            return stuckInNestedWait ? "no answer for " + pendingMillis + " ms (>= " + hang.toMillis()
                    + " ms) with the main loop in NestedWait.run under NbdClientHandshake and Qcow2Open"
                    : "no hang seen (" + pendingMillis + " ms)";
        }
    }

    /**
     * Waits for {@code f} (at most {@link #OUTER}), sampling the main loop's stack: the open counts as
     * hung once it has been pending for {@code hang} with the main loop inside the nested wait of the
     * NBD handshake of a qcow2 open.
     */
    private static Watch watch(CompletableFuture<?> f, Duration hang) throws InterruptedException {
        Watch w = new Watch();
        long t0 = System.nanoTime();
        long end = t0 + OUTER.toNanos();
        while (!f.isDone() && System.nanoTime() - end < 0) {
            try {
                f.get(100, TimeUnit.MILLISECONDS);
            } catch (TimeoutException e) {
                // still pending: look at the main loop
            } catch (java.util.concurrent.ExecutionException e) {
                break;
            }
            long pending = (System.nanoTime() - t0) / 1_000_000;
            if (!f.isDone() && pending >= hang.toMillis() && !w.stuckInNestedWait) {
                String s = mainLoopStackInNestedWait();
                if (s != null) {
                    w.stuckInNestedWait = true;
                    w.pendingMillis = pending;
                    w.stack = s;
                }
            }
        }
        w.finished = f.isDone();
        return w;
    }

    /** The "main-loop" thread's frames down to the qcow2 open, if it is in the NBD handshake's nested wait. */
    private static String mainLoopStackInNestedWait() {
        for (Map.Entry<Thread, StackTraceElement[]> e : Thread.getAllStackTraces().entrySet()) {
            if (!e.getKey().getName().equals("main-loop")) {
                continue;
            }
            List<String> frames = Stream.of(e.getValue()).map(f -> f.getClassName() + "." + f.getMethodName()).toList();
            if (NESTED_WAIT_FRAMES.stream().allMatch(want -> frames.stream().anyMatch(f -> f.startsWith(want)))) {
                List<String> shown = new ArrayList<>();
                for (String f : frames) {
                    String simple = f.substring(f.lastIndexOf('.', f.lastIndexOf('.') - 1) + 1);
                    if (f.startsWith("io.vblk.") && !f.contains("$$Lambda") && (shown.isEmpty() || !shown.getLast().equals(simple))) {
                        shown.add(simple);
                    }
                    if (f.startsWith("io.vblk.drivers.qcow2.Qcow2Open")) {
                        break;
                    }
                }
                return String.join("<", shown);
            }
        }
        return null;
    }

    /** Sends a QMP command from a helper thread, so that the caller can watch while it is pending. */
    private static CompletableFuture<JsonNode> call(QmpClient q, String line) {
        CompletableFuture<JsonNode> f = new CompletableFuture<>();
        Thread.ofPlatform().daemon().name("repro-qmp").start(() -> {
            try {
                f.complete(q.raw(line));
            } catch (Throwable e) {
                f.completeExceptionally(e);
            }
        });
        return f;
    }
}
