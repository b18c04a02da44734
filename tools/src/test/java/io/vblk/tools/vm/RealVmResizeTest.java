package io.vblk.tools.vm;

import com.fasterxml.jackson.databind.JsonNode;
import io.vblk.aio.testing.Components;
import io.vblk.tools.serve.ServeConfig;
import io.vblk.tools.serve.ServeOptionParser;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Online resize seen by a real guest: a daemon started in this test serves a 64 MiB image to a
 * Debian guest under qemu-system-x86_64 (TCG, vhost-user-blk-pci, scripts/vm/run-guest.sh with the
 * guest job {@code grow}). When the guest says it is ready, the test resizes the node to 96 MiB
 * with QMP {@code block_resize} over the daemon's monitor socket; the guest must see
 * {@code /sys/block/vda/size} change without a reboot (QEMU re-reads the config space on
 * VHOST_USER_BACKEND_CONFIG_CHANGE_MSG and raises a config interrupt) and write and read back 1 MiB
 * past the old end.
 */
@Tag("vm")
class RealVmResizeTest {
    @TempDir
    Path dir;

    @Test
    @Timeout(value = 20, unit = TimeUnit.MINUTES)
    void aRunningGuestSeesItsDiskGrowAndUsesTheNewArea() throws Exception {
        Components.require(Components.REAL_VM);
        Path img = dir.resolve("grow.img");
        VmHost.sparseFile(img, 64L << 20);
        String sock = dir.resolve("vblk.sock").toString();
        ServeConfig cfg = ServeOptionParser.parse(List.of("driver=file,node-name=disk0,filename=" + img),
                List.of(), List.of("type=vhost-user-blk,id=vda,node-name=disk0,writable=on,addr.type=unix,addr.path=" + sock),
                null);
        VmHost vm = VmHost.serve(cfg, dir.resolve("qmp.sock"));
        CompletableFuture<Long> resized = new CompletableFuture<>();
        StringBuilder out = new StringBuilder();
        try {
            Process p = VmHost.runGuest(List.of("--socket", sock, "--job", "grow", "--timeout", "900", "--log",
                    dir.resolve("guest.log").toString()), out, line -> {
                if (line.contains("VBLK-VM grow-ready") && !resized.isDone()) {
                    // What a management layer does: QMP block_resize on the running daemon.
                    JsonNode reply = vm.blockResize("disk0", 96L << 20);
                    if (reply.has("return")) {
                        resized.complete(Files.size(img));
                    } else {
                        resized.completeExceptionally(new AssertionError("block_resize: " + reply));
                    }
                }
            });
            assertThat(resized.get(60, TimeUnit.SECONDS)).as("the node's new size").isEqualTo(96L << 20);
            assertThat(out).as("guest output").contains("VBLK-VM grow-ready sectors=131072",
                    "old_sectors=131072 new_sectors=196608", "grow_match=yes", "VBLK-VM done rc=0");
            assertThat(p.exitValue()).as("guest rc; output:\n" + out).isZero();
            assertThat(Files.size(img)).isEqualTo(96L << 20);
        } finally {
            assertThat(vm.stop(Duration.ofSeconds(30))).isTrue();
        }
    }
}
