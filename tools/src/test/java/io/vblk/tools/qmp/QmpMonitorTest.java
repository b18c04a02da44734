package io.vblk.tools.qmp;

import com.fasterxml.jackson.databind.JsonNode;
import io.vblk.guest.GuestBlkDriver;
import io.vblk.guest.Workload;
import io.vblk.guest.WorkloadResult;
import io.vblk.guest.WorkloadRun;
import io.vblk.guest.vhost.VhostUserTransport;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * Any thread (test code).
 *
 * <p>vblk's QMP monitors over their real sockets: bad input of every kind answered as QEMU answers
 * it (or, for an oversize line, the connection closed) with the daemon and the other monitor
 * unharmed; an export added at run time, used, and removed while another export keeps serving its
 * own load without an error or a stall over 1 s; a node in use refused; stop/cont; and the
 * README's worked example.
 */
class QmpMonitorTest {
    private static final Duration T = Duration.ofSeconds(30);

    @TempDir
    Path dir;
    VblkWithMonitor vblk;
    Path m0;
    Path m1;

    @BeforeEach
    void start() throws Exception {
        m0 = dir.resolve("qmp0.sock");
        m1 = dir.resolve("qmp1.sock");
        vblk = new VblkWithMonitor(List.of("driver=null-aio,node-name=n0,size=64M"), List.of("iothread,id=io0"),
                List.of("type=vhost-user-blk,id=e0,node-name=n0,addr.type=unix,addr.path=" + dir.resolve("e0.sock")
                        + ",writable=on,iothread=io0"), m0, m1);
    }

    @AfterEach
    void stop() {
        vblk.close();
    }

    private static String errorClass(JsonNode r) {
        return r.path("error").path("class").asText("(no error: " + r + ")");
    }

    private static String desc(JsonNode r) {
        return r.path("error").path("desc").asText("(no error: " + r + ")");
    }

    @Test
    void badInputIsAnsweredAndHarmsNeitherTheDaemonNorTheOtherMonitor() throws Exception {
        try (QmpClient a = QmpClient.connect(m0); QmpClient b = QmpClient.connect(m1).negotiate()) {
            assertThat(errorClass(a.raw("{\"execute\": \"query-version\"}"))).isEqualTo("CommandNotFound");
            a.negotiate();
            assertThat(errorClass(a.raw("{\"execute\": \"qmp_capabilities\"}"))).isEqualTo("CommandNotFound");
            assertThat(desc(a.raw("{\"execute\": \"query-version\""))).startsWith("JSON parse error");
            assertThat(desc(a.raw("not json at all"))).startsWith("JSON parse error");
            JsonNode unknown = a.raw("{\"execute\": \"frobnicate\", \"id\": {\"n\": 7}}");
            assertThat(errorClass(unknown)).isEqualTo("CommandNotFound");
            assertThat(unknown.get("id").get("n").asInt()).isEqualTo(7);
            assertThat(desc(a.raw("{\"execute\": \"block_resize\", \"arguments\": {\"node-name\": \"n0\", \"size\": \"2G\"}}")))
                    .isEqualTo("Invalid parameter type for 'size', expected: integer");
            assertThat(desc(a.raw("{\"execute\": \"blockdev-del\"}"))).isEqualTo("Parameter 'node-name' is missing");
            assertThat(desc(a.raw("{\"execute\": \"blockdev-add\", \"arguments\": {\"driver\": \"null-co\", \"node-name\": \"n0\"}}")))
                    .isEqualTo("Duplicate nodes with node-name='n0'");
            assertThat(desc(a.raw("{\"execute\": \"block-export-add\", \"arguments\": {\"type\": \"vhost-user-blk\", \"id\": \"e0\","
                    + " \"node-name\": \"n0\", \"addr\": {\"type\": \"unix\", \"path\": \"" + dir.resolve("x.sock") + "\"}}}")))
                    .isEqualTo("Block export id 'e0' is already in use");
            assertThat(desc(a.raw("{\"execute\": \"object-add\", \"arguments\": {\"qom-type\": \"iothread\", \"id\": \"io0\"}}")))
                    .isEqualTo("attempt to add duplicate property 'io0' to object (type 'container')");

            // A client that leaves in the middle of a command that completes later, off the loop.
            try (QmpClient c = QmpClient.connect(m0).negotiate()) {
                c.send("{\"execute\": \"object-add\", \"arguments\": {\"qom-type\": \"iothread\", \"id\": \"io9\"}}\n"
                        .getBytes(StandardCharsets.UTF_8));
            }
            long deadline = System.nanoTime() + T.toNanos();
            while (!b.execute("query-iothreads", null).get("return").toString().contains("\"io9\"")) {
                assertThat(System.nanoTime()).as("io9 added after its client left").isLessThan(deadline);
            }

            // A line over 1 MiB closes that connection only.
            byte[] big = new byte[QmpConnection.MAX_LINE + 4096];
            Arrays.fill(big, (byte) ' ');
            assertThatThrownBy(() -> {
                a.send(big);
                a.readMessage();
            }).isInstanceOf(IOException.class);

            assertThat(b.execute("query-version", null).get("return").get("package").asText()).startsWith("vblk");
            try (QmpClient again = QmpClient.connect(m0).negotiate()) {
                assertThat(again.execute("query-block-exports", null).get("return").get(0).get("id").asText()).isEqualTo("e0");
            }
        }
    }

    @Test
    void anExportIsAddedUsedAndRemovedWhileAnotherKeepsServing() throws Exception {
        try (QmpClient q = QmpClient.connect(m0).negotiate();
             VhostUserTransport t0 = VhostUserTransport.connect(dir.resolve("e0.sock").toString(), T);
             GuestBlkDriver g0 = GuestBlkDriver.attach(t0, GuestBlkDriver.Options.defaults())) {
            WorkloadRun load = WorkloadRun.start(g0, Workload.of(Workload.Pattern.RANDRW).withQueueDepth(8)
                    .withDuration(Duration.ofSeconds(3).toNanos()).withStallNanos(Duration.ofSeconds(1).toNanos()));

            assertThat(q.raw("{\"execute\": \"blockdev-add\", \"arguments\": {\"driver\": \"null-aio\", \"node-name\": \"n1\","
                    + " \"size\": 16777216}}").has("return")).isTrue();
            String e1 = dir.resolve("e1.sock").toString();
            assertThat(q.raw("{\"execute\": \"block-export-add\", \"arguments\": {\"type\": \"vhost-user-blk\", \"id\": \"e1\","
                    + " \"node-name\": \"n1\", \"addr\": {\"type\": \"unix\", \"path\": \"" + e1 + "\"}, \"writable\": true}}")
                    .has("return")).isTrue();
            try (VhostUserTransport t1 = VhostUserTransport.connect(e1, T);
                 GuestBlkDriver g1 = GuestBlkDriver.attach(t1, GuestBlkDriver.Options.defaults())) {
                WorkloadResult r = WorkloadRun.start(g1, Workload.of(Workload.Pattern.RANDREAD).withRequests(2000)
                        .withQueueDepth(8)).await(T);
                assertThat(r.error()).isNull();
                JsonNode busy = q.raw("{\"execute\": \"block-export-del\", \"arguments\": {\"id\": \"e1\"}}");
                assertThat(desc(busy)).isEqualTo("export 'e1' still in use");
            }
            JsonNode inUse = q.raw("{\"execute\": \"blockdev-del\", \"arguments\": {\"node-name\": \"n1\"}}");
            assertThat(errorClass(inUse)).isEqualTo("GenericError");
            assertThat(desc(inUse)).isEqualTo("Node n1 is in use");
            io.vblk.aio.AioContext main = vblk.daemon.graph().mainLoop().ctx();
            io.vblk.drivers.node.BlockNode n1 = vblk.daemon.graph().nodes().get("n1");
            long sections = io.vblk.aio.AioContext.await(main.callOn(n1::sections), T);
            JsonNode del = q.raw("{\"execute\": \"block-export-del\", \"arguments\": {\"id\": \"e1\", \"mode\": \"hard\"}}");
            assertThat(del.has("return")).as(del.toString()).isTrue();
            JsonNode ev = q.awaitEvent("BLOCK_EXPORT_DELETED");
            // Seed 003: the removal drained the node (QEMU's blk_remove_bs → blk_drain) and ended the section.
            assertThat(io.vblk.aio.AioContext.await(main.callOn(n1::sections), T)).isEqualTo(sections + 1);
            assertThat(io.vblk.aio.AioContext.await(main.callOn(n1::isDrained), T)).isFalse();
            assertThat(ev.get("data").get("id").asText()).isEqualTo("e1");
            assertThat(ev.get("timestamp").get("seconds").asLong()).isPositive();
            assertThat(q.raw("{\"execute\": \"blockdev-del\", \"arguments\": {\"node-name\": \"n1\"}}").has("return")).isTrue();

            WorkloadResult r0 = load.await(T);
            assertThat(r0.error()).as("the other export's load").isNull();
            assertThat(load.completed()).isPositive();
        }
    }

    /**
     * Seed 004 on the daemon itself: a nested wait on the main loop (AioContext.waitWhile, QEMU's
     * AIO_WAIT_WHILE) needs the export's and the monitor's listeners to accept; both are on the
     * AioContext, so the wait ends — the repro's open against the real export, and a QMP greeting.
     */
    @Test
    void aNestedWaitOnTheMainLoopAcceptsTheExportsAndTheMonitorsClients() throws Exception {
        io.vblk.aio.AioContext main = vblk.daemon.graph().mainLoop().ctx();
        String e0 = dir.resolve("e0.sock").toString();
        long timeouts = io.vblk.aio.AioContext.await(main.callOn(main::nestedWaitTimeouts), T);
        String failure = io.vblk.aio.AioContext.await(main.callOn(
                () -> io.vblk.tools.repro.NestedWaitDeadlockRepro.open(main, e0, Duration.ofSeconds(10))), T);
        assertThat(failure).isNull();
        Integer greeting = io.vblk.aio.AioContext.await(main.callOn(() -> {
            int fd = io.vblk.aio.sys.UnixSockets.unixConnect(m0.toString(), true);
            assertThat(fd).isNotNegative();
            try (java.lang.foreign.Arena a = java.lang.foreign.Arena.ofConfined()) {
                java.lang.foreign.MemorySegment buf = a.allocate(256);
                int[] got = {0};
                io.vblk.aio.FdHandler h = main.addFdHandler("test qmp client", fd, f -> {
                    long n = io.vblk.aio.sys.FileIo.read(f, buf.address(), 256);
                    got[0] = n > 0 ? got[0] + (int) n : n == -io.vblk.aio.sys.Errno.EAGAIN ? got[0] : -1;
                });
                try {
                    main.waitWhile(() -> got[0] == 0, Duration.ofSeconds(10));
                    return got[0];
                } finally {
                    h.remove();
                }
            } finally {
                io.vblk.aio.sys.FileIo.close(fd);
            }
        }), T);
        assertThat(greeting).as("bytes of the QMP greeting read inside the nested wait").isPositive();
        assertThat(io.vblk.aio.AioContext.await(main.callOn(main::nestedWaitTimeouts), T)).isEqualTo(timeouts);
    }

    @Test
    void stopDrainsEveryNodeAndContRunsTheResumeHooks() throws Exception {
        List<String> resumed = new ArrayList<>();
        vblk.qmp.addResumeHook(() -> resumed.add("hook"));
        try (QmpClient q = QmpClient.connect(m0).negotiate()) {
            assertThat(q.execute("stop", null).has("return")).isTrue();
            assertThat(q.awaitEvent("STOP").get("event").asText()).isEqualTo("STOP");
            assertThat(q.execute("query-status", null).get("return").get("status").asText()).isEqualTo("paused");
            assertThat(q.execute("cont", null).has("return")).isTrue();
            q.awaitEvent("RESUME");
            assertThat(q.execute("query-status", null).get("return").get("running").asBoolean()).isTrue();
            assertThat(vblk.daemon.mainLoop().callOn(() -> List.copyOf(resumed)).get()).containsExactly("hook");
        }
    }

    /** A file node added over QMP is flushed at shutdown like one from the command line (found: it was not). */
    @Test
    void shutdownFlushesTheImagesQmpAdded() throws Exception {
        Path img = dir.resolve("added.img");
        java.nio.file.Files.write(img, new byte[1 << 20]);
        Path ro = dir.resolve("ro.img");
        java.nio.file.Files.write(ro, new byte[1 << 20]);
        try (QmpClient q = QmpClient.connect(m0).negotiate()) {
            assertThat(q.raw("{\"execute\": \"blockdev-add\", \"arguments\": {\"driver\": \"file\", \"node-name\": \"f1\","
                    + " \"filename\": \"" + img + "\"}}").has("return")).isTrue();
            assertThat(q.raw("{\"execute\": \"blockdev-add\", \"arguments\": {\"driver\": \"file\", \"node-name\": \"f2\","
                    + " \"filename\": \"" + ro + "\", \"read-only\": true}}").has("return")).isTrue();
        }
        assertThat(vblk.daemon.shutdown(T)).isTrue();
        assertThat(vblk.daemon.flushedImages()).containsExactly(img.toString());
    }

    /** qom-set changes a running iothread's polling (QEMU's settable iothread properties); qom-get reads it back. */
    @Test
    void qomSetChangesARunningIothreadsPollParameters() throws Exception {
        try (QmpClient q = QmpClient.connect(m0).negotiate()) {
            JsonNode set = q.raw("{\"execute\": \"qom-set\", \"arguments\": {\"path\": \"/objects/io0\","
                    + " \"property\": \"poll-max-ns\", \"value\": 50000}}");
            assertThat(set.has("return")).as(set.toString()).isTrue();
            assertThat(q.raw("{\"execute\": \"qom-set\", \"arguments\": {\"path\": \"io0\","
                    + " \"property\": \"poll-grow\", \"value\": 4}}").has("return")).isTrue();
            JsonNode io0 = q.execute("query-iothreads", null).get("return").get(0);
            assertThat(io0.get("poll-max-ns").asLong()).isEqualTo(50000);
            assertThat(io0.get("poll-grow").asLong()).isEqualTo(4);
            assertThat(vblk.daemon.graph().iothreads().get("io0").ctx().options().pollMaxNs())
                    .as("the IoThread's own context took it").isEqualTo(50000);
            assertThat(q.raw("{\"execute\": \"qom-get\", \"arguments\": {\"path\": \"/objects/io0\","
                    + " \"property\": \"poll-max-ns\"}}").get("return").asLong()).isEqualTo(50000);
            assertThat(errorClass(q.raw("{\"execute\": \"qom-set\", \"arguments\": {\"path\": \"/objects/nope\","
                    + " \"property\": \"poll-max-ns\", \"value\": 1}}"))).isEqualTo("DeviceNotFound");
            assertThat(errorClass(q.raw("{\"execute\": \"qom-set\", \"arguments\": {\"path\": \"io0\","
                    + " \"property\": \"frob\", \"value\": 1}}"))).isEqualTo("GenericError");
            assertThat(errorClass(q.raw("{\"execute\": \"qom-set\", \"arguments\": {\"path\": \"io0\","
                    + " \"property\": \"poll-max-ns\", \"value\": -1}}"))).isEqualTo("GenericError");
            assertThat(errorClass(q.raw("{\"execute\": \"qom-set\", \"arguments\": {\"path\": \"io0\","
                    + " \"property\": \"poll-max-ns\", \"value\": \"x\"}}"))).isEqualTo("GenericError");
        }
    }

    /** Every "$ vblk monitor --compact SOCK ..." line of the README's worked example, and the reply shown under it. */
    @Test
    void theReadmesWorkedExampleGivesTheRepliesItShows() throws Exception {
        List<String> lines = Files.readAllLines(Path.of(System.getProperty("user.dir")).resolveSibling("README.md"));
        int checked = 0;
        for (int i = 0; i < lines.size() - 1; i++) {
            String l = lines.get(i).strip();
            if (!l.startsWith("$ vblk monitor --compact /run/vblk-qmp.sock ")) {
                continue;
            }
            String cmd = l.substring("$ vblk monitor --compact /run/vblk-qmp.sock ".length()).replace("/run/vblk-e1.sock",
                    dir.resolve("e1.sock").toString());
            StringWriter out = new StringWriter();
            var cl = new picocli.CommandLine(new MonitorCommand());
            cl.setOut(new PrintWriter(out));
            List<String> args = new ArrayList<>(List.of("--compact", m0.toString()));
            args.addAll(Arrays.asList(cmd.split(" ")));
            cl.execute(args.toArray(new String[0]));
            String shown = lines.get(i + 1).strip();
            String got = out.toString().strip();
            if (shown.contains("\"event\"")) {
                // An event line: compare without its timestamp.
                got = got.replaceAll("\"timestamp\":\\{[^}]*},?", "");
                shown = shown.replaceAll("\"timestamp\":\\{[^}]*},?", "");
            }
            assertThat(got).as(l).isEqualTo(shown);
            checked++;
        }
        assertThat(checked).as("worked-example commands in README.md").isGreaterThanOrEqualTo(5);
    }
}
