package io.vblk.tools.qmp;

import io.vblk.drivers.qcow2.QemuImg;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Any thread (test code).
 *
 * <p>{@code vblk job} against a running daemon's monitor socket: mirror --wait (until ready), list,
 * pause / resume, complete --wait (the export serves the target after), backup --wait (the image
 * equals the source, qemu-img compare), cancel --wait, and the exit statuses of a refused verb, a
 * bad usage and an unknown job.
 */
@Timeout(120)
class JobCommandTest {
    private static final long SIZE = 8L << 20;

    @TempDir
    Path dir;
    VblkWithMonitor vblk;
    Path m0;

    /** What one {@code vblk job} run printed and returned. */
    record Run(int exit, String out, String err) {
    }

    @BeforeEach
    void start() throws Exception {
        byte[] data = new byte[(int) SIZE];
        new Random(3).nextBytes(data);
        Files.write(dir.resolve("src.img"), data);
        for (String n : List.of("dst.img", "bak.img", "bak2.img")) {
            Files.write(dir.resolve(n), new byte[(int) SIZE]);
        }
        m0 = dir.resolve("qmp0.sock");
        vblk = new VblkWithMonitor(List.of("driver=file,node-name=src,filename=" + dir.resolve("src.img")),
                List.of("iothread,id=io0"),
                List.of("type=vhost-user-blk,id=e0,node-name=src,addr.type=unix,addr.path=" + dir.resolve("e0.sock")
                        + ",writable=on,iothread=io0"), m0);
        try (QmpClient q = QmpClient.connect(m0).negotiate()) {
            for (String n : List.of("dst", "bak", "bak2")) {
                assertThat(q.raw("{\"execute\": \"blockdev-add\", \"arguments\": {\"driver\": \"file\", \"node-name\": \""
                        + n + "\", \"filename\": \"" + dir.resolve(n + ".img") + "\"}}").has("return")).isTrue();
            }
        }
    }

    @AfterEach
    void stop() {
        vblk.close();
    }

    private Run job(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        CommandLine cl = new CommandLine(new JobCommand());
        cl.setOut(new PrintWriter(out, true));
        cl.setErr(new PrintWriter(err, true));
        List<String> a = new ArrayList<>(List.of(m0.toString()));
        a.addAll(List.of(args));
        int code = cl.execute(a.toArray(new String[0]));
        return new Run(code, out.toString().strip(), err.toString().strip());
    }

    @Test
    void mirrorThenCompleteFromAScript() throws Exception {
        Run r = job("mirror", "src", "dst", "--job-id", "m0", "--wait", "--timeout", "60");
        assertThat(r.exit()).as(r.err()).isZero();
        assertThat(r.out()).startsWith("m0 ready "); // the last window of copies may still be in flight
        assertThat(job("list").out()).startsWith("m0 mirror ready ");
        assertThat(job("pause", "m0").out()).isEqualTo("m0 pause: ok");
        assertThat(job("list").out()).startsWith("m0 mirror standby ");
        assertThat(job("pause", "m0")).isEqualTo(new Run(1, "", "vblk job: Job is already paused"));
        assertThat(job("resume", "m0").exit()).isZero();
        r = job("complete", "m0", "--wait", "--timeout", "60");
        assertThat(r.exit()).as(r.err()).isZero();
        assertThat(r.out()).isEqualTo("m0 completed " + SIZE + "/" + SIZE);
        assertThat(job("list").out()).isEmpty();
        try (QmpClient q = QmpClient.connect(m0).negotiate()) {
            assertThat(q.execute("query-block-exports", null).get("return").get(0).get("node-name").asText()).isEqualTo("dst");
        }
        assertThat(Files.readAllBytes(dir.resolve("dst.img"))).isEqualTo(Files.readAllBytes(dir.resolve("src.img")));
    }

    @Test
    void backupAndCancelFromAScript() throws Exception {
        Run r = job("backup", "src", "bak", "--wait", "--timeout", "60");
        assertThat(r.exit()).as(r.err()).isZero();
        assertThat(r.out()).isEqualTo("src completed " + SIZE + "/" + SIZE);
        QemuImg.Result same = QemuImg.img("compare", "-f", "raw", "-F", "raw", dir.resolve("src.img").toString(),
                dir.resolve("bak.img").toString());
        assertThat(same.exit()).as(same.out()).isZero();

        assertThat(job("backup", "src", "bak2", "--job-id", "b1", "--speed", "1").out()).isEqualTo("b1 backup: ok");
        // Paused while the start's drained section holds, as QEMU's backup; the length is known
        // once the run has begun (QEMU's backup_run sets it), so a listing before that shows 0/0.
        assertThat(job("list").out()).matches("b1 backup (paused|running) (\\d+/" + SIZE + "|0/0)");
        Run refused = job("complete", "b1");
        assertThat(refused.exit()).isEqualTo(1);
        assertThat(refused.err()).matches("vblk job: Job 'b1' in state '(paused|running)' cannot accept command verb 'complete'");
        r = job("cancel", "b1", "--wait", "--timeout", "60");
        assertThat(r.exit()).as(r.err()).isZero();
        assertThat(r.out()).startsWith("b1 cancelled ");
    }

    @Test
    void badUsageAndUnknownJobs() {
        assertThat(job("frob", "x").exit()).isEqualTo(2);
        assertThat(job("frob", "x").err()).isEqualTo("vblk job: unknown verb 'frob' (see vblk job --help)");
        assertThat(job("mirror", "src").err()).isEqualTo("vblk job: mirror takes 2 arguments, got 1 (see vblk job --help)");
        assertThat(job("set-speed", "m0", "fast").exit()).isEqualTo(2);
        assertThat(job("cancel", "nope")).isEqualTo(new Run(1, "", "vblk job: Job not found"));
        assertThat(job("mirror", "src", "nope").err()).isEqualTo("vblk job: Cannot find device='nope' nor node-name='nope'");
        assertThat(job("list")).isEqualTo(new Run(0, "", ""));
    }
}
