package io.vblk.tools.vm;

import com.fasterxml.jackson.databind.JsonNode;
import io.vblk.tools.qmp.MonitorSpec;
import io.vblk.tools.qmp.QmpClient;
import io.vblk.tools.qmp.QmpServer;
import io.vblk.tools.serve.ServeConfig;
import io.vblk.tools.serve.ServeDaemon;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Home thread: the test's thread (the guest's output is read there, the hooks run there).
 *
 * <p>The host side of the real-guest tests: a daemon in this process with a QMP monitor, a guest
 * started by scripts/vm/run-guest.sh whose console lines the test reads, and the checks of the
 * guest's reported steps.
 */
final class VmHost {
    static final Path ROOT = Path.of(System.getProperty("user.dir")).getParent();
    private static final Pattern STEP = Pattern.compile("VBLK-VM step name=(\\S+) rc=(\\d+)");

    final ServeDaemon daemon;
    final QmpServer qmp;
    final Path qmpSock;
    private boolean stopped;

    private VmHost(ServeDaemon daemon, QmpServer qmp, Path qmpSock) {
        this.daemon = daemon;
        this.qmp = qmp;
        this.qmpSock = qmpSock;
    }

    /** Starts the daemon of {@code cfg} with a QMP monitor {@code m0} on {@code qmpSock}. */
    static VmHost serve(ServeConfig cfg, Path qmpSock) throws Exception {
        ServeDaemon daemon = ServeDaemon.start(cfg);
        QmpServer qmp = QmpServer.start(daemon.graph(), List.of(new MonitorSpec("m0", qmpSock.toString(), -1)), () -> { });
        daemon.attachMonitor(qmp);
        return new VmHost(daemon, qmp, qmpSock);
    }

    /** QMP block_resize of {@code node} to {@code size} over a new monitor connection; the reply. */
    JsonNode blockResize(String node, long size) throws IOException {
        try (QmpClient c = QmpClient.connect(qmpSock).negotiate()) {
            return c.raw("{\"execute\": \"block_resize\", \"arguments\": {\"node-name\": \"" + node + "\", \"size\": "
                    + size + "}}");
        }
    }

    /** Closes the monitor and shuts the daemon down (once); whether it stopped within {@code t}. */
    boolean stop(Duration t) {
        if (!stopped) {
            qmp.close();
            stopped = daemon.shutdown(t);
        }
        return stopped;
    }

    /** What the test does with one console line of the guest. */
    interface LineHook {
        void line(String line) throws Exception;
    }

    /**
     * Runs scripts/vm/run-guest.sh with {@code args}: each console line goes into {@code out}
     * (waiters on {@code out} are woken) and then to {@code hook}. The script ends within 60 s of
     * its output's end or the test fails; on any failure the guest is killed.
     *
     * @return the ended process
     */
    static Process runGuest(List<String> args, StringBuilder out, LineHook hook) throws Exception {
        List<String> cmd = new ArrayList<>();
        cmd.add(ROOT.resolve("scripts/vm/run-guest.sh").toString());
        cmd.addAll(args);
        Process p = new ProcessBuilder(cmd).directory(ROOT.toFile()).redirectErrorStream(true).start();
        try {
            // run-guest.sh kills QEMU after --timeout, so the stream ends in bounded time.
            try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
                String line;
                while ((line = r.readLine()) != null) {
                    synchronized (out) {
                        out.append(line).append('\n');
                        out.notifyAll();
                    }
                    hook.line(line);
                }
            }
            assertThat(p.waitFor(60, TimeUnit.SECONDS)).as("run-guest.sh ended; output:\n" + out).isTrue();
            return p;
        } finally {
            if (p.isAlive()) {
                p.descendants().forEach(ProcessHandle::destroyForcibly);
                p.destroyForcibly().waitFor(30, TimeUnit.SECONDS);
            }
        }
    }

    /** Every "VBLK-VM step" line of {@code out} reports rc 0; how many there are. */
    static int stepsPassed(CharSequence out) {
        Matcher steps = STEP.matcher(out);
        int n = 0;
        while (steps.find()) {
            n++;
            assertThat(steps.group(2)).as("guest step " + steps.group(1) + "; output:\n" + out).isEqualTo("0");
        }
        return n;
    }

    /** Every match of {@code verify} (groups: fio's rc, the verify errors) in {@code out} reports 0/0; how many. */
    static int fioVerifyPassed(CharSequence out, Pattern verify) {
        Matcher m = verify.matcher(out);
        int jobs = 0;
        while (m.find()) {
            jobs++;
            assertThat(m.group(1) + "/" + m.group(2)).as("fio rc / verify errors").isEqualTo("0/0");
        }
        return jobs;
    }

    /** A sparse file of {@code size} bytes. */
    static void sparseFile(Path p, long size) throws IOException {
        try (RandomAccessFile f = new RandomAccessFile(p.toFile(), "rw")) {
            f.setLength(size);
        }
    }

    /** Deletes {@code dir} and the files in it. */
    static void deleteDir(Path dir) throws IOException {
        try (var files = Files.list(dir)) {
            for (Path f : files.toList()) {
                Files.delete(f);
            }
        }
        Files.delete(dir);
    }
}
