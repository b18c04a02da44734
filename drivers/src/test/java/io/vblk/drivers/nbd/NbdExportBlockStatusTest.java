package io.vblk.drivers.nbd;

import io.vblk.aio.testing.Components;
import io.vblk.drivers.spec.DriverSpec;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * NBD {@code base:allocation} block status on vblk's export of a sparse raw file, read by real
 * clients (Debian libnbd-bin, qemu-utils): {@code nbdinfo --map} (NBD_OPT_SET_META_CONTEXT, then
 * NBD_CMD_BLOCK_STATUS) and {@code qemu-img map} over NBD each see the file's data and holes as
 * {@code qemu-img map} of the file itself does; {@code nbdinfo --json} lists the context
 * (NBD_OPT_LIST_META_CONTEXT).
 */
@Tag("real")
@Timeout(120)
class NbdExportBlockStatusTest {
    private static final long SIZE = 64L << 20;
    private static final long MIB = 1 << 20;

    @TempDir
    Path dir;

    /** (start, length, data) runs, merged where neighbours agree. */
    private record Run(long start, long length, boolean data) {
    }

    private static List<Run> merge(List<Run> runs) {
        List<Run> out = new ArrayList<>();
        for (Run r : runs) {
            Run last = out.isEmpty() ? null : out.getLast();
            if (last != null && last.data == r.data && last.start + last.length == r.start) {
                out.set(out.size() - 1, new Run(last.start, last.length + r.length, r.data));
            } else {
                out.add(r);
            }
        }
        return out;
    }

    private static List<Run> qemuImgMap(String... target) throws IOException {
        String[] args = new String[4 + target.length];
        args[0] = "map";
        args[1] = "--output=json";
        args[2] = "-f";
        args[3] = "raw";
        System.arraycopy(target, 0, args, 4, target.length);
        // One object per line: { "start": N, "length": N, "depth": N, "present": B, "zero": B, "data": B, ...}
        Matcher m = Pattern.compile("\"start\": (\\d+), \"length\": (\\d+),[^}]*\"data\": (true|false)")
                .matcher(Programs.ok(Components.QEMU_IMG, args));
        List<Run> runs = new ArrayList<>();
        while (m.find()) {
            runs.add(new Run(Long.parseLong(m.group(1)), Long.parseLong(m.group(2)), m.group(3).equals("true")));
        }
        return merge(runs);
    }

    @Test
    void nbdinfoMapAndQemuImgMapSeeTheSparseFilesDataAndHoles() throws IOException {
        Path img = dir.resolve("sparse.raw");
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
            f.setLength(SIZE);
            byte[] b = new byte[(int) (2 * MIB)];
            Arrays.fill(b, (byte) 0x7e);
            f.seek(MIB);
            f.write(b, 0, 64 << 10);
            f.seek(10 * MIB);
            f.write(b);
        }
        List<Run> expected = List.of(new Run(0, MIB, false), new Run(MIB, 64 << 10, true),
                new Run(MIB + (64 << 10), 9 * MIB - (64 << 10), false), new Run(10 * MIB, 2 * MIB, true),
                new Run(12 * MIB, SIZE - 12 * MIB, false));
        assertThat(qemuImgMap(img.toString())).as("qemu-img map of the file itself").isEqualTo(expected);
        try (NbdFixture s = new NbdFixture(dir, DriverSpec.open("file:" + img), "disk", true)) {
            String map = Programs.ok(Components.NBDINFO, "--map", s.uri("disk"));
            System.out.println(map);
            List<Run> runs = new ArrayList<>();
            for (String line : map.strip().split("\n")) {
                String[] w = line.trim().split("\\s+");
                int flags = Integer.parseInt(w[2]);
                runs.add(new Run(Long.parseLong(w[0]), Long.parseLong(w[1]), flags == 0));
                assertThat(flags).as(line).isIn(0, 3); // data, or hole+zero
            }
            assertThat(merge(runs)).as("nbdinfo --map").isEqualTo(expected);
            assertThat(qemuImgMap(s.uri("disk"))).as("qemu-img map over NBD").isEqualTo(expected);
            assertThat(Programs.ok(Components.NBDINFO, "--json", s.uri("disk"))).contains("base:allocation");
        }
    }
}
