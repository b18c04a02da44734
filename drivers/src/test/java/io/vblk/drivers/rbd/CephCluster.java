package io.vblk.drivers.rbd;

import io.vblk.aio.testing.Components;

import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * Any thread (test code). A real, throwaway single-node Ceph cluster from Debian's packages
 * ({@code ceph-mon}, {@code ceph-osd}, {@code ceph-common}), started in a temporary directory: one
 * monitor on 127.0.0.1 (msgr v1, a free port), cephx on, one OSD on memstore, pool size 1, and one
 * pool with the {@code rbd} application. Every path the daemons use (data, keyrings, run dir, admin
 * sockets, logs) is under that directory; the daemons run in the foreground as children of the
 * test JVM, so {@link #close()} kills exactly them.
 *
 * <p>Start-up is bounded by {@link #START_SECONDS}: if the monitor does not answer, the OSD does
 * not come up, or the cluster is not {@code HEALTH_OK} with the pool writable by then, the test
 * fails with the daemons' logs. It never skips. A missing program fails the test naming its Debian
 * package and scripts/install-test-deps.sh ({@link Components}).
 *
 * <p>The start costs about 15 s, so a test class shares one cluster ({@code @BeforeAll}).
 */
public final class CephCluster implements AutoCloseable {
    /** The bound on the whole start-up: monitor, OSD, pool, and the first write reaching the OSD. */
    public static final int START_SECONDS = 120;
    /** The bound on one admin command (ceph, rbd) once the cluster is up. */
    public static final int COMMAND_SECONDS = 60;
    public static final String POOL = "rbd";

    private final Path dir;
    private final Path conf;
    private final List<Process> daemons = new ArrayList<>();
    private final long deadline;

    private CephCluster(Path dir) {
        this.dir = dir;
        this.conf = dir.resolve("ceph.conf");
        this.deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(START_SECONDS);
    }

    /**
     * For scripts (scripts/bench/rbd.sh): starts a cluster in directory {@code args[0]}, prints
     * {@code ceph-conf=PATH} and runs until it is stopped (SIGTERM or SIGINT), then stops the daemons.
     */
    public static void main(String[] args) throws Exception {
        if (args.length != 1) {
            System.err.println("usage: CephCluster DIR   (runs until SIGTERM/SIGINT)");
            System.exit(2);
        }
        CephCluster c = start(Path.of(args[0]));
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                c.close();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }, "ceph-cluster-stop"));
        System.out.println("ceph-conf=" + c.conf());
        System.out.flush();
        Thread.currentThread().join(); // until the shutdown hook runs
    }

    /** Starts a cluster in {@code dir} (created if missing); fails the test with the logs if it does not come up in time. */
    public static CephCluster start(Path dir) throws Exception {
        Components.require(Components.CEPH_CLUSTER);
        Files.createDirectories(dir);
        CephCluster c = new CephCluster(dir.toAbsolutePath());
        try {
            c.bootstrap();
        } catch (Throwable t) {
            String logs = c.logs();
            c.close();
            throw new AssertionError("the single-node Ceph cluster did not come up within " + START_SECONDS + " s: "
                    + t.getMessage() + "\n" + logs, t);
        }
        return c;
    }

    /** The cluster's ceph.conf (the client.admin keyring is named in it). */
    public Path conf() {
        return conf;
    }

    public Path dir() {
        return dir;
    }

    /** The client.admin key (base64), as {@code key-secret} would pass it. */
    public String adminKey() throws Exception {
        return run(COMMAND_SECONDS, tool(Components.CEPH_AUTHTOOL), "-p", "-n", "client.admin", dir.resolve("keyring").toString()).trim();
    }

    /** Runs {@code rbd -c ceph.conf args...}; returns its standard output, fails the test on a non-zero exit. */
    public String rbd(String... args) throws Exception {
        return run(COMMAND_SECONDS, withConf(Components.RBD, args));
    }

    /** Runs {@code ceph -c ceph.conf args...}; returns its standard output, fails the test on a non-zero exit. */
    public String ceph(String... args) throws Exception {
        return run(COMMAND_SECONDS, withConf(Components.CEPH, args));
    }

    /** Every daemon log, for a failure message. */
    public String logs() {
        StringBuilder sb = new StringBuilder();
        Path logDir = dir.resolve("log");
        if (!Files.isDirectory(logDir)) {
            return "(no logs)";
        }
        try (Stream<Path> files = Files.list(logDir)) {
            for (Path f : files.sorted().toList()) {
                String text = Files.readString(f, StandardCharsets.ISO_8859_1);
                sb.append("==== ").append(f.getFileName()).append(" (last 6000 chars) ====\n")
                        .append(text, Math.max(0, text.length() - 6000), text.length()).append('\n');
            }
        } catch (IOException e) {
            sb.append("(logs unreadable: ").append(e).append(")");
        }
        return sb.toString();
    }

    /** Kills the daemons (SIGKILL: memstore keeps nothing worth a clean stop) and waits for them. */
    @Override
    public void close() throws InterruptedException {
        for (Process p : daemons) {
            p.destroyForcibly();
        }
        for (Process p : daemons) {
            p.waitFor(30, TimeUnit.SECONDS);
        }
        daemons.clear();
    }

    private void bootstrap() throws Exception {
        for (String d : List.of("run", "log", "mon", "osd/ceph-0")) {
            Files.createDirectories(dir.resolve(d));
        }
        String fsid = UUID.randomUUID().toString();
        int port = freePort();
        Files.writeString(conf, config(fsid, port));
        String keyring = dir.resolve("keyring").toString();
        run(remaining(), tool(Components.CEPH_AUTHTOOL), "--create-keyring", keyring, "--gen-key", "-n", "mon.", "--cap", "mon", "allow *");
        run(remaining(), tool(Components.CEPH_AUTHTOOL), keyring, "--gen-key", "-n", "client.admin",
                "--cap", "mon", "allow *", "--cap", "osd", "allow *", "--cap", "mgr", "allow *");
        String monmap = dir.resolve("monmap").toString();
        run(remaining(), tool(Components.MONMAPTOOL), "--create", "--fsid", fsid, "--addv", "a", "[v1:127.0.0.1:" + port + "]", monmap);
        run(remaining(), tool(Components.CEPH_MON), "-c", conf.toString(), "--mkfs", "-i", "a", "--monmap", monmap, "--keyring", keyring);
        daemon("mon.a", tool(Components.CEPH_MON), "-f", "-c", conf.toString(), "-i", "a");

        // The OSD's key is made here and handed to `ceph osd new`, which registers it with the monitor.
        String osdKeyring = dir.resolve("osd/ceph-0/keyring").toString();
        run(remaining(), tool(Components.CEPH_AUTHTOOL), "--create-keyring", osdKeyring, "--gen-key", "-n", "osd.0");
        String osdKey = run(remaining(), tool(Components.CEPH_AUTHTOOL), "-p", "-n", "osd.0", osdKeyring).trim();
        Path secret = dir.resolve("osd-secret.json");
        Files.writeString(secret, "{\"cephx_secret\": \"" + osdKey + "\"}");
        String osdUuid = UUID.randomUUID().toString();
        // The first command also waits for the monitor to form its quorum of one (bounded by the process timeout).
        String id = run(remaining(), withConf(Components.CEPH, "osd", "new", osdUuid, "0", "-i", secret.toString())).trim();
        if (!id.equals("0")) {
            throw new IllegalStateException("ceph osd new gave id " + id + ", expected 0");
        }
        run(remaining(), tool(Components.CEPH_OSD), "-c", conf.toString(), "-i", "0", "--mkfs", "--osd-uuid", osdUuid);
        daemon("osd.0", tool(Components.CEPH_OSD), "-f", "-c", conf.toString(), "-i", "0");

        run(remaining(), withConf(Components.CEPH, "osd", "pool", "create", POOL, "8", "8"));
        run(remaining(), withConf(Components.CEPH, "osd", "pool", "application", "enable", POOL, "rbd"));
        // A client write blocks until the OSD is up and the pool's placement groups are active: the
        // readiness check that needs no polling (there is no manager daemon to report PG states).
        run(remaining(), withConf(Components.RBD, "create", "--size", "4M", POOL + "/ready-probe"));
        run(remaining(), withConf(Components.RBD, "rm", "--no-progress", POOL + "/ready-probe"));
        String health = run(remaining(), withConf(Components.CEPH, "health", "detail")).trim();
        if (!health.startsWith("HEALTH_OK")) {
            throw new IllegalStateException("cluster up but not HEALTH_OK: " + health);
        }
    }

    private String config(String fsid, int port) {
        String d = dir.toString();
        return String.join("\n",
                "[global]",
                "fsid = " + fsid,
                "mon host = v1:127.0.0.1:" + port,
                "public addr = 127.0.0.1",
                "ms bind ipv6 = false",
                "auth cluster required = cephx",
                "auth service required = cephx",
                "auth client required = cephx",
                "auth allow insecure global id reclaim = false",
                "mon warn on msgr2 not enabled = false",
                "osd pool default size = 1",
                "osd pool default min size = 1",
                "mon allow pool size one = true",
                "mon warn on pool no redundancy = false",
                "mon data avail warn = 2",
                "mon data avail crit = 1",
                "osd crush chooseleaf type = 0",
                "osd pool default pg autoscale mode = off",
                "run dir = " + d + "/run",
                "admin socket = " + d + "/run/$name.$pid.asok",
                "log file = " + d + "/log/$name.log",
                "keyring = " + d + "/keyring",
                "mon data = " + d + "/mon/$name",
                "osd data = " + d + "/osd/$cluster-$id",
                "osd objectstore = memstore",
                "memstore device bytes = 1073741824",
                "[osd]",
                "keyring = " + d + "/osd/$cluster-$id/keyring",
                "");
    }

    private void daemon(String name, String... cmd) throws IOException {
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true)
                .redirectOutput(dir.resolve("log/" + name + ".stdout").toFile()).start();
        daemons.add(p);
    }

    private String[] withConf(Components.Component c, String... args) {
        String[] cmd = new String[args.length + 3];
        cmd[0] = tool(c);
        cmd[1] = "-c";
        cmd[2] = conf.toString();
        System.arraycopy(args, 0, cmd, 3, args.length);
        return cmd;
    }

    private static String tool(Components.Component c) {
        return Components.require(c).toString();
    }

    private long remaining() {
        long s = TimeUnit.NANOSECONDS.toSeconds(deadline - System.nanoTime());
        if (s <= 0) {
            throw new IllegalStateException("start-up bound of " + START_SECONDS + " s passed");
        }
        return s;
    }

    /** Runs a command to its end within {@code seconds}; its stdout, or an error with stdout and stderr. */
    private String run(long seconds, String... cmd) throws Exception {
        Path out = Files.createTempFile(dir, "cmd", ".out");
        Path err = Files.createTempFile(dir, "cmd", ".err");
        try {
            Process p = new ProcessBuilder(cmd).redirectOutput(out.toFile()).redirectError(err.toFile()).start();
            if (!p.waitFor(seconds, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                p.waitFor(10, TimeUnit.SECONDS);
                throw new IllegalStateException(String.join(" ", cmd) + ": no answer within " + seconds + " s; stderr: "
                        + tail(Files.readString(err)));
            }
            String stdout = Files.readString(out);
            if (p.exitValue() != 0) {
                throw new IllegalStateException(String.join(" ", cmd) + ": exit " + p.exitValue() + "; stderr: "
                        + tail(Files.readString(err)) + "; stdout: " + tail(stdout));
            }
            return stdout;
        } finally {
            Files.deleteIfExists(out);
            Files.deleteIfExists(err);
        }
    }

    private static String tail(String s) {
        return s.length() > 4000 ? "..." + s.substring(s.length() - 4000) : s;
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        }
    }

    @Override
    public String toString() {
        return String.format(Locale.ROOT, "CephCluster[%s]", dir);
    }
}
