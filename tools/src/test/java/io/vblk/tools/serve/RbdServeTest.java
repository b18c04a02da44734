package io.vblk.tools.serve;

import io.vblk.drivers.rbd.CephCluster;
import io.vblk.drivers.rbd.CephClusterFixture;
import io.vblk.guest.BlkSlot;
import io.vblk.guest.BlkWireLayout;
import io.vblk.guest.GuestBlkDriver;
import io.vblk.guest.GuestBlkQueue;
import io.vblk.guest.vhost.VhostUserTransport;
import io.vblk.tools.Main;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import picocli.CommandLine;

import java.io.BufferedReader;
import java.io.InputStreamReader;
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

/**
 * Home thread: the test thread (it drives the in-process guest; the daemons run their own loops).
 *
 * <p>{@code vblk serve --blockdev driver=rbd,...} on a real single-node Ceph cluster
 * ({@link CephCluster}, one per class): the in-process guest (io.vblk.guest over vhost-user)
 * writes and reads back with verification, and {@code rbd export} of the image equals what it
 * wrote; a resize reaches the image and a new guest connection; two daemons serve the same image
 * read-only at once; failover: a daemon in its own process serving the image writable is SIGKILLed with
 * writes in flight, a second one opens the image, reads back every write acknowledged before the
 * guest's last acknowledged flush, and takes the exclusive lock over from the dead one for a new write.
 */
@Tag("real")
@Timeout(value = 300, unit = TimeUnit.SECONDS)
class RbdServeTest extends CephClusterFixture {
    private static final int BLOCK = 4096;
    private static final long SIZE = 16L << 20;
    private static final long WAIT_MS = 60_000;
    private static int sockets;

    private static ServeDaemon serve(String image, boolean readOnly, String sock) throws Exception {
        ServeCommand c = new ServeCommand();
        new CommandLine(c).parseArgs(
                "--blockdev", "driver=rbd,node-name=n0,pool=" + CephCluster.POOL + ",image=" + image + ",conf=" + cluster.conf()
                        + (readOnly ? ",read-only=on" : ""),
                "--object", "iothread,id=io0",
                "--export", "type=vhost-user-blk,id=e0,node-name=n0,addr.type=unix,addr.path=" + sock
                        + ",iothread=io0,writable=" + (readOnly ? "off" : "on"));
        return ServeDaemon.start(c.config(), null, c.socketMode());
    }

    private static String socket() {
        return dir.resolve("s" + sockets++ + ".sock").toString();
    }

    /** The bytes block {@code b} gets: distinct per block and per round. */
    private static byte[] content(int b, int round) {
        byte[] d = new byte[BLOCK];
        for (int i = 0; i < BLOCK; i++) {
            d[i] = (byte) (b * 31 + i * 7 + round * 13 + (i >> 8));
        }
        return d;
    }

    /** Writes (or reads, {@code write=false}) {@code blocks} through the queue, as many in flight as it has slots. */
    private static List<byte[]> io(GuestBlkQueue q, int[] blocks, int round, boolean write) {
        byte[][] got = new byte[blocks.length][];
        int[] statusBad = {0};
        int next = 0;
        int done = 0;
        q.onCompletion((slot, status, len) -> {
            if (status != BlkWireLayout.S_OK) {
                statusBad[0]++;
            }
            if (!write) {
                byte[] d = new byte[BLOCK];
                slot.dataBuffer().get(0, d);
                got[slot.userTag] = d;
            }
            q.release(slot);
        });
        while (done < blocks.length) {
            BlkSlot s;
            boolean posted = false;
            while (next < blocks.length && (s = q.acquire()) != null) {
                s.userTag = next;
                long sector = (long) blocks[next] * BLOCK / 512;
                if (write) {
                    s.dataBuffer().put(0, content(blocks[next], round));
                    q.postWrite(s, sector, BLOCK, 1);
                } else {
                    q.postRead(s, sector, BLOCK, 1);
                }
                next++;
                posted = true;
            }
            if (posted) {
                q.kick();
            }
            int n = q.awaitCompletions(1, WAIT_MS);
            assertThat(n).as("completions within %d ms (%d of %d done)", WAIT_MS, done, blocks.length).isPositive();
            done += n;
        }
        assertThat(statusBad[0]).as("requests that did not complete with VIRTIO_BLK_S_OK").isZero();
        return write ? List.of() : Arrays.asList(got);
    }

    private static void verify(GuestBlkQueue q, int[] blocks, int round) {
        List<byte[]> got = io(q, blocks, round, false);
        for (int i = 0; i < blocks.length; i++) {
            assertThat(got.get(i)).as("block %d", blocks[i]).isEqualTo(content(blocks[i], round));
        }
    }

    private static int[] spread(int n, int stride) {
        int[] b = new int[n];
        for (int i = 0; i < n; i++) {
            b[i] = (i * stride) % (int) (SIZE / BLOCK);
        }
        return b;
    }

    private static String newImage(String name) throws Exception {
        cluster.rbd("create", "--size", (SIZE >> 20) + "M", CephCluster.POOL + "/" + name);
        return name;
    }

    @Test
    void theGuestWritesAndReadsBackAndRbdExportHoldsWhatItWrote() throws Exception {
        String image = newImage("guest-rw");
        int[] blocks = spread(200, 19); // crosses 4 MiB object boundaries, distinct blocks
        String sock = socket();
        ServeDaemon d = serve(image, false, sock);
        try (VhostUserTransport t = VhostUserTransport.connect(sock, Duration.ofSeconds(10));
             GuestBlkDriver g = GuestBlkDriver.attach(t, GuestBlkDriver.Options.defaults())) {
            assertThat(g.config().capacitySectors()).isEqualTo(SIZE / 512);
            GuestBlkQueue q = g.queue(0);
            io(q, blocks, 1, true);
            verify(q, blocks, 1);
        } finally {
            assertThat(d.shutdown(Duration.ofSeconds(60))).isTrue();
        }
        Path exported = dir.resolve("guest-rw.raw");
        cluster.rbd("export", "--no-progress", CephCluster.POOL + "/" + image, exported.toString());
        byte[] want = new byte[(int) SIZE];
        for (int b : blocks) {
            System.arraycopy(content(b, 1), 0, want, b * BLOCK, BLOCK);
        }
        byte[] have = Files.readAllBytes(exported);
        assertThat(have.length).isEqualTo(want.length);
        assertThat(Arrays.mismatch(have, want)).as("first byte where rbd export differs from what the guest wrote").isEqualTo(-1);
    }

    /**
     * {@code key-secret}: with a conf that names no keyring (and none in /etc/ceph), the daemon
     * cannot connect; given the client.admin key through {@code --object secret} (inline with
     * format=base64, or a key file), it authenticates and serves a guest; a wrong key is refused by
     * the cluster and the start fails naming the image and the step, never hangs.
     */
    @Test
    void keySecretAuthenticatesWithAConfThatNamesNoKeyring() throws Exception {
        String image = newImage("keyed");
        Path conf = dir.resolve("no-keyring.conf");
        Files.writeString(conf, Files.readString(cluster.conf()).lines().filter(l -> !l.startsWith("keyring"))
                .collect(java.util.stream.Collectors.joining("\n", "", "\n")));
        assertThat(Files.readString(conf)).doesNotContain("keyring").contains("auth client required = cephx");
        String key = cluster.adminKey();
        Path keyFile = dir.resolve("admin.key");
        Files.writeString(keyFile, key + "\n");
        String rbd = "driver=rbd,node-name=n0,pool=" + CephCluster.POOL + ",image=" + image + ",conf=" + conf;

        String sock0 = socket();
        org.assertj.core.api.Assertions.assertThatThrownBy(() -> serveWith(List.of("--blockdev", rbd), sock0))
                .hasMessageContaining("rbd: " + CephCluster.POOL + "/" + image).hasMessageContaining("failed");
        String wrong = java.util.Base64.getEncoder().encodeToString(new byte[] {1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 16,
                9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9});
        String sock1 = socket();
        org.assertj.core.api.Assertions.assertThatThrownBy(() -> serveWith(List.of("--object",
                        "secret,id=bad,data=" + wrong + ",format=base64", "--blockdev", rbd + ",key-secret=bad"), sock1))
                .hasMessageContaining("connecting to the cluster").hasMessageNotContaining(wrong);

        int[] blocks = spread(32, 41);
        for (String secret : List.of("secret,id=k0,data=" + key + ",format=base64", "secret,id=k0,file=" + keyFile + ",format=base64")) {
            String sock = socket();
            ServeDaemon d = serveWith(List.of("--object", secret, "--blockdev", rbd + ",key-secret=k0"), sock);
            try (VhostUserTransport t = VhostUserTransport.connect(sock, Duration.ofSeconds(10));
                 GuestBlkDriver g = GuestBlkDriver.attach(t, GuestBlkDriver.Options.defaults())) {
                io(g.queue(0), blocks, 6, true);
                verify(g.queue(0), blocks, 6);
            } finally {
                assertThat(d.shutdown(Duration.ofSeconds(60))).isTrue();
            }
        }
    }

    private static ServeDaemon serveWith(List<String> nodeArgs, String sock) throws Exception {
        List<String> args = new ArrayList<>(nodeArgs);
        args.addAll(List.of("--object", "iothread,id=io0", "--export",
                "type=vhost-user-blk,id=e0,node-name=n0,addr.type=unix,addr.path=" + sock + ",iothread=io0,writable=on"));
        ServeCommand c = new ServeCommand();
        new CommandLine(c).parseArgs(args.toArray(String[]::new));
        return ServeDaemon.start(c.config(), null, c.socketMode());
    }

    @Test
    void resizeReachesTheImageAndTheGuest() throws Exception {
        String image = newImage("grow");
        String sock = socket();
        ServeDaemon d = serve(image, false, sock);
        try {
            CompletableFuture<Long> f = new CompletableFuture<>();
            d.resize("n0", 2 * SIZE, (size, e) -> {
                if (e != null) {
                    f.completeExceptionally(e);
                } else {
                    f.complete(size);
                }
            });
            assertThat(f.get(60, TimeUnit.SECONDS)).isEqualTo(2 * SIZE);
            assertThat(cluster.rbd("info", "--format", "json", CephCluster.POOL + "/" + image)).contains("\"size\":" + 2 * SIZE);
            try (VhostUserTransport t = VhostUserTransport.connect(sock, Duration.ofSeconds(10));
                 GuestBlkDriver g = GuestBlkDriver.attach(t, GuestBlkDriver.Options.defaults())) {
                assertThat(g.config().capacitySectors()).isEqualTo(2 * SIZE / 512);
                int[] tail = {(int) (2 * SIZE / BLOCK) - 1, (int) (SIZE / BLOCK)};
                io(g.queue(0), tail, 3, true);
                verify(g.queue(0), tail, 3);
            }
        } finally {
            assertThat(d.shutdown(Duration.ofSeconds(60))).isTrue();
        }
    }

    @Test
    void twoDaemonsServeTheSameImageReadOnlyAtOnce() throws Exception {
        String image = newImage("shared");
        int[] blocks = spread(64, 37);
        String sock = socket();
        ServeDaemon writer = serve(image, false, sock);
        try (VhostUserTransport t = VhostUserTransport.connect(sock, Duration.ofSeconds(10));
             GuestBlkDriver g = GuestBlkDriver.attach(t, GuestBlkDriver.Options.defaults())) {
            io(g.queue(0), blocks, 2, true);
        } finally {
            assertThat(writer.shutdown(Duration.ofSeconds(60))).isTrue();
        }
        List<ServeDaemon> readers = new ArrayList<>();
        List<String> socks = List.of(socket(), socket());
        try {
            for (String s : socks) {
                readers.add(serve(image, true, s));
            }
            try (VhostUserTransport t0 = VhostUserTransport.connect(socks.get(0), Duration.ofSeconds(10));
                 GuestBlkDriver g0 = GuestBlkDriver.attach(t0, GuestBlkDriver.Options.defaults());
                 VhostUserTransport t1 = VhostUserTransport.connect(socks.get(1), Duration.ofSeconds(10));
                 GuestBlkDriver g1 = GuestBlkDriver.attach(t1, GuestBlkDriver.Options.defaults())) {
                assertThat(g0.negotiated(io.vblk.guest.GuestFeatures.BLK_F_RO)).as("VIRTIO_BLK_F_RO").isTrue();
                assertThat(g1.negotiated(io.vblk.guest.GuestFeatures.BLK_F_RO)).as("VIRTIO_BLK_F_RO").isTrue();
                verify(g0.queue(0), blocks, 2);
                verify(g1.queue(0), blocks, 2);
                verify(g0.queue(0), blocks, 2);
            }
        } finally {
            for (ServeDaemon r : readers) {
                assertThat(r.shutdown(Duration.ofSeconds(60))).isTrue();
            }
        }
    }

    /** {@code vblk serve} in its own JVM (a second "host"), ready once it printed its ready line. */
    private static Process serveProcess(String image, String sock) throws Exception {
        Process p = new ProcessBuilder(ProcessHandle.current().info().command().orElseThrow(),
                "--enable-native-access=ALL-UNNAMED", "-cp", System.getProperty("java.class.path"), Main.class.getName(),
                "serve", "--blockdev", "driver=rbd,node-name=n0,pool=" + CephCluster.POOL + ",image=" + image + ",conf="
                + cluster.conf(), "--object", "iothread,id=io0", "--export",
                "type=vhost-user-blk,id=e0,node-name=n0,addr.type=unix,addr.path=" + sock + ",iothread=io0,writable=on")
                .redirectErrorStream(true).start();
        CompletableFuture<Void> ready = new CompletableFuture<>();
        StringBuilder out = new StringBuilder();
        Thread.ofPlatform().daemon().start(() -> {
            try (BufferedReader br = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
                String line;
                while ((line = br.readLine()) != null) {
                    synchronized (out) {
                        out.append(line).append('\n');
                    }
                    if (line.startsWith(ServeCommand.READY)) {
                        ready.complete(null);
                    }
                }
            } catch (Exception e) {
                ready.completeExceptionally(e);
            }
            synchronized (out) {
                ready.completeExceptionally(new IllegalStateException("vblk serve exited before it was ready:\n" + out));
            }
        });
        ready.get(120, TimeUnit.SECONDS);
        return p;
    }

    @Test
    void failoverAfterTheWriterIsKilledReadsBackEveryAcknowledgedWrite() throws Exception {
        String image = newImage("failover");
        int[] acked = spread(128, 23);
        int[] inFlight = new int[32];
        for (int i = 0; i < inFlight.length; i++) {
            inFlight[i] = (int) (SIZE / BLOCK) - 1 - i * 5; // blocks apart from the acknowledged ones
        }
        String sockA = socket();
        Process a = serveProcess(image, sockA);
        VhostUserTransport t = VhostUserTransport.connect(sockA, Duration.ofSeconds(10));
        GuestBlkDriver g = GuestBlkDriver.attach(t, GuestBlkDriver.Options.defaults());
        try {
            GuestBlkQueue q = g.queue(0);
            io(q, acked, 4, true);
            BlkSlot f = q.acquire();
            int[] flushStatus = {-1};
            q.onCompletion((slot, status, len) -> flushStatus[0] = status);
            q.postFlush(f);
            q.kick();
            assertThat(q.awaitCompletions(1, WAIT_MS)).isEqualTo(1);
            assertThat(flushStatus[0]).as("flush status").isEqualTo(BlkWireLayout.S_OK);
            q.release(f);
            q.onCompletion((slot, status, len) -> { });
            for (int b : inFlight) { // posted, kicked, never waited for: the daemon dies under them
                BlkSlot s = q.acquire();
                s.dataBuffer().put(0, content(b, 4));
                q.postWrite(s, (long) b * BLOCK / 512, BLOCK, 1);
            }
            q.kick();
            a.destroyForcibly(); // SIGKILL: the exclusive lock's owner dies holding it
            assertThat(a.waitFor(30, TimeUnit.SECONDS)).isTrue();
        } finally {
            a.destroyForcibly();
            // The guest's back-end is gone: stopping its queue fails ("needs reset"), as it should.
            try {
                g.close();
            } catch (IllegalStateException gone) {
                assertThat(gone).hasMessageContaining("needs reset");
            }
            try {
                t.close();
            } catch (RuntimeException gone) {
                // already closed with the driver
            }
        }
        String sockB = socket();
        ServeDaemon b = serve(image, false, sockB);
        try (VhostUserTransport tb = VhostUserTransport.connect(sockB, Duration.ofSeconds(10));
             GuestBlkDriver gb = GuestBlkDriver.attach(tb, GuestBlkDriver.Options.defaults())) {
            verify(gb.queue(0), acked, 4);
            // A write needs the exclusive lock: librbd finds its owner dead and breaks it (blocklisting it).
            int[] fresh = {acked[0]};
            io(gb.queue(0), fresh, 5, true);
            verify(gb.queue(0), fresh, 5);
        } finally {
            assertThat(b.shutdown(Duration.ofSeconds(60))).isTrue();
        }
    }
}
