package io.vblk.tools.serve;

import io.vblk.tools.version.VblkVersion;
import io.vblk.tools.metrics.MetricsOptionException;
import io.vblk.tools.metrics.MetricsOptions;
import io.vblk.tools.qmp.MonitorSpec;
import io.vblk.tools.qmp.QmpServer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;

/**
 * Home thread: the CLI's main thread, which is no context's home thread: it starts the daemon and
 * waits for a signal.
 *
 * <p>{@code vblk serve}: the vhost-user-blk daemon, a drop-in for
 * {@code qemu-storage-daemon --export type=vhost-user-blk}. It takes qemu-storage-daemon's
 * {@code --blockdev}, {@code --object iothread} and {@code --export} options for what vblk
 * supports (see {@link ServeOptionParser}), and a short form for the common case:
 * {@code vblk serve disk.img --socket /run/vblk.sock}.
 *
 * <p>A bad option stops start-up with a message naming it and what it accepts (exit 2), and
 * leaves no socket file behind. SIGTERM, SIGINT or SIGHUP: stop accepting, finish in-flight
 * requests, flush, remove the sockets and the pidfile, exit 0, within {@code --shutdown-timeout}
 * (exit 1 if that passes); a second signal exits at once (see {@link Signals}).
 */
@Command(name = "serve", mixinStandardHelpOptions = true, versionProvider = VblkVersion.class, sortOptions = false,
        description = {"Serve block devices to VMs over vhost-user (qemu-storage-daemon syntax).", "",
                "  vblk serve --blockdev driver=file,node-name=d0,filename=disk.img \\",
                "             --export type=vhost-user-blk,id=e0,node-name=d0,addr.type=unix,addr.path=/run/vblk.sock,writable=on",
                "  vblk serve disk.img --socket /run/vblk.sock", ""})
public final class ServeCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = "--blockdev", paramLabel = "OPTIONS", description = {
            "driver=file,node-name=N,filename=F[,aio=threads|native|io_uring][,cache.direct=on|off][,read-only=on|off]",
            "driver=null-co|null-aio,node-name=N[,size=S][,read-only=on|off]",
            "driver=raw,node-name=N,file=NODE"})
    List<String> blockdevs = new ArrayList<>();

    @Option(names = "--object", paramLabel = "OPTIONS", description = {
            "iothread,id=I[,poll-max-ns=NS][,poll-grow=G][,poll-shrink=S][,aio-max-batch=B][,cpu-affinity=0-1:3]",
            "metrics,id=M,addr=HOST:PORT[,path=/metrics]   (vblk: the Prometheus endpoint)",
            "secret,id=ID,data=STRING|file=PATH[,format=raw|base64]   (e.g. the cephx key for rbd key-secret=ID)"})
    List<String> objects = new ArrayList<>();

    @Option(names = "--metrics", paramLabel = "ADDR", description =
            "serve Prometheus metrics on ADDR (host:port, [v6]:port, :port or port; host defaults to 127.0.0.1)")
    String metricsAddr;

    @Option(names = "--export", paramLabel = "OPTIONS", description = {
            "type=vhost-user-blk,id=E,node-name=N,addr.type=unix,addr.path=P|addr.type=fd,addr.str=FD",
            "[,writable=on|off][,num-queues=Q][,logical-block-size=B][,iothread=I|,iothread.0=I0,iothread.1=I1,...]",
            "(vblk: queue q runs on iothread.(q mod n))"})
    List<String> exports = new ArrayList<>();

    @Option(names = "--nbd-server", paramLabel = "OPTIONS", description =
            "addr.type=unix,addr.path=P | addr.type=inet,addr.host=H,addr.port=N: the NBD server"
            + " that --export type=nbd,id=E,node-name=N[,name=NAME][,writable=on] exports are offered on")
    String nbdServer;

    @Option(names = "--chardev", paramLabel = "OPTIONS", description =
            "socket,id=ID,path=P,server=on,wait=off | socket,id=ID,fd=N,server=on (a monitor's socket)")
    List<String> chardevs = new ArrayList<>();

    @Option(names = "--monitor", paramLabel = "OPTIONS", description = "chardev=ID[,mode=control]: a QMP monitor on that socket")
    List<String> monitors = new ArrayList<>();

    @Option(names = "--pidfile", paramLabel = "PATH", description = "write the daemon's pid here once it serves")
    String pidfile;

    @Option(names = "--socket-mode", paramLabel = "OCTAL", defaultValue = "0600",
            description = "permission bits of the UNIX socket files created (vblk; default ${DEFAULT-VALUE}: the owner only)")
    String socketMode;

    @Parameters(arity = "0..1", paramLabel = "IMAGE", description = "short form: the image file or block device to serve")
    String image;

    @Option(names = "--socket", paramLabel = "PATH", description = "short form: the vhost-user socket to listen on")
    String socket;

    @Option(names = "--num-queues", paramLabel = "N", description = "short form: request queues (default 1)")
    Integer numQueues;

    @Option(names = "--iothreads", paramLabel = "N", description = "short form: IoThreads to spread the queues over (default: the main loop)")
    Integer iothreadCount;

    @Option(names = "--read-only", description = "short form: serve the image read-only")
    boolean readOnly;

    @Option(names = "--aio", paramLabel = "threads|native|io_uring", description = "short form: I/O engine (default threads)")
    String aio;

    @Option(names = "--cache", paramLabel = "writeback|none", description = "short form: page cache or O_DIRECT (default writeback)")
    String cache;

    @Option(names = "--logical-block-size", paramLabel = "B", description = "short form: logical block size (default 512)")
    Integer logicalBlockSize;

    @Option(names = "--shutdown-timeout", paramLabel = "SECONDS", defaultValue = "30",
            description = "bound on the orderly shutdown after a signal (default ${DEFAULT-VALUE})")
    int shutdownTimeout;

    /** Lines of start-up progress go here (tests read "ready"). */
    public static final String READY = "vblk serve: ready";

    /** The checked configuration of this command line. */
    public ServeConfig config() throws ServeOptionException {
        List<String> b = new ArrayList<>(blockdevs);
        List<String> o = new ArrayList<>();
        for (String obj : objects) {
            if (!obj.equals("metrics") && !obj.startsWith("metrics,")) {
                o.add(obj);
            }
        }
        List<String> e = new ArrayList<>(exports);
        if (image != null) {
            shortForm(b, o, e);
        } else if (socket != null || numQueues != null || iothreadCount != null || readOnly || aio != null || cache != null
                || logicalBlockSize != null) {
            throw new ServeOptionException("--socket, --num-queues, --iothreads, --read-only, --aio, --cache and"
                    + " --logical-block-size belong to the short form and need an IMAGE: vblk serve IMAGE --socket PATH");
        }
        if (shutdownTimeout < 1 || shutdownTimeout > 3600) {
            throw new ServeOptionException("--shutdown-timeout=" + shutdownTimeout + " is out of range; accepts 1..3600 seconds");
        }
        return ServeOptionParser.parse(b, o, e, pidfile, !monitors.isEmpty(), nbdServer);
    }

    /** {@code --socket-mode}: permission bits 0..0777, written in octal. */
    int socketMode() throws ServeOptionException {
        if (!socketMode.matches("0?[0-7]{1,3}")) {
            throw new ServeOptionException("--socket-mode=" + socketMode + " is not valid; accepts octal permission bits"
                    + " 000..0777, e.g. 0600 (owner only) or 0660 (owner and group)");
        }
        return Integer.parseInt(socketMode, 8);
    }

    /** The metrics endpoint asked for with --metrics or --object metrics,..., or null. */
    public MetricsOptions metricsOptions() throws ServeOptionException {
        MetricsOptions m = null;
        try {
            if (metricsAddr != null) {
                m = MetricsOptions.parseAddress(metricsAddr);
            }
            for (String obj : objects) {
                if (obj.equals("metrics") || obj.startsWith("metrics,")) {
                    if (m != null) {
                        throw new ServeOptionException("--object " + obj + ": a second metrics endpoint; accepts one --metrics"
                                + " or one --object metrics,...");
                    }
                    m = MetricsOptions.parseObject(obj);
                }
            }
        } catch (MetricsOptionException e) {
            throw new ServeOptionException(e.getMessage());
        }
        return m;
    }

    /** Turns the short form into the long one, so both go through the same checks. */
    private void shortForm(List<String> b, List<String> o, List<String> e) throws ServeOptionException {
        if (socket == null) {
            throw new ServeOptionException("IMAGE " + image + " needs --socket PATH (where VMs connect)");
        }
        String a = aio == null ? "threads" : aio;
        if (!a.equals("threads") && !a.equals("native") && !a.equals("io_uring")) {
            throw new ServeOptionException("--aio=" + a + " is not valid; accepts threads, native or io_uring");
        }
        String c = cache == null ? (a.equals("native") ? "none" : "writeback") : cache;
        if (!c.equals("writeback") && !c.equals("none")) {
            throw new ServeOptionException("--cache=" + c + " is not valid; accepts writeback or none");
        }
        if (a.equals("native") && c.equals("writeback")) {
            throw new ServeOptionException("--aio=native needs --cache=none (Linux AIO is only asynchronous with O_DIRECT)");
        }
        int q = numQueues == null ? 1 : numQueues;
        int t = iothreadCount == null ? 0 : iothreadCount;
        if (t < 0 || t > ServeOptionParser.MAX_QUEUES) {
            throw new ServeOptionException("--iothreads=" + t + " is out of range; accepts 0.." + ServeOptionParser.MAX_QUEUES);
        }
        b.add("driver=file,node-name=disk0,filename=" + esc(image) + ",aio=" + a + ",cache.direct=" + (c.equals("none") ? "on" : "off")
                + ",read-only=" + (readOnly ? "on" : "off"));
        StringBuilder x = new StringBuilder("type=vhost-user-blk,id=disk0,node-name=disk0,addr.type=unix,addr.path=")
                .append(esc(socket)).append(",writable=").append(readOnly ? "off" : "on").append(",num-queues=").append(q);
        if (logicalBlockSize != null) {
            x.append(",logical-block-size=").append(logicalBlockSize);
        }
        for (int i = 0; i < t; i++) {
            o.add("iothread,id=io" + i);
            x.append(",iothread.").append(i).append("=io").append(i);
        }
        e.add(x.toString());
    }

    private static String esc(String v) {
        return v.replace(",", ",,");
    }

    @Override
    public Integer call() throws Exception {
        ServeConfig cfg;
        MetricsOptions metrics;
        int mode;
        List<MonitorSpec> monitorSpecs;
        try {
            cfg = config();
            metrics = metricsOptions();
            mode = socketMode();
            monitorSpecs = MonitorSpec.parse(chardevs, monitors);
            if (cfg.pidfile() != null) {
                checkPidfileDirectory(Path.of(cfg.pidfile()));
            }
        } catch (ServeOptionException | IllegalArgumentException ex) {
            spec.commandLine().getErr().println("vblk serve: " + ex.getMessage());
            return 2;
        }
        CountDownLatch stop = new CountDownLatch(1);
        Signals.onTerminate(stop::countDown);
        ServeDaemon daemon;
        try {
            daemon = ServeDaemon.start(cfg, metrics, mode);
        } catch (ServeOptionException ex) {
            spec.commandLine().getErr().println("vblk serve: " + ex.getMessage());
            return 2;
        }
        QmpServer qmp;
        try {
            qmp = QmpServer.start(daemon.graph(), monitorSpecs, stop::countDown);
        } catch (IllegalArgumentException ex) {
            spec.commandLine().getErr().println("vblk serve: " + ex.getMessage());
            daemon.abortStart(Duration.ofSeconds(shutdownTimeout));
            return 2;
        }
        daemon.attachMonitor(qmp);
        Signals.onResume(daemon::resumeStoppedDevices); // werror/rerror=stop without a monitor
        if (cfg.pidfile() != null) {
            try {
                writePidfile(Path.of(cfg.pidfile()));
            } catch (IOException ex) {
                spec.commandLine().getErr().println("vblk serve: --pidfile " + cfg.pidfile() + ": cannot write it: " + ex);
                daemon.abortStart(Duration.ofSeconds(shutdownTimeout));
                return 2;
            }
        }
        int served = cfg.exports().size() + cfg.nbdExports().size();
        spec.commandLine().getOut().println(READY + " (" + served + " export" + (served == 1 ? "" : "s") + ")");
        spec.commandLine().getOut().flush();
        stop.await();
        qmp.close();
        boolean clean = daemon.shutdown(Duration.ofSeconds(shutdownTimeout));
        if (cfg.pidfile() != null) {
            Files.deleteIfExists(Path.of(cfg.pidfile()));
        }
        spec.commandLine().getErr().println("vblk serve: " + (clean ? "stopped" : "stopped, but not cleanly (see above)"));
        return clean ? 0 : 1;
    }

    /** A pidfile in a directory that does not exist fails before anything starts (no socket is created). */
    private static void checkPidfileDirectory(Path p) throws ServeOptionException {
        Path dir = p.toAbsolutePath().getParent();
        if (dir != null && !Files.isDirectory(dir)) {
            throw new ServeOptionException("--pidfile " + p + ": directory " + dir + " does not exist");
        }
        if (Files.isDirectory(p)) {
            throw new ServeOptionException("--pidfile " + p + " is a directory; accepts a file path");
        }
    }

    private static void writePidfile(Path p) throws IOException {
        Path tmp = p.resolveSibling(p.getFileName() + ".tmp");
        Files.writeString(tmp, ProcessHandle.current().pid() + "\n");
        Files.move(tmp, p, java.nio.file.StandardCopyOption.REPLACE_EXISTING, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
    }
}
