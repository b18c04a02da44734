package io.vblk.drivers.qcow2;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * {@link Qcow2Create}'s empty images are qcow2 as QEMU reads them: {@code qemu-img check} finds no
 * error or leak, {@code qemu-img info} the size and version, {@code qemu-io} writes and reads back
 * a pattern and reads zeroes elsewhere (Debian qemu-utils).
 */
@Tag("real")
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class Qcow2CreateTest {
    @TempDir
    Path dir;

    @Test
    void anEmptyImageIsCleanForQemuImgAndQemuIoWritesAndReadsIt() throws Exception {
        for (long size : new long[] {64L << 20, (1L << 30) + 512, 3L << 40}) {
            Path p = dir.resolve("e" + size + ".qcow2");
            Qcow2Create.create(p, size);
            assertThat(QemuImg.imgOk("check", p.toString())).contains("No errors were found on the image.");
            assertThat(QemuImg.imgOk("info", p.toString())).contains("(" + size + " bytes)").contains("compat: 1.1")
                    .contains("cluster_size: 65536");
            String io = QemuImg.ioOk("-f", "qcow2", "-c", "write -P 0x42 1M 128k", "-c", "read -P 0x42 1M 128k",
                    "-c", "read -P 0 0 1M", p.toString());
            assertThat(io).doesNotContain("Pattern verification failed");
            assertThat(QemuImg.imgOk("check", p.toString())).contains("No errors were found on the image.");
        }
        assertThatThrownBy(() -> Qcow2Create.create(dir.resolve("bad.qcow2"), 1000))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("multiple of 512");
    }
}
