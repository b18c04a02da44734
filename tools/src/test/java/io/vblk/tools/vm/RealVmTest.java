package io.vblk.tools.vm;

import io.vblk.aio.testing.Components;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * A real VM on {@code vblk serve}: scripts/vm/suite.sh boots a small Debian guest under
 * qemu-system-x86_64 (TCG) with vhost-user-blk-pci on a vblk socket, once with 1 queue and once with
 * 2 (disk size and queue count, fio crc32c write+verify, random read and write, FLUSH with the guest
 * cache in writeback), and once with the backend restarted between two boots on the same image (a
 * marker written by the first boot is read back by the second). The host programs are found through
 * {@link Components} (a missing one fails the test naming its package); scripts/vm/setup.sh builds
 * the guest's initramfs from them and from the guest kernel that scripts/install-test-deps.sh
 * fetched, and fails naming that script when the kernel is not there.
 *
 * <p>The backend is this build's {@code vblk serve}, started from the compiled classes.
 */
@Tag("vm")
class RealVmTest {
    private static final Path ROOT = VmHost.ROOT;

    @Test
    @Timeout(value = 25, unit = TimeUnit.MINUTES)
    void guestRunsFioOnVblkWithOneAndTwoQueuesAndAcrossABackendRestart() throws Exception {
        setup();

        String out = suite(List.of("--keep"), 20, "suite");

        assertThat(out).contains("VBLK-SUITE test=q1 status=pass", "VBLK-SUITE test=q2 status=pass",
                "VBLK-SUITE test=restart status=pass", "3 passed, 0 failed");
        assertThat(out).contains("queues=1 ").contains("queues=2 ").contains("match=yes");
        int n = VmHost.stepsPassed(out);
        assertThat(n).isGreaterThanOrEqualTo(12);

        // The guest flushed with its cache in writeback: the flushes reached vblk's device.
        Path workdir = Path.of(out.replaceAll("(?s).*logs and images kept in (\\S+).*", "$1"));
        for (String test : List.of("q1", "q2")) {
            String backend = Files.readString(workdir.resolve(test + ".backend.log"));
            Matcher m = Pattern.compile("export \\S+ served reads=(\\d+) writes=(\\d+) flushes=(\\d+)").matcher(backend);
            assertThat(m.find()).as(test + " backend summary in:\n" + backend).isTrue();
            assertThat(Long.parseLong(m.group(3))).as(test + " flushes that reached vblk").isGreaterThanOrEqualTo(32);
            assertThat(Long.parseLong(m.group(2))).as(test + " writes").isPositive();
        }
        VmHost.deleteDir(workdir);
    }

    /**
     * Crash recovery under a real guest (scripts/vm/suite.sh {@code --only crash}): fio writes with
     * crc32c verification at QD4 and QD16 while {@code vblk serve} is SIGKILLed and restarted on the
     * same socket ten times; QEMU reconnects and hands each new daemon the inflight buffer. The guest
     * must finish with no verify error and no hung request.
     */
    @Test
    @Timeout(value = 15, unit = TimeUnit.MINUTES)
    void guestSurvivesTenKillsOfTheDaemonDuringVerifiedWrites() throws Exception {
        setup();
        String out = suite(List.of("--only", "crash"), 12, "crash");
        assertThat(out).contains("VBLK-SUITE crash kills=10", "VBLK-SUITE test=crash status=pass", "1 passed, 0 failed");
        assertThat(VmHost.fioVerifyPassed(out, Pattern.compile("VBLK-VM step name=fio-verify-\\S+ rc=\\d+ \\S+ fio_rc=(\\d+) err=(\\S+)")))
                .as("both verify jobs reported").isEqualTo(2);
    }

    /**
     * Packed virtqueues under a real guest (scripts/vm/suite.sh {@code --only packed}): QEMU's
     * vhost-user-blk-pci with {@code packed=on} and 2 queues; the guest's virtio driver runs its
     * packed-ring code against vblk's PackedQueue through fio crc32c write+verify, random read and
     * write, and FLUSH. The backend's log shows the packed rings were negotiated.
     */
    @Test
    @Timeout(value = 15, unit = TimeUnit.MINUTES)
    void guestRunsFioVerifyOnPackedVirtqueues() throws Exception {
        setup();
        String out = suite(List.of("--only", "packed", "--keep"), 12, "packed");
        assertThat(out).contains("VBLK-SUITE test=packed status=pass", "1 passed, 0 failed", "queues=2 ");
        assertGuestRanFioVerify(out);
        Path workdir = Path.of(out.replaceAll("(?s).*logs and images kept in (\\S+).*", "$1"));
        String backend = Files.readString(workdir.resolve("packed.backend.log"));
        assertThat(backend).contains("packed rings");
        Matcher m = Pattern.compile("export \\S+ served reads=(\\d+) writes=(\\d+) flushes=(\\d+)").matcher(backend);
        assertThat(m.find()).as("backend summary in:\n" + backend).isTrue();
        assertThat(Long.parseLong(m.group(2))).as("writes").isPositive();
        VmHost.deleteDir(workdir);
    }

    /**
     * A real guest on a qcow2 node (scripts/vm/suite.sh {@code --only qcow2}): {@code vblk serve}
     * exports a fresh 1 GiB image made by {@code qemu-img create -f qcow2}; the guest runs fio crc32c
     * write+verify, random read and write and FLUSH on it; after the daemon stopped,
     * {@code qemu-img check} finds no error in the image vblk's qcow2 driver wrote.
     */
    @Test
    @Timeout(value = 15, unit = TimeUnit.MINUTES)
    void guestRunsFioVerifyOnAQcow2NodeAndQemuImgCheckFindsTheImageClean() throws Exception {
        setup();
        String out = suite(List.of("--only", "qcow2"), 12, "qcow2");
        assertThat(out).contains("VBLK-SUITE test=qcow2 status=pass", "1 passed, 0 failed", "queues=1 ",
                "VBLK-SUITE qcow2 check=clean", "No errors were found on the image.");
        assertGuestRanFioVerify(out);
    }

    /** At least 4 guest steps, all passed, and a fio verify step with no verify error. */
    private static void assertGuestRanFioVerify(String out) {
        assertThat(VmHost.stepsPassed(out)).as("guest steps reported").isGreaterThanOrEqualTo(4);
        Matcher verify = Pattern.compile("VBLK-VM step name=fio-verify\\S* rc=\\d+ .*err=(\\S+)").matcher(out);
        assertThat(verify.find()).as("fio verify step in:\n" + out).isTrue();
        assertThat(verify.group(1)).as("fio verify errors").isEqualTo("0");
    }

    /** The real-VM programs (a missing one fails naming its package), then scripts/vm/setup.sh: the guest's initramfs (at most 15 min). */
    static void setup() throws Exception {
        Components.require(Components.REAL_VM);
        run(List.of(ROOT.resolve("scripts/vm/setup.sh").toString()), 15, "setup");
    }

    /** scripts/vm/suite.sh on this build's {@code vblk serve} with {@code args}; its output. */
    private static String suite(List<String> args, int minutes, String what) throws Exception {
        List<String> cmd = new ArrayList<>(List.of(ROOT.resolve("scripts/vm/suite.sh").toString(), "--exec", serveCommand()));
        cmd.addAll(args);
        return run(cmd, minutes, what);
    }

    static String serveCommand() throws Exception {
        return vblkCommand() + " serve";
    }

    /** The build under test as a {@code vblk} command (the scripts split it on spaces). */
    static String vblkCommand() throws Exception {
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        Path tools = ROOT.resolve("tools/target");
        String cp = tools.resolve("classes") + ":" + Files.readString(tools.resolve("test-classpath.txt")).trim();
        return java + " --enable-native-access=ALL-UNNAMED -cp " + cp + " io.vblk.tools.Main";
    }

    static String run(List<String> cmd, int minutes, String what) throws Exception {
        Path log = Files.createTempFile("vblk-vm-" + what, ".log");
        Process p = new ProcessBuilder(cmd).directory(ROOT.toFile()).redirectErrorStream(true)
                .redirectOutput(log.toFile()).start();
        boolean done = p.waitFor(minutes, TimeUnit.MINUTES);
        if (!done) {
            p.descendants().forEach(ProcessHandle::destroyForcibly);
            p.destroyForcibly().waitFor(30, TimeUnit.SECONDS);
        }
        String out = Files.readString(log);
        System.out.println(out.lines().filter(l -> l.startsWith("VBLK-") || l.contains("passed")
                || l.contains("error")).reduce("", (a, b) -> a + b + "\n"));
        assertThat(done).as(what + " finished within " + minutes + " min; output:\n" + out).isTrue();
        assertThat(p.exitValue()).as(what + " exit status; output:\n" + out).isZero();
        Files.delete(log);
        return out;
    }
}
