package io.vblk.tools.qmp;

import com.fasterxml.jackson.databind.JsonNode;
import io.vblk.guest.BlkSlot;
import io.vblk.guest.GuestBlkDriver;
import io.vblk.guest.GuestBlkQueue;
import io.vblk.guest.vhost.VhostUserTransport;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.RandomAccessFile;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Home thread: the test thread.
 *
 * <p>The monitor and the error policies together, as a management layer sees them: a write that
 * fails with ENOSPC stops the device (werror's default, enospc), every monitor gets QEMU's
 * BLOCK_IO_ERROR, {@code cont} re-runs the held write, and {@code block_resize} grows the image.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class QmpErrorPolicyTest {
    @TempDir
    Path dir;

    @Test
    void enospcStopsTheDeviceReportsBlockIoErrorAndContResumesIt() throws Exception {
        Path img = dir.resolve("disk.img");
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
            f.setLength(8L << 20);
        }
        Path m0 = dir.resolve("m0.sock");
        String sock = dir.resolve("e0.sock").toString();
        try (VblkWithMonitor vblk = new VblkWithMonitor(
                List.of("driver=blkdebug,node-name=bd,image.driver=file,image.filename=" + img
                        + ",inject-error.0.event=write_aio,inject-error.0.errno=ENOSPC,inject-error.0.once=on"),
                List.of("iothread,id=io0"),
                List.of("type=vhost-user-blk,id=e0,node-name=bd,addr.type=unix,addr.path=" + sock + ",writable=on,iothread=io0"),
                m0);
             QmpClient q = QmpClient.connect(m0).negotiate();
             VhostUserTransport t = VhostUserTransport.connect(sock, Duration.ofSeconds(10));
             GuestBlkDriver g = GuestBlkDriver.attach(t, GuestBlkDriver.Options.defaults())) {
            GuestBlkQueue gq = g.queue(0);
            BlkSlot s = gq.acquire();
            byte[] data = new byte[4096];
            for (int i = 0; i < data.length; i++) {
                data[i] = (byte) (i * 31 + 5);
            }
            MemorySegment.copy(MemorySegment.ofArray(data), 0, s.data(), 0, data.length);
            int[] status = {-1};
            gq.onCompletion((slot, st, len) -> status[0] = st);
            gq.postWrite(s, 16, 4096, 1);
            gq.kick();

            JsonNode ev = q.awaitEvent("BLOCK_IO_ERROR");
            JsonNode d = ev.get("data");
            assertThat(d.get("device").asText()).isEqualTo("e0");
            assertThat(d.get("node-name").asText()).isEqualTo("bd");
            assertThat(d.get("operation").asText()).isEqualTo("write");
            assertThat(d.get("action").asText()).isEqualTo("stop");
            assertThat(d.get("nospace").asBoolean()).isTrue();
            assertThat(ev.get("timestamp").has("seconds")).isTrue();
            assertThat(q.awaitEvent("STOP").get("event").asText()).isEqualTo("STOP");
            assertThat(q.execute("query-status", null).get("return").get("status").asText()).isEqualTo("io-error");
            assertThat(gq.awaitCompletions(1, 300)).as("held while stopped").isZero();

            assertThat(q.execute("cont", null).has("return")).isTrue();
            q.awaitEvent("RESUME");
            assertThat(gq.awaitCompletions(1, 10_000)).as("re-run after cont").isEqualTo(1);
            assertThat(status[0]).isZero();
            try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "r")) {
                byte[] got = new byte[4096];
                f.seek(16 * 512);
                f.readFully(got);
                assertThat(got).isEqualTo(data);
            }

            JsonNode r = q.raw("{\"execute\": \"block_resize\", \"arguments\": {\"node-name\": \"bd\", \"size\": 16777216}}");
            assertThat(r.has("return")).as(r.toString()).isTrue();
            assertThat(Files.size(img)).as("the image grew").isEqualTo(16L << 20);
        }
    }
}
