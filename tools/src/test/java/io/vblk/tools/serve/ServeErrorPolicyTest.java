package io.vblk.tools.serve;

import io.vblk.guest.BlkSlot;
import io.vblk.guest.GuestBlkDriver;
import io.vblk.guest.GuestBlkQueue;
import io.vblk.guest.vhost.VhostUserTransport;
import io.vblk.tools.Main;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.RandomAccessFile;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * Home thread: the test thread.
 *
 * <p>werror / rerror and the blkdebug driver through {@code vblk serve}, with the vhost-user front
 * end as the guest: an injected error reaches the guest as the export's policy says.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class ServeErrorPolicyTest {
    @TempDir
    Path dir;

    private Path image(long size) throws Exception {
        Path img = dir.resolve("disk.img");
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
            f.setLength(size);
        }
        return img;
    }

    private static ServeConfig config(String... args) throws Exception {
        ServeCommand c = new ServeCommand();
        new CommandLine(c).parseArgs(args);
        return c.config();
    }

    /** One request on queue 0: posts it, kicks, and returns its status, or -1 when none came in {@code ms}. */
    private static int request(GuestBlkQueue q, BlkSlot s, boolean write, long sector, int bytes, long ms) {
        int[] status = {-1};
        q.onCompletion((slot, st, len) -> status[0] = st);
        if (write) {
            q.postWrite(s, sector, bytes, 1);
        } else {
            q.postRead(s, sector, bytes, 1);
        }
        q.kick();
        q.awaitCompletions(1, ms);
        return status[0];
    }

    private static byte[] fill(BlkSlot s, int bytes, int seed) {
        byte[] b = new byte[bytes];
        for (int i = 0; i < bytes; i++) {
            b[i] = (byte) (i * 13 + seed);
        }
        MemorySegment.copy(MemorySegment.ofArray(b), 0, s.data(), 0, bytes);
        return b;
    }

    @Test
    void badOptionsNameTheOptionAndWhatItAccepts() {
        assertThatThrownBy(() -> config("--blockdev", "driver=null-co,node-name=n0", "--export",
                "type=vhost-user-blk,id=e0,node-name=n0,addr.type=unix,addr.path=/tmp/x.sock,werror=halt"))
                .hasMessageContaining("werror must be ignore, report, stop or enospc, got 'halt'");
        assertThatThrownBy(() -> config("--blockdev", "driver=null-co,node-name=n0", "--blockdev",
                "driver=blkdebug,node-name=b0,image=n0,inject-error.0.event=l2_load", "--export",
                "type=vhost-user-blk,id=e0,node-name=b0,addr.type=unix,addr.path=/tmp/x.sock"))
                .hasMessageContaining("inject-error.0.event=l2_load is not an event vblk raises")
                .hasMessageContaining("read_aio, write_aio");
        assertThatThrownBy(() -> config("--blockdev", "driver=blkdebug,node-name=b0,image=nowhere",
                "--export", "type=vhost-user-blk,id=e0,node-name=b0,addr.type=unix,addr.path=/tmp/x.sock"))
                .hasMessageContaining("image=nowhere names no earlier --blockdev");
        assertThatThrownBy(() -> config("--blockdev", "driver=null-co,node-name=n0", "--blockdev",
                "driver=blkdebug,node-name=b0,image=n0,inject-error.0.event=read_aio,inject-error.0.errno=EWHAT",
                "--export", "type=vhost-user-blk,id=e0,node-name=b0,addr.type=unix,addr.path=/tmp/x.sock"))
                .hasMessageContaining("inject-error.0.errno=EWHAT is not valid");
        assertThatThrownBy(() -> config("--blockdev", "driver=null-co,node-name=n0", "--blockdev",
                "driver=blkdebug,node-name=b0,image=n0,inject-error.1.event=read_aio",
                "--export", "type=vhost-user-blk,id=e0,node-name=b0,addr.type=unix,addr.path=/tmp/x.sock"))
                .hasMessageContaining("inject-error.1.event");
        assertThatThrownBy(() -> config("--blockdev", "driver=null-co,node-name=n0", "--blockdev",
                "driver=blkdebug,node-name=b0,image=n0,set-state.0.event=read_aio",
                "--export", "type=vhost-user-blk,id=e0,node-name=b0,addr.type=unix,addr.path=/tmp/x.sock"))
                .hasMessageContaining("set-state.0.new_state is required");
    }

    @Test
    void injectedReadErrorIsReportedAndWriteErrorStopsUntilResumed() throws Exception {
        Path img = image(8L << 20);
        String sock = dir.resolve("vblk.sock").toString();
        ServeConfig cfg = config("--object", "iothread,id=io0",
                "--blockdev", "driver=blkdebug,node-name=bd,image.driver=file,image.filename=" + img
                        + ",inject-error.0.event=read_aio,inject-error.0.errno=5,inject-error.0.sector=0"
                        + ",inject-error.1.event=write_aio,inject-error.1.errno=ENOSPC,inject-error.1.once=on",
                "--export", "type=vhost-user-blk,id=e0,node-name=bd,addr.type=unix,addr.path=" + sock
                        + ",writable=on,iothread=io0");
        assertThat(cfg.exports().getFirst().werror().spelling()).as("QEMU's default").isEqualTo("enospc");
        ServeDaemon d = ServeDaemon.start(cfg);
        try (VhostUserTransport t = VhostUserTransport.connect(sock, Duration.ofSeconds(10));
             GuestBlkDriver g = GuestBlkDriver.attach(t, GuestBlkDriver.Options.defaults())) {
            GuestBlkQueue q = g.queue(0);
            BlkSlot s = q.acquire();
            assertThat(request(q, s, false, 0, 4096, 10_000)).as("rerror=report").isEqualTo(1);
            assertThat(request(q, s, false, 8, 4096, 10_000)).as("sector 0 not covered").isZero();
            byte[] data = fill(s, 4096, 7);
            assertThat(request(q, s, true, 16, 4096, 500)).as("ENOSPC with werror=enospc: held").isEqualTo(-1);
            long end = System.nanoTime() + 10_000_000_000L;
            while (d.stoppedDevices().isEmpty()) {
                assertThat(System.nanoTime() - end).as("device stops").isNegative();
                Thread.onSpinWait();
            }
            assertThat(d.stoppedDevices()).containsExactly("e0");
            assertThat(d.resumeStoppedDevices()).isEqualTo(1);
            assertThat(q.awaitCompletions(1, 10_000)).isEqualTo(1);
            assertThat(d.stoppedDevices()).isEmpty();
            try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "r")) {
                byte[] got = new byte[4096];
                f.seek(16 * 512);
                f.readFully(got);
                assertThat(got).as("the held write was re-run after the resume").isEqualTo(data);
            }
        } finally {
            assertThat(d.shutdown(Duration.ofSeconds(20))).isTrue();
        }
    }

    @Test
    void sigusr2ResumesADaemonStoppedByWerrorStop() throws Exception {
        Path img = image(8L << 20);
        String sock = dir.resolve("vblk.sock").toString();
        List<String> cmd = new ArrayList<>(List.of(ProcessHandle.current().info().command().orElseThrow(),
                "--enable-native-access=ALL-UNNAMED", "-cp", System.getProperty("java.class.path"),
                Main.class.getName(), "serve",
                "--blockdev", "driver=file,node-name=f0,filename=" + img,
                "--blockdev", "driver=blkdebug,node-name=bd,image=f0,inject-error.0.event=write_aio"
                        + ",inject-error.0.errno=5,inject-error.0.once=on",
                "--export", "type=vhost-user-blk,id=e0,node-name=bd,addr.type=unix,addr.path=" + sock
                        + ",writable=on,werror=stop"));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        StringBuilder log = new StringBuilder();
        CompletableFuture<Void> ready = new CompletableFuture<>();
        CompletableFuture<Void> stopped = new CompletableFuture<>();
        Thread.ofPlatform().daemon().start(() -> {
            try (BufferedReader br = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
                String line;
                while ((line = br.readLine()) != null) {
                    synchronized (log) {
                        log.append(line).append('\n');
                    }
                    if (line.startsWith(ServeCommand.READY)) {
                        ready.complete(null);
                    }
                    if (line.contains("device e0 stopped after an I/O error")) {
                        stopped.complete(null);
                    }
                }
            } catch (Exception e) {
                ready.completeExceptionally(e);
            }
            ready.completeExceptionally(new IllegalStateException("vblk serve exited: " + log));
            stopped.completeExceptionally(new IllegalStateException("vblk serve exited: " + log));
        });
        try {
            ready.get(60, TimeUnit.SECONDS);
            byte[] data;
            try (VhostUserTransport t = VhostUserTransport.connect(sock, Duration.ofSeconds(10));
                 GuestBlkDriver g = GuestBlkDriver.attach(t, GuestBlkDriver.Options.defaults())) {
                GuestBlkQueue q = g.queue(0);
                BlkSlot s = q.acquire();
                data = fill(s, 8192, 3);
                int[] status = {-1};
                q.onCompletion((slot, st, len) -> status[0] = st);
                q.postWrite(s, 64, 8192, 1);
                q.kick();
                stopped.get(30, TimeUnit.SECONDS);
                assertThat(q.reap()).as("the failed write is held, not answered").isZero();
                new ProcessBuilder("kill", "-USR2", Long.toString(p.pid())).inheritIO().start().waitFor();
                assertThat(q.awaitCompletions(1, 20_000)).isEqualTo(1);
                assertThat(status[0]).as("re-run after SIGUSR2: OK").isZero();
            }
            p.toHandle().destroy();
            assertThat(p.waitFor(30, TimeUnit.SECONDS)).isTrue();
            assertThat(p.exitValue()).isZero();
            byte[] got = Arrays.copyOfRange(Files.readAllBytes(img), 64 * 512, 64 * 512 + 8192);
            assertThat(got).isEqualTo(data);
            synchronized (log) {
                assertThat(log.toString()).contains("BLOCK_IO_ERROR device=e0 node-name=bd operation=write action=stop"
                        + " nospace=false reason=EIO").contains("resume requested: 1 device(s)");
            }
        } finally {
            p.destroyForcibly();
        }
    }
}
