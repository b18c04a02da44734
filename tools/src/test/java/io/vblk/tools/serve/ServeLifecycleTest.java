package io.vblk.tools.serve;

import io.vblk.aio.sys.FileIo;
import io.vblk.aio.sys.UnixSockets;
import io.vblk.guest.GuestBlkDriver;
import io.vblk.guest.vhost.VhostUserTransport;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;

/** What an operator meets around the daemon's life: socket ownership and mode, pidfile, start-up failures, signals. */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class ServeLifecycleTest {
    @TempDir
    Path dir;

    private record Run(int code, String out, String err) {
    }

    /** Runs {@code vblk serve} in this process; shutdown summary lines go to System.err, so it is captured too. */
    private static Run run(String... args) {
        PrintStream old = System.err;
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
        StringWriter out = new StringWriter();
        int code;
        try {
            CommandLine cl = new CommandLine(new ServeCommand());
            cl.setOut(new PrintWriter(out, true));
            cl.setErr(new PrintWriter(System.err, true));
            code = cl.execute(args);
        } finally {
            System.setErr(old);
        }
        return new Run(code, out.toString(), err.toString(StandardCharsets.UTF_8));
    }

    private static ServeDaemon start(String... args) throws Exception {
        ServeCommand c = new ServeCommand();
        new CommandLine(c).parseArgs(args);
        return ServeDaemon.start(c.config(), null, c.socketMode());
    }

    @Test
    void aSecondDaemonOnALiveSocketIsRefusedAndTheFirstKeepsServing() throws Exception {
        String sock = dir.resolve("live.sock").toString();
        ServeDaemon first = start("--blockdev", "driver=null-co,node-name=n0,size=16M", "--export",
                "type=vhost-user-blk,id=e0,node-name=n0,addr.type=unix,addr.path=" + sock);
        try {
            Run r = run("--blockdev", "driver=null-co,node-name=n0,size=16M", "--export",
                    "type=vhost-user-blk,id=e1,node-name=n0,addr.type=unix,addr.path=" + sock);
            assertThat(r.code()).isEqualTo(2);
            assertThat(r.err()).contains("vblk serve: --export id=e1: export e1: " + sock + " is in use")
                    .doesNotContain("served reads=");
            assertThat(Files.exists(Path.of(sock))).as("the live daemon's socket stays").isTrue();
            try (VhostUserTransport t = VhostUserTransport.connect(sock, Duration.ofSeconds(10));
                 GuestBlkDriver g = GuestBlkDriver.attach(t, GuestBlkDriver.Options.defaults())) {
                assertThat(g.config().capacitySectors()).as("the first daemon still answers").isEqualTo((16L << 20) / 512);
            }
        } finally {
            assertThat(first.shutdown(Duration.ofSeconds(20))).isTrue();
        }
    }

    @Test
    void aStaleSocketFileIsReplacedAndOtherFilesAreNot() throws Exception {
        Path sock = dir.resolve("stale.sock");
        // A socket file nobody listens on any more, as a killed daemon leaves it.
        int fd = UnixSockets.unixListen(sock.toString(), 1);
        assertThat(fd).isNotNegative();
        FileIo.close(fd);
        assertThat(Files.exists(sock)).isTrue();
        ServeDaemon d = start("--blockdev", "driver=null-co,node-name=n0", "--export",
                "type=vhost-user-blk,id=e0,node-name=n0,addr.type=unix,addr.path=" + sock);
        try {
            try (VhostUserTransport t = VhostUserTransport.connect(sock.toString(), Duration.ofSeconds(10))) {
                assertThat(t.deviceFeatures()).isNotZero();
            }
        } finally {
            assertThat(d.shutdown(Duration.ofSeconds(20))).isTrue();
        }
        assertThat(Files.exists(sock)).isFalse();
        Path regular = dir.resolve("data.txt");
        Files.writeString(regular, "not a socket");
        Run r = run("--blockdev", "driver=null-co,node-name=n0", "--export",
                "type=vhost-user-blk,id=e0,node-name=n0,addr.type=unix,addr.path=" + regular);
        assertThat(r.code()).isEqualTo(2);
        assertThat(r.err()).contains("cannot listen on " + regular).contains("EADDRINUSE");
        assertThat(Files.readString(regular)).isEqualTo("not a socket");
    }

    @Test
    void socketFilesAreOwnerOnlyUnlessSocketModeSaysOtherwise() throws Exception {
        String a = dir.resolve("a.sock").toString();
        String b = dir.resolve("b.sock").toString();
        Path img = dir.resolve("x.img");
        Files.write(img, new byte[1 << 20]);
        ServeDaemon d1 = start(img.toString(), "--socket", a);
        ServeDaemon d2 = null;
        try {
            assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(Path.of(a)))).isEqualTo("rw-------");
            d2 = start("--blockdev", "driver=null-co,node-name=n0", "--export",
                    "type=vhost-user-blk,id=e0,node-name=n0,addr.type=unix,addr.path=" + b, "--socket-mode", "0660");
            assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(Path.of(b)))).isEqualTo("rw-rw----");
        } finally {
            d1.shutdown(Duration.ofSeconds(20));
            if (d2 != null) {
                d2.shutdown(Duration.ofSeconds(20));
            }
        }
        Run r = run("--blockdev", "driver=null-co,node-name=n0", "--export",
                "type=vhost-user-blk,id=e0,node-name=n0,addr.type=unix,addr.path=" + b, "--socket-mode", "rw");
        assertThat(r.code()).isEqualTo(2);
        assertThat(r.err()).contains("--socket-mode=rw is not valid; accepts octal permission bits");
    }

    @Test
    void aPidfileInAMissingDirectoryIsOneLineAndLeavesNoSocket() {
        Path sock = dir.resolve("p.sock");
        Path pid = dir.resolve("no/such/dir/vblk.pid");
        Run r = run("--blockdev", "driver=null-co,node-name=n0", "--export",
                "type=vhost-user-blk,id=e0,node-name=n0,addr.type=unix,addr.path=" + sock, "--pidfile", pid.toString());
        assertThat(r.code()).isEqualTo(2);
        assertThat(r.err().strip()).isEqualTo("vblk serve: --pidfile " + pid + ": directory " + pid.getParent()
                + " does not exist");
        assertThat(Files.exists(sock)).isFalse();
    }

    @Test
    void aFailedStartUpPrintsOnlyTheError() {
        Run r = run("--blockdev", "driver=null-co,node-name=n0", "--export",
                "type=vhost-user-blk,id=e0,node-name=n0,addr.type=unix,addr.path=" + dir.resolve("ok.sock"),
                "--blockdev", "driver=null-co,node-name=n1", "--export",
                "type=vhost-user-blk,id=e1,node-name=n1,addr.type=unix,addr.path=" + dir.resolve("no/dir/s.sock"));
        assertThat(r.code()).isEqualTo(2);
        assertThat(r.err()).contains("vblk serve: --export id=e1: ").doesNotContain("served reads=");
        assertThat(Files.exists(dir.resolve("ok.sock"))).as("the export that had started is gone").isFalse();
        r = run("--object", "frob,id=x", "--blockdev", "driver=null-co,node-name=n0");
        assertThat(r.code()).isEqualTo(2);
        assertThat(r.err()).contains("object type frob is not supported; accepts iothread, secret or metrics");
    }

    @Test
    void theFirstSignalStopsInOrderAndASecondExitsAtOnce() {
        List<Integer> exits = new ArrayList<>();
        int[] released = {0};
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        Signals s = new Signals(() -> released[0]++, exits::add, new PrintStream(buf, true, StandardCharsets.UTF_8));
        s.signalled("TERM", 15);
        assertThat(released[0]).isEqualTo(1);
        assertThat(exits).isEmpty();
        s.signalled("INT", 2);
        assertThat(released[0]).as("the orderly shutdown is started once").isEqualTo(1);
        assertThat(exits).containsExactly(130);
        assertThat(buf.toString(StandardCharsets.UTF_8)).contains("vblk serve: SIGTERM: shutting down")
                .contains("vblk serve: second signal (SIGINT) during shutdown: exiting at once");
    }
}
