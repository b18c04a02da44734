package io.vblk.tools.qmp;

import io.vblk.virtio.vhost.QemuStorageDaemon;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Any thread (test code).
 *
 * <p>The same scripted QMP session ({@link QmpScript}) against qemu-storage-daemon, the reference
 * server, and against vblk: every reply's shape (keys and JSON types, error classes) must match,
 * so compatibility is measured against QEMU, not against our reading of its documentation.
 */
@Tag("real")
class QmpAgainstQemuStorageDaemonTest {
    @TempDir
    Path dir;

    @Test
    void everyReplyHasTheReferenceServersShape() throws Exception {
        List<Path> dirs = ReferenceServer.directories(dir, 1 << 20, "img.raw");
        Path qd = dirs.get(0);
        Path vd = dirs.get(1);
        List<String> reference;
        try (QemuStorageDaemon qsd = ReferenceServer.start(qd, "--blockdev", "driver=null-co,node-name=n0,size=67108864",
                "--object", "iothread,id=io0")) {
            reference = QmpScript.run(qd.resolve("qmp.sock"), qd);
        }
        List<String> ours;
        try (VblkWithMonitor v = new VblkWithMonitor(List.of("driver=null-co,node-name=n0,size=67108864"), List.of("iothread,id=io0"),
                List.of(), vd.resolve("qmp.sock"))) {
            ours = QmpScript.run(vd.resolve("qmp.sock"), vd);
        }
        assertThat(ours).hasSameSizeAs(reference);
        for (int i = 0; i < ours.size(); i++) {
            assertThat(ours.get(i)).as("step %d", i).isEqualTo(reference.get(i));
        }
    }
}
