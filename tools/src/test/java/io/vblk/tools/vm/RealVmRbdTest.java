package io.vblk.tools.vm;

import com.fasterxml.jackson.databind.JsonNode;
import io.vblk.aio.testing.Components;
import io.vblk.drivers.rbd.CephCluster;
import io.vblk.tools.serve.ServeConfig;
import io.vblk.tools.serve.ServeOptionParser;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * A real guest on a Ceph RBD image: a single-node cluster ({@link CephCluster}) holds a 64 MiB
 * image, a daemon started in this test serves it ({@code driver=rbd} behind a vhost-user-blk export
 * on an IoThread, plus a QMP monitor), and the Debian test guest boots under qemu-system-x86_64
 * (TCG) through scripts/vm/run-guest.sh with the jobs {@code fio-verify} (fio crc32c write+verify,
 * sequential and random), {@code write-marker} (64 KiB of known text 1 MiB before the end, written
 * with O_DIRECT and fsync) and {@code grow}. When the guest says it is ready to grow, the test
 * resizes the node to 96 MiB with QMP {@code block_resize}: the image grows, the guest sees its disk
 * grow without a reboot and writes and reads back 1 MiB past the old end. After the guest powered
 * off and the daemon stopped, {@code rbd export} of the image holds the marker the guest wrote,
 * byte for byte, at the offset it named, and is 96 MiB long.
 */
@Tag("vm")
class RealVmRbdTest {
    private static final long SIZE = 64L << 20;
    private static final long GROWN = 96L << 20;
    private static final String MARKER = "rbd-vm-marker";

    @TempDir
    Path dir;

    @Test
    @Timeout(value = 25, unit = TimeUnit.MINUTES)
    void aRealGuestVerifiesItsWritesOnAnRbdImageAndRbdExportHoldsThem() throws Exception {
        Components.require(Components.REAL_VM);
        try (CephCluster cluster = CephCluster.start(dir.resolve("ceph"))) {
            String image = CephCluster.POOL + "/vm-disk";
            cluster.rbd("create", "--size", (SIZE >> 20) + "M", image);
            String sock = dir.resolve("vblk.sock").toString();
            ServeConfig cfg = ServeOptionParser.parse(
                    List.of("driver=rbd,node-name=disk0,pool=" + CephCluster.POOL + ",image=vm-disk,conf=" + cluster.conf()),
                    List.of("iothread,id=io0"),
                    List.of("type=vhost-user-blk,id=vda,node-name=disk0,writable=on,iothread=io0,addr.type=unix,addr.path=" + sock),
                    null);
            VmHost vm = VmHost.serve(cfg, dir.resolve("qmp.sock"));
            StringBuilder out = new StringBuilder();
            CompletableFuture<Void> resized = new CompletableFuture<>();
            try {
                Process p = VmHost.runGuest(List.of("--socket", sock, "--job", "fio-verify,write-marker,grow", "--marker", MARKER,
                        "--fio-size", "16M", "--expect-size", Long.toString(SIZE), "--timeout", "1200", "--log",
                        dir.resolve("guest.log").toString()), out, line -> {
                    if (line.contains("VBLK-VM grow-ready") && !resized.isDone()) {
                        JsonNode reply = vm.blockResize("disk0", GROWN);
                        if (reply.has("return")) {
                            resized.complete(null);
                        } else {
                            resized.completeExceptionally(new AssertionError("block_resize: " + reply));
                        }
                    }
                });
                out.toString().lines().filter(l -> l.contains("VBLK-")).forEach(System.out::println);
                resized.get(60, TimeUnit.SECONDS);
                assertThat(p.exitValue()).as("guest rc; output:\n" + out).isZero();
                assertThat(out).as("guest output").contains("VBLK-VM disk size_bytes=" + SIZE,
                        "old_sectors=" + SIZE / 512 + " new_sectors=" + GROWN / 512, "grow_match=yes", "VBLK-VM done rc=0");
                assertThat(VmHost.stepsPassed(out)).as("guest steps (check, 2 fio verify, marker, grow)").isEqualTo(5);
                assertThat(VmHost.fioVerifyPassed(out, Pattern.compile("VBLK-VM step name=fio-verify-\\S+ rc=0 \\S+ fio_rc=(\\d+) err=(\\S+)")))
                        .as("both fio verify jobs reported").isEqualTo(2);
                assertThat(vm.stop(Duration.ofSeconds(60))).as("the daemon stopped").isTrue();
            } finally {
                vm.stop(Duration.ofSeconds(60));
            }

            // What the guest wrote is in the cluster: rbd export (librbd in another process) holds it.
            Matcher m = Pattern.compile("step name=write-marker rc=0 \\S+ offset=(\\d+) bytes=(\\d+) md5=([0-9a-f]{32})")
                    .matcher(out);
            assertThat(m.find()).as("write-marker step in:\n" + out).isTrue();
            long offset = Long.parseLong(m.group(1));
            int bytes = Integer.parseInt(m.group(2));
            assertThat(offset).isEqualTo(SIZE - (1 << 20));
            Path exported = dir.resolve("vm-disk.raw");
            cluster.rbd("export", "--no-progress", image, exported.toString());
            byte[] all = Files.readAllBytes(exported);
            assertThat((long) all.length).as("exported image size (grown)").isEqualTo(GROWN);
            byte[] region = Arrays.copyOfRange(all, (int) offset, (int) offset + bytes);
            byte[] marker = marker();
            assertThat(marker.length).isEqualTo(bytes);
            assertThat(HexFormat.of().formatHex(MessageDigest.getInstance("MD5").digest(marker)))
                    .as("the marker rebuilt here is the guest's").isEqualTo(m.group(3));
            assertThat(Arrays.mismatch(region, marker)).as("first byte where rbd export differs from the guest's marker")
                    .isEqualTo(-1);
        }
    }

    /** The guest's write-marker content (scripts/vm/guest/init make_marker): 1024 lines of 64 bytes. */
    private static byte[] marker() {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < 1024; i++) {
            sb.append(String.format(Locale.ROOT, "VBLK-MARKER %-24s %08d %17s\n", MARKER, i, ""));
        }
        return sb.toString().getBytes(StandardCharsets.US_ASCII);
    }
}
