package io.vblk.aio.testing;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

import static org.junit.jupiter.api.Assertions.fail;

/**
 * Any thread (stateless). The real programs that tests drive (qemu-storage-daemon, QEMU,
 * Prometheus, the tools that build the test guest), found on this machine. A test asks for the
 * programs it needs with {@link #require}; a missing one fails the test with the Debian package
 * that ships it and the script that installs every test dependency. Tests never install
 * anything: {@value #INSTALL_SCRIPT} does, and CI's {@code .ci/run} runs it first.
 *
 * <p>Shared through the aio test-jar, so every module's tests use this one lookup.
 */
public final class Components {
    /** Installs every package the tests need (as root); CI's {@code .ci/run} runs it. */
    public static final String INSTALL_SCRIPT = "scripts/install-test-deps.sh";

    /** Searched after $PATH: a test's PATH may lack the sbin directories. */
    private static final List<String> SYSTEM_DIRS = List.of("/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin");

    /** A program a test runs, by its file name, and the Debian 12 package that ships it. */
    public record Component(String program, String debianPackage) {
        public Component {
            if (program.isEmpty() || program.contains("/")) {
                throw new IllegalArgumentException("a program's file name, not a path: " + program);
            }
        }
    }

    /** The vhost-user-blk reference back-end; Debian 12 ships it in qemu-system-common. */
    public static final Component QEMU_STORAGE_DAEMON = new Component("qemu-storage-daemon", "qemu-system-common");
    public static final Component QEMU_SYSTEM_X86_64 = new Component("qemu-system-x86_64", "qemu-system-x86");
    public static final Component PROMETHEUS = new Component("prometheus", "prometheus");
    /** Makes, checks and compares qcow2 images (the qcow2 driver's real peer). */
    public static final Component QEMU_IMG = new Component("qemu-img", "qemu-utils");
    /** Writes patterns into images the way QEMU's block layer does. */
    public static final Component QEMU_IO = new Component("qemu-io", "qemu-utils");
    /** The guest's workload, copied into the test VM's initramfs with its libraries. */
    public static final Component FIO = new Component("fio", "fio");
    /** NBD peers: libnbd's tools, nbdkit, qemu-nbd. */
    public static final Component NBDINFO = new Component("nbdinfo", "libnbd-bin");
    public static final Component NBDCOPY = new Component("nbdcopy", "libnbd-bin");
    public static final Component NBDKIT = new Component("nbdkit", "nbdkit");
    public static final Component QEMU_NBD = new Component("qemu-nbd", "qemu-utils");
    /** The test VM's userland; the initramfs needs the static build. */
    public static final Component BUSYBOX = new Component("busybox", "busybox-static");
    public static final Component CPIO = new Component("cpio", "cpio");
    public static final Component GZIP = new Component("gzip", "gzip");
    public static final Component XZ = new Component("xz", "xz-utils");
    /** depmod and modprobe order the guest kernel's modules. */
    public static final Component DEPMOD = new Component("depmod", "kmod");
    public static final Component MODPROBE = new Component("modprobe", "kmod");

    /** The single-node Ceph cluster of the RBD tests: one monitor, one OSD, and the admin tools. */
    public static final Component CEPH_MON = new Component("ceph-mon", "ceph-mon");
    public static final Component CEPH_OSD = new Component("ceph-osd", "ceph-osd");
    public static final Component CEPH = new Component("ceph", "ceph-common");
    public static final Component RBD = new Component("rbd", "ceph-common");
    public static final Component CEPH_AUTHTOOL = new Component("ceph-authtool", "ceph-common");
    /** Pulled in by ceph-mon (ceph-base). */
    public static final Component MONMAPTOOL = new Component("monmaptool", "ceph-base");

    /** Everything {@code CephCluster} runs. */
    public static final List<Component> CEPH_CLUSTER = List.of(CEPH_MON, CEPH_OSD, CEPH, RBD, CEPH_AUTHTOOL, MONMAPTOOL);

    /** What scripts/vm/setup.sh and the real-VM suite run on the host. */
    public static final List<Component> REAL_VM = List.of(QEMU_SYSTEM_X86_64, QEMU_STORAGE_DAEMON, FIO, BUSYBOX,
            CPIO, GZIP, XZ, DEPMOD, MODPROBE);

    private Components() {
    }

    /** The program's path: the first executable file of that name on $PATH, then in the system directories. */
    public static Optional<Path> find(Component c) {
        for (String dir : searchPath()) {
            Path p = Path.of(dir, c.program());
            if (Files.isRegularFile(p) && Files.isExecutable(p)) {
                return Optional.of(p);
            }
        }
        return Optional.empty();
    }

    /**
     * The program's path, or the test fails naming the Debian package to install and
     * {@value #INSTALL_SCRIPT}.
     */
    public static Path require(Component c) {
        return find(c).orElseGet(() -> fail(missing(List.of(c))));
    }

    /** Every program's path, or the test fails naming all missing ones and their packages. */
    public static List<Path> require(List<Component> cs) {
        List<Component> missing = cs.stream().filter(c -> find(c).isEmpty()).toList();
        if (!missing.isEmpty()) {
            fail(missing(missing));
        }
        return cs.stream().map(c -> find(c).orElseThrow()).toList();
    }

    /** The failure message for {@code missing} programs. */
    static String missing(List<Component> missing) {
        List<String> programs = missing.stream().map(Component::program).toList();
        List<String> packages = missing.stream().map(Component::debianPackage).distinct().toList();
        return String.join(", ", programs) + (missing.size() == 1 ? " is" : " are") + " not installed (looked on $PATH and in "
                + String.join(", ", SYSTEM_DIRS) + "). Debian package" + (packages.size() == 1 ? "" : "s") + ": "
                + String.join(" ", packages) + ". Install with `apt-get install " + String.join(" ", packages)
                + "`, or run " + INSTALL_SCRIPT + " as root (CI's .ci/run does); tests do not install packages.";
    }

    private static List<String> searchPath() {
        List<String> dirs = new ArrayList<>();
        String path = System.getenv("PATH");
        if (path != null) {
            for (String d : path.split(":")) {
                if (!d.isEmpty() && Path.of(d).isAbsolute() && !dirs.contains(d)) {
                    dirs.add(d);
                }
            }
        }
        for (String d : SYSTEM_DIRS) {
            if (!dirs.contains(d)) {
                dirs.add(d);
            }
        }
        return dirs;
    }
}
