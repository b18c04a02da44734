package io.vblk.drivers;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The sysfs lookup behind GET_LIFETIME, on sysfs-shaped trees: eMMC (life_time + pre_eol_info on
 * the card), UFS (health_descriptor on the host controller above the disk), a partition looked up
 * on its disk, and a disk with neither.
 */
@Timeout(10)
class DeviceLifetimeTest {
    @Test
    void emmcCardWithPartition(@TempDir Path sys) throws Exception {
        Path disk = sys.resolve("mmcblk0");
        Path card = Files.createDirectories(disk.resolve("device"));
        Files.writeString(card.resolve("life_time"), "0x02 0x05\n");
        Files.writeString(card.resolve("pre_eol_info"), "0x01\n");
        Path part = Files.createDirectories(disk.resolve("mmcblk0p1"));
        Files.writeString(part.resolve("partition"), "1\n");
        assertThat(DeviceLifetime.fromSysfs(disk)).isEqualTo(new DeviceLifetime(1, 2, 5));
        assertThat(DeviceLifetime.fromSysfs(part)).isEqualTo(new DeviceLifetime(1, 2, 5));
    }

    @Test
    void ufsHealthDescriptorOnTheHost(@TempDir Path sys) throws Exception {
        Path host = Files.createDirectories(sys.resolve("platform/ufshc"));
        Path health = Files.createDirectories(host.resolve("health_descriptor"));
        Files.writeString(health.resolve("life_time_estimation_a"), "0x03\n");
        Path dev = Files.createDirectories(host.resolve("host0/target0/0:0:0:0"));
        Path disk = Files.createDirectories(sys.resolve("class/sda"));
        Files.createSymbolicLink(disk.resolve("device"), dev);
        assertThat(DeviceLifetime.fromSysfs(disk)).isEqualTo(new DeviceLifetime(0, 3, 0));
        Files.writeString(health.resolve("eol_info"), "0x02\n");
        Files.writeString(health.resolve("life_time_estimation_b"), "0x0b\n");
        assertThat(DeviceLifetime.fromSysfs(disk)).isEqualTo(new DeviceLifetime(2, 3, 11));
    }

    @Test
    void diskWithoutEstimatesAndGarbageAreUndefined(@TempDir Path sys) throws Exception {
        Path disk = sys.resolve("vda");
        Files.createDirectories(disk.resolve("device"));
        assertThat(DeviceLifetime.fromSysfs(disk)).isEqualTo(DeviceLifetime.UNDEFINED);
        Files.writeString(disk.resolve("device/life_time"), "bogus\n");
        assertThat(DeviceLifetime.fromSysfs(disk)).isEqualTo(DeviceLifetime.UNDEFINED);
        assertThat(DeviceLifetime.fromSysfs(sys.resolve("missing"))).isEqualTo(DeviceLifetime.UNDEFINED);
    }
}
