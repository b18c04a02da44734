package io.vblk.drivers.nbd;

import io.vblk.aio.testing.Components;
import io.vblk.drivers.spec.DriverSpec;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * vblk's NBD export driven by real clients: libnbd's nbdinfo and nbdcopy, QEMU's qemu-img and
 * qemu-io (Debian libnbd-bin, qemu-utils). The export serves a raw file through the file driver;
 * what the clients write is checked in the file itself, and what they read against the file.
 */
@Tag("real")
@Timeout(300)
class NbdExportRealPeerTest {
    private static final long SIZE = 64L << 20;

    @TempDir
    Path dir;

    private Path image() throws IOException {
        Path img = dir.resolve("disk.raw");
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
            f.setLength(SIZE);
        }
        return img;
    }

    @Test
    void nbdinfoSeesTheExport() throws IOException {
        Path img = image();
        try (NbdFixture s = new NbdFixture(dir, DriverSpec.open("file:" + img), "disk", true)) {
            String json = Programs.ok(Components.NBDINFO, "--json", s.uri("disk"));
            assertThat(json).contains("\"export-size\": " + SIZE).contains("\"is_read_only\": false")
                    .contains("\"can_flush\": true").contains("\"can_fua\": true").contains("\"can_trim\": true")
                    .contains("\"can_zero\": true");
            String list = Programs.ok(Components.NBDINFO, "--list", "nbd+unix://?socket=" + s.socket);
            assertThat(list).contains("export=\"disk\"");
            // An unknown export name is refused with NBD_REP_ERR_UNKNOWN, the server lives on.
            Programs.Result bad = Programs.run(Components.NBDINFO, s.uri("nosuch"));
            assertThat(bad.exit()).isNotZero();
            assertThat(Programs.ok(Components.NBDINFO, "--size", s.uri("disk")).trim()).isEqualTo(Long.toString(SIZE));
        }
    }

    @Test
    void qemuIoWritesAndReadsPatterns() throws IOException {
        Path img = image();
        try (NbdFixture s = new NbdFixture(dir, DriverSpec.open("file:" + img), "disk", true)) {
            String out = Programs.ok(Components.QEMU_IO, "-f", "raw",
                    "-c", "write -P 0xab 0 1M", "-c", "write -P 0xcd 1M 64k", "-c", "write -P 0x5a -f 3M 4k",
                    "-c", "write -z 8M 1M", "-c", "flush",
                    "-c", "read -P 0xab 0 1M", "-c", "read -P 0xcd 1M 64k", "-c", "read -P 0x5a 3M 4k",
                    s.uri("disk"));
            assertThat(out).doesNotContain("Pattern verification failed").doesNotContain("error");
            byte[] got = Files.readAllBytes(img);
            assertThat(range(got, 0, 1 << 20)).containsOnly((byte) 0xab);
            assertThat(range(got, 1 << 20, 64 << 10)).containsOnly((byte) 0xcd);
            assertThat(range(got, 3 << 20, 4096)).containsOnly((byte) 0x5a);
            // Reading past the end is refused by the server; qemu-io reports the error.
            Programs.Result past = Programs.run(Components.QEMU_IO, "-f", "raw", "-c", "read 64M 4k", s.uri("disk"));
            assertThat(past.output()).containsIgnoringCase("error");
        }
    }

    @Test
    void qemuImgInfoAndCompare() throws IOException {
        Path img = image();
        byte[] data = new byte[4 << 20];
        new Random(15).nextBytes(data);
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
            f.seek(5 << 20);
            f.write(data);
        }
        try (NbdFixture s = new NbdFixture(dir, DriverSpec.open("file:" + img), "disk", false)) {
            String info = Programs.ok(Components.QEMU_IMG, "info", s.uri("disk"));
            assertThat(info).contains("virtual size: 64 MiB");
            Programs.ok(Components.QEMU_IMG, "compare", "-f", "raw", "-F", "raw", img.toString(), s.uri("disk"));
            // A read-only export refuses writes with EPERM.
            Programs.Result w = Programs.run(Components.QEMU_IO, "-f", "raw", "-c", "write -P 1 0 4k", s.uri("disk"));
            assertThat(w.exit() != 0 || w.output().contains("error") || w.output().contains("denied")
                    || w.output().contains("read-only")).as(w.output()).isTrue();
        }
    }

    @Test
    void nbdcopyRoundTrip() throws IOException {
        Path img = image();
        Path src = dir.resolve("src.raw");
        byte[] data = new byte[(int) SIZE];
        new Random(4).nextBytes(data);
        Arrays.fill(data, 10 << 20, 20 << 20, (byte) 0); // a zero stretch: nbdcopy may write it as zeroes
        Files.write(src, data);
        Path back = dir.resolve("back.raw");
        try (NbdFixture s = new NbdFixture(dir, DriverSpec.open("file:" + img), "disk", true)) {
            Programs.ok(Components.NBDCOPY, src.toString(), s.uri("disk"));
            assertThat(Files.mismatch(src, img)).isEqualTo(-1L);
            Programs.ok(Components.NBDCOPY, s.uri("disk"), back.toString());
            assertThat(Files.mismatch(src, back)).isEqualTo(-1L);
        }
    }

    @Test
    void tcpExportServesQemuIoAndVblksOwnClient() throws IOException {
        Path img = image();
        try (NbdFixture s = new NbdFixture((String) null, DriverSpec.open("file:" + img), "disk", true)) {
            String uri = "nbd://127.0.0.1:" + s.port + "/disk";
            assertThat(Programs.ok(Components.QEMU_IO, "-f", "raw", "-c", "write -P 0x42 64k 64k", "-c",
                    "read -P 0x42 64k 64k", uri)).doesNotContain("Pattern verification failed");
            assertThat(Programs.ok(Components.NBDINFO, "--size", uri).trim()).isEqualTo(Long.toString(SIZE));
            // vblk's client over TCP (server.type=inet) sees the same size and data.
            try (io.vblk.drivers.BlockDriver d = DriverSpec.open("nbd:server.type=inet,server.host=127.0.0.1,server.port="
                    + s.port + ",export=disk")) {
                assertThat(d.length()).isEqualTo(SIZE);
                assertThat(d.readOnly()).isFalse();
            }
        }
        assertThat(range(Files.readAllBytes(img), 64 << 10, 64 << 10)).containsOnly((byte) 0x42);
    }

    private static byte[] range(byte[] b, int off, int len) {
        return Arrays.copyOfRange(b, off, off + len);
    }
}
