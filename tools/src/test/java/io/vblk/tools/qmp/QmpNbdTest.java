package io.vblk.tools.qmp;

import com.fasterxml.jackson.databind.JsonNode;
import io.vblk.aio.testing.Components;
import io.vblk.drivers.nbd.Daemons;
import io.vblk.drivers.nbd.Programs;
import io.vblk.tools.serve.ServeConfig;
import io.vblk.tools.serve.ServeDaemon;
import io.vblk.tools.serve.ServeOptionParser;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * {@code vblk serve}'s NBD side with real peers: {@code --nbd-server} + {@code --export type=nbd}
 * from the command line, and the QMP commands (nbd-server-start, block-export-add type=nbd,
 * query-block-exports, block-export-del, nbd-server-stop, blockdev-add driver=nbd); qemu-io
 * (qemu-utils), nbdinfo (libnbd-bin) and nbdkit's memory plugin (nbdkit) are the peers.
 */
@Tag("real")
@Timeout(300)
class QmpNbdTest {
    @TempDir
    Path dir;

    private Path image(long size) throws Exception {
        Path img = dir.resolve("disk.raw");
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
            f.setLength(size);
        }
        return img;
    }

    @Test
    void commandLineExportOnAnIoThread() throws Exception {
        Path img = image(32 << 20);
        String sock = dir.resolve("nbd.sock").toString();
        ServeConfig cfg = ServeOptionParser.parse(
                List.of("driver=file,node-name=d0,filename=" + img),
                List.of("iothread,id=io0"),
                List.of("type=nbd,id=e0,node-name=d0,name=disk,writable=on,iothread=io0"),
                null, false, "addr.type=unix,addr.path=" + sock);
        ServeDaemon d = ServeDaemon.start(cfg);
        try {
            String uri = "nbd+unix:///disk?socket=" + sock;
            String out = Programs.ok(Components.QEMU_IO, "-f", "raw", "-c", "write -P 0x3c 4k 128k",
                    "-c", "read -P 0x3c 4k 128k", uri);
            assertThat(out).doesNotContain("Pattern verification failed");
            assertThat(Programs.ok(Components.NBDINFO, "--list", "nbd+unix://?socket=" + sock)).contains("export=\"disk\"");
        } finally {
            assertThat(d.shutdown(Duration.ofSeconds(20))).isTrue();
        }
        byte[] got = Files.readAllBytes(img);
        assertThat(Arrays.copyOfRange(got, 4096, 4096 + (128 << 10))).containsOnly((byte) 0x3c);
    }

    @Test
    void monitorStartsTheServerAndExportsAnNbdkitNodeAgain() throws Exception {
        Path img = image(16 << 20);
        Path m0 = dir.resolve("m0.sock");
        String nbdkitSock = dir.resolve("kit.sock").toString();
        String vblkSock = dir.resolve("vblk-nbd.sock").toString();
        try (AutoCloseable kit = Daemons.nbdkit(nbdkitSock, false, "-e", "mem", "memory", "32M");
             VblkWithMonitor v = new VblkWithMonitor(List.of("driver=file,node-name=d0,filename=" + img), List.of(),
                     List.of(), m0);
             QmpClient q = QmpClient.connect(m0).negotiate()) {
            assertThat(desc(q.raw("{\"execute\": \"block-export-add\", \"arguments\": {\"type\": \"nbd\", \"id\": \"e0\","
                    + " \"node-name\": \"d0\"}}"))).isEqualTo("NBD server not running");
            ok(q.raw("{\"execute\": \"nbd-server-start\", \"arguments\": {\"addr\": {\"type\": \"unix\", \"path\": \""
                    + vblkSock + "\"}}}"));
            assertThat(desc(q.raw("{\"execute\": \"nbd-server-start\", \"arguments\": {\"addr\": {\"type\": \"unix\","
                    + " \"path\": \"" + dir.resolve("other.sock") + "\"}}}"))).isEqualTo("NBD server already running");
            ok(q.raw("{\"execute\": \"block-export-add\", \"arguments\": {\"type\": \"nbd\", \"id\": \"e0\","
                    + " \"node-name\": \"d0\", \"writable\": true}}"));
            // vblk's NBD client: a node on nbdkit's memory disk, exported again by vblk.
            ok(q.raw("{\"execute\": \"blockdev-add\", \"arguments\": {\"driver\": \"nbd\", \"node-name\": \"kit\","
                    + " \"server\": {\"type\": \"unix\", \"path\": \"" + nbdkitSock + "\"}, \"export\": \"mem\"}}"));
            ok(q.raw("{\"execute\": \"block-export-add\", \"arguments\": {\"type\": \"nbd\", \"id\": \"e1\","
                    + " \"node-name\": \"kit\", \"name\": \"viavblk\", \"writable\": true}}"));
            JsonNode exports = q.raw("{\"execute\": \"query-block-exports\"}").get("return");
            assertThat(exports.toString()).contains("\"type\":\"nbd\",\"id\":\"e0\"").contains("\"id\":\"e1\"");

            String vblk = "nbd+unix:///%s?socket=" + vblkSock;
            assertThat(Programs.ok(Components.QEMU_IO, "-f", "raw", "-c", "write -P 0x11 0 1M", "-c", "read -P 0x11 0 1M",
                    String.format(vblk, "d0"))).doesNotContain("Pattern verification failed");
            // Written through vblk's export and vblk's client into nbdkit, read back from nbdkit directly.
            assertThat(Programs.ok(Components.QEMU_IO, "-f", "raw", "-c", "write -P 0x77 3M 2M",
                    "-c", "write -z 7M 64k", String.format(vblk, "viavblk"))).doesNotContain("error");
            assertThat(Programs.ok(Components.QEMU_IO, "-f", "raw", "-r", "-c", "read -P 0x77 3M 2M",
                    "-c", "read -P 0 7M 64k", "nbd+unix:///mem?socket=" + nbdkitSock))
                    .doesNotContain("Pattern verification failed");

            ok(q.raw("{\"execute\": \"block-export-del\", \"arguments\": {\"id\": \"e1\"}}"));
            assertThat(desc(q.raw("{\"execute\": \"blockdev-del\", \"arguments\": {\"node-name\": \"d0\"}}")))
                    .isEqualTo("Node d0 is in use");
            ok(q.raw("{\"execute\": \"nbd-server-stop\"}"));
            assertThat(Programs.run(Components.NBDINFO, String.format(vblk, "d0")).exit()).isNotZero();
            assertThat(q.raw("{\"execute\": \"query-block-exports\"}").get("return").size()).isZero();
        }
        byte[] got = Files.readAllBytes(img);
        assertThat(Arrays.copyOfRange(got, 0, 1 << 20)).containsOnly((byte) 0x11);
    }

    /**
     * qemu-storage-daemon 7.2 never returns from this blockdev-add (seed 004's setting without the
     * qcow2): an NBD client node on this daemon's own export. vblk's client handshake, run on the
     * main loop, waits in a nested poll that runs the server's listener; each later channel (one per
     * client of the re-export) connects the same way.
     */
    @Test
    void blockdevAddOfAnNbdNodeOnThisDaemonsOwnExportReturnsAndServesItsData() throws Exception {
        Path img = image(16 << 20);
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
            f.seek(1 << 20);
            byte[] b = new byte[256 << 10];
            Arrays.fill(b, (byte) 0x5a);
            f.write(b);
        }
        Path m0 = dir.resolve("m0.sock");
        String sock = dir.resolve("nbd.sock").toString();
        try (VblkWithMonitor v = new VblkWithMonitor(List.of("driver=file,node-name=d0,filename=" + img), List.of(),
                     List.of(), m0);
             QmpClient q = QmpClient.connect(m0).negotiate()) {
            ok(q.raw("{\"execute\": \"nbd-server-start\", \"arguments\": {\"addr\": {\"type\": \"unix\", \"path\": \""
                    + sock + "\"}}}"));
            ok(q.raw("{\"execute\": \"block-export-add\", \"arguments\": {\"type\": \"nbd\", \"id\": \"e0\","
                    + " \"node-name\": \"d0\", \"name\": \"base\"}}"));
            ok(q.raw("{\"execute\": \"blockdev-add\", \"arguments\": {\"driver\": \"nbd\", \"node-name\": \"self\","
                    + " \"server\": {\"type\": \"unix\", \"path\": \"" + sock + "\"}, \"export\": \"base\"}}"));
            ok(q.raw("{\"execute\": \"block-export-add\", \"arguments\": {\"type\": \"nbd\", \"id\": \"e1\","
                    + " \"node-name\": \"self\", \"name\": \"again\"}}"));
            for (int i = 0; i < 2; i++) { // the second client's channel makes a new connection on the main loop
                assertThat(Programs.ok(Components.QEMU_IO, "-f", "raw", "-r", "-c", "read -P 0x5a 1M 256k",
                        "-c", "read -P 0 0 64k", "nbd+unix:///again?socket=" + sock))
                        .doesNotContain("Pattern verification failed");
            }
        }
    }

    private static void ok(JsonNode r) {
        assertThat(r.has("return")).as(r.toString()).isTrue();
    }

    private static String desc(JsonNode r) {
        assertThat(r.has("error")).as(r.toString()).isTrue();
        return r.get("error").get("desc").asText();
    }
}
