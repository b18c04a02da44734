package io.vblk.tools.serve;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioOptions;
import io.vblk.aio.IoThread;
import io.vblk.aio.sys.EventFds;
import io.vblk.aio.sys.FileIo;
import io.vblk.guest.BlkWireLayout;
import io.vblk.guest.GuestRam;
import io.vblk.guest.GuestVring;
import io.vblk.guest.vhost.VhostUserFrontend;
import io.vblk.tools.Main;
import io.vblk.virtio.queue.QueueLayout;
import io.vblk.virtio.vhost.VhostRig;
import io.vblk.virtio.vhost.wire.VhostUserCodec.Inflight;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.RandomAccessFile;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * A real `vblk serve` process SIGKILLed under QD32 writes, restarted on the same socket, and
 * handed the inflight buffer back by the front-end (as QEMU with a reconnecting chardev does):
 * every write the guest saw acknowledged is in the image, every request posted completes exactly
 * once (GuestVring refuses a second used element for a head), nothing hangs.
 */
@Tag("real")
@Timeout(value = 300, unit = TimeUnit.SECONDS)
class ServeKillRecoveryTest {
    private static final Duration T = Duration.ofSeconds(20);
    private static final ValueLayout.OfInt LE32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong LE64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final int KILLS = 4;
    private static final int TOTAL = 1200;
    private static final int DEPTH = 32;

    @TempDir
    Path dir;

    private Process serve(Path img, String sock) throws Exception {
        Process p = new ProcessBuilder(ProcessHandle.current().info().command().orElseThrow(),
                "--enable-native-access=ALL-UNNAMED", "-cp", System.getProperty("java.class.path"), Main.class.getName(),
                "serve", img.toString(), "--socket", sock, "--num-queues", "1", "--iothreads", "1")
                .redirectErrorStream(true).start();
        CompletableFuture<Void> ready = new CompletableFuture<>();
        Thread.ofPlatform().daemon().start(() -> {
            try (BufferedReader br = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
                String line;
                while ((line = br.readLine()) != null) {
                    if (line.startsWith(ServeCommand.READY)) {
                        ready.complete(null);
                    }
                }
            } catch (Exception e) {
                ready.completeExceptionally(e);
            }
            ready.completeExceptionally(new IllegalStateException("vblk serve exited before it was ready"));
        });
        ready.get(60, TimeUnit.SECONDS);
        return p;
    }

    @Test
    void sigkilledDaemonRestartedOnTheSameSocketLosesNoAcknowledgedWriteAndCompletesEveryRequestOnce() throws Exception {
        Path img = dir.resolve("disk.img");
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
            f.setLength((long) TOTAL * 4096);
        }
        String sock = dir.resolve("vblk.sock").toString();
        IoThread fe = IoThread.start("fe", AioOptions.DEFAULT);
        GuestRam ram = GuestRam.memfd("guest", GuestRam.DEFAULT_GPA_BASE, 8 << 20);
        GuestVring vring = GuestVring.allocate(ram, 128);
        long hdrs = ram.allocate(16L * DEPTH, 16);
        long data = ram.allocate(4096L * DEPTH, 4096);
        long status = ram.allocate(DEPTH, 8);
        int[] blockOfSlot = new int[DEPTH];
        int[] completions = new int[TOTAL];
        ArrayDeque<Integer> free = new ArrayDeque<>();
        for (int i = 0; i < DEPTH; i++) {
            free.add(i);
        }
        int posted = 0;
        int[] done = {0};
        int keptFd = -1;
        Inflight desc = null;
        try {
            for (int life = 0; life <= KILLS; life++) {
                Process p = serve(img, sock);
                VhostUserFrontend f = AioContext.await(VhostUserFrontend.connect(fe.ctx(), sock,
                        VhostUserFrontend.Options.defaults()), T);
                int reuse = keptFd;
                Inflight d = desc;
                int base = vring.usedIdx();
                QueueLayout l = vring.layout();
                AioContext.await(fe.ctx().callOn(() -> {
                    if (reuse >= 0) {
                        f.reuseInflight(reuse, d);
                    }
                    return VhostRig.startQueue0(f, ram, l, 1L << 32, base);
                }).thenCompose(x -> x), T);
                keptFd = AioContext.await(fe.ctx().callOn(() -> FileIo.dup(f.inflightFd())), T);
                desc = AioContext.await(fe.ctx().callOn(f::inflight), T);
                int stopAt = life == KILLS ? TOTAL : done[0] + TOTAL / (KILLS + 2);
                long end = System.nanoTime() + Duration.ofSeconds(60).toNanos();
                while (done[0] < stopAt) {
                    assertThat(System.nanoTime()).as("life %d: %d of %d completed", life, done[0], TOTAL).isLessThan(end);
                    boolean any = false;
                    while (posted < TOTAL && !free.isEmpty()) {
                        int slot = free.poll();
                        MemorySegment h = ram.segment(hdrs + 16L * slot, 16);
                        h.set(LE32, BlkWireLayout.HDR_TYPE, BlkWireLayout.T_OUT);
                        h.set(LE64, BlkWireLayout.HDR_SECTOR, posted * 8L);
                        ram.segment(data + 4096L * slot, 4096).fill((byte) (posted * 7 + 1));
                        blockOfSlot[slot] = posted;
                        vring.beginChain();
                        vring.addBuffer(hdrs + 16L * slot, 16, false);
                        vring.addBuffer(data + 4096L * slot, 4096, false);
                        vring.addBuffer(status + slot, 1, true);
                        vring.commitChain(slot);
                        posted++;
                        any = true;
                    }
                    if (any) {
                        vring.publish();
                        AioContext.await(fe.ctx().callOn(() -> EventFds.eventfdWrite(f.kickFd(0), 1)), T);
                    }
                    vring.reap((slot, len) -> {
                        int b = blockOfSlot[slot];
                        assertThat(ram.segment(status + slot, 1).get(ValueLayout.JAVA_BYTE, 0)).isEqualTo((byte) BlkWireLayout.S_OK);
                        assertThat(readFill(img, b)).as("acknowledged block %d", b).isEqualTo((byte) (b * 7 + 1));
                        completions[b]++;
                        free.add(slot);
                        done[0]++;
                    });
                }
                if (life < KILLS) {
                    p.destroyForcibly(); // SIGKILL with requests in flight
                    assertThat(p.waitFor(30, TimeUnit.SECONDS)).isTrue();
                } else {
                    p.toHandle().destroy();
                    p.waitFor(30, TimeUnit.SECONDS);
                }
                AioContext.await(fe.ctx().callOn(() -> {
                    f.close();
                    return null;
                }), T);
            }
            for (int i = 0; i < TOTAL; i++) {
                assertThat(completions[i]).as("completions of request %d", i).isEqualTo(1);
            }
        } finally {
            if (keptFd >= 0) {
                FileIo.close(keptFd);
            }
            fe.close();
            ram.close();
        }
    }

    private static byte readFill(Path img, int block) {
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "r")) {
            f.seek(block * 4096L + 4095);
            return f.readByte();
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }
}
