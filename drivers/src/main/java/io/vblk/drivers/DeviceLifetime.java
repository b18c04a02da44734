package io.vblk.drivers;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Any thread: immutable.
 *
 * <p>A storage device's wear estimate, in the encoding eMMC (JESD84-B51 EXT_CSD PRE_EOL_INFO and
 * DEVICE_LIFE_TIME_EST_TYP_A/B) and UFS (health descriptor bPreEOLInfo, bDeviceLifeTimeEstA/B)
 * share, which virtio-blk's GET_LIFETIME reply copies (virtio 1.2 section 5.2.6,
 * {@code struct virtio_blk_lifetime}).
 *
 * @param preEolInfo 0 undefined, 1 normal, 2 warning (80% of reserved blocks used), 3 urgent
 * @param typA       wear of type A (SLC) cells in 10% steps: 0 undefined, 1 = up to 10% ... 11 = exceeded
 * @param typB       the same for type B (MLC) cells
 */
public record DeviceLifetime(int preEolInfo, int typA, int typB) {
    /** What a device reports when the host does not know: every field "undefined" (0), as the spec allows. */
    public static final DeviceLifetime UNDEFINED = new DeviceLifetime(0, 0, 0);

    public DeviceLifetime {
        // Values outside the defined ranges are reported as undefined rather than passed on.
        preEolInfo = preEolInfo >= 0 && preEolInfo <= 3 ? preEolInfo : 0;
        typA = typA >= 0 && typA <= 11 ? typA : 0;
        typB = typB >= 0 && typB <= 11 ? typB : 0;
    }

    public boolean defined() {
        return preEolInfo != 0 || typA != 0 || typB != 0;
    }

    /**
     * Reads the estimate of the block device {@code sysBlock} ({@code /sys/class/block/NAME}; a
     * partition is looked up on its whole disk). eMMC: {@code device/life_time} ("0x01 0x02": A, B)
     * and {@code device/pre_eol_info}; UFS: {@code health_descriptor/life_time_estimation_a},
     * {@code _b} and {@code eol_info} on the device or one of its parents (the host controller).
     * {@link #UNDEFINED} when neither is there or a file cannot be parsed. Blocks in file reads:
     * call on a control path, never a loop's request path.
     */
    public static DeviceLifetime fromSysfs(Path sysBlock) {
        try {
            Path dev = sysBlock;
            if (Files.exists(dev.resolve("partition")) && dev.getParent() != null) {
                dev = dev.toRealPath().getParent();
            }
            Path d = dev.resolve("device");
            Path lifeTime = d.resolve("life_time");
            if (Files.isReadable(lifeTime)) {
                String[] ab = Files.readString(lifeTime).trim().split("\\s+");
                int pre = Files.isReadable(d.resolve("pre_eol_info")) ? hex(Files.readString(d.resolve("pre_eol_info"))) : 0;
                return new DeviceLifetime(pre, hex(ab[0]), ab.length > 1 ? hex(ab[1]) : 0);
            }
            if (Files.exists(d)) {
                for (Path p = d.toRealPath(); p != null && p.getNameCount() > 2; p = p.getParent()) {
                    Path h = p.resolve("health_descriptor");
                    if (Files.isReadable(h.resolve("life_time_estimation_a"))) {
                        return new DeviceLifetime(readHex(h.resolve("eol_info")),
                                readHex(h.resolve("life_time_estimation_a")), readHex(h.resolve("life_time_estimation_b")));
                    }
                }
            }
        } catch (IOException | RuntimeException e) {
            return UNDEFINED;
        }
        return UNDEFINED;
    }

    private static int readHex(Path p) throws IOException {
        return Files.isReadable(p) ? hex(Files.readString(p)) : 0;
    }

    /** "0x0a", "0A" or "10" (sysfs prints either); -1 when unreadable, which the record turns into 0. */
    private static int hex(String s) {
        String t = s.trim().toLowerCase(java.util.Locale.ROOT);
        try {
            return t.startsWith("0x") ? Integer.parseInt(t.substring(2), 16) : Integer.parseInt(t);
        } catch (NumberFormatException e) {
            return -1;
        }
    }
}
