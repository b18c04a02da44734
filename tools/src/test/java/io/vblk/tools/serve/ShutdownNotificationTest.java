package io.vblk.tools.serve;

import io.vblk.aio.AioContext;
import io.vblk.guest.BlkSlot;
import io.vblk.guest.GuestBlkDriver;
import io.vblk.guest.GuestBlkQueue;
import io.vblk.guest.vhost.VhostUserTransport;
import io.vblk.virtio.vhost.socket.VhostUserExport;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

import java.io.RandomAccessFile;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * A daemon stopped under load leaves no used element un-notified: a guest that reaps only when its
 * call eventfd fires (as a sleeping Linux guest does) gets every completion the daemon published
 * before it exited. Runs the daemon and the vhost-user front end in this process.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class ShutdownNotificationTest {
    @TempDir
    Path dir;

    @Test
    void everyCompletionPublishedBeforeShutdownIsNotified() throws Exception {
        for (String engine : new String[] {"threads", "io_uring"}) {
            for (int round = 0; round < 2; round++) {
                stopUnderLoad(engine, round, false);
            }
        }
    }

    /**
     * The daemon drops the connection with requests in flight (as on a protocol error): the
     * queues stop only after their last completion, and that completion's notification still goes out.
     */
    @Test
    void everyCompletionPublishedAfterTheDaemonDroppedTheConnectionIsNotified() throws Exception {
        for (String engine : new String[] {"threads", "io_uring"}) {
            for (int round = 0; round < 2; round++) {
                stopUnderLoad(engine, round, true);
            }
        }
    }

    private void stopUnderLoad(String engine, int round, boolean dropConnection) throws Exception {
        Path img = dir.resolve("disk-" + engine + round + ".img");
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
            f.setLength(16L << 20);
        }
        String sock = dir.resolve("s-" + engine + round + ".sock").toString();
        ServeCommand cmd = new ServeCommand();
        new CommandLine(cmd).parseArgs(img.toString(), "--socket", sock, "--aio", engine, "--num-queues", "2",
                "--iothreads", String.valueOf(round));
        ServeDaemon d = ServeDaemon.start(cmd.config());
        VhostUserTransport t = VhostUserTransport.connect(sock, Duration.ofSeconds(10));
        GuestBlkDriver g = GuestBlkDriver.attach(t, GuestBlkDriver.Options.defaults().withQueues(2).withSlots(32));
        AtomicBoolean stop = new AtomicBoolean();
        AtomicLong completed = new AtomicLong();
        Thread[] vcpus = new Thread[2];
        for (int i = 0; i < vcpus.length; i++) {
            GuestBlkQueue q = g.queue(i);
            vcpus[i] = Thread.ofPlatform().daemon().start(() -> sleepingGuest(q, stop, completed));
        }
        try {
            long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
            while (completed.get() < 2000 && System.nanoTime() < until) {
                vcpus[0].join(5);
            }
            assertThat(completed.get()).as("load before the stop").isGreaterThanOrEqualTo(2000);
            if (dropConnection) {
                VhostUserExport x = d.exports().getFirst();
                AioContext.await(d.mainLoop().callOn(() -> {
                    x.connection().fail("dropped by the test with requests in flight");
                    return null;
                }), Duration.ofSeconds(10));
            } else {
                assertThat(d.shutdown(Duration.ofSeconds(20)))
                        .as(() -> engine + " round " + round + ": shutdown not clean: " + d.shutdownProblems())
                        .isTrue();
            }
            stop.set(true);
            // Each vCPU reaps only on a notification; with every one delivered, each catches up with its used ring.
            for (Thread v : vcpus) {
                v.join(10_000);
            }
            for (int i = 0; i < 2; i++) {
                GuestBlkQueue q = g.queue(i);
                assertThat(q.vring().usedIdx())
                        .as("%s round %d queue %d: used elements published without a notification", engine, round, i)
                        .isEqualTo(q.vring().lastUsedIdx());
            }
        } finally {
            stop.set(true);
            for (Thread v : vcpus) {
                v.join(10_000);
            }
            try {
                g.close();
            } catch (RuntimeException expected) {
                // the back-end is gone: stopping its queues cannot be answered
            }
            t.close();
            d.shutdown(Duration.ofSeconds(5));
        }
    }

    /**
     * Keeps the queue full of 4 KiB writes and reaps only when the call eventfd fired (or the
     * used ring was already non-empty when interrupts were enabled). After {@code stop} it posts
     * nothing and goes on waiting for notifications until a bound passes with none.
     */
    private static void sleepingGuest(GuestBlkQueue q, AtomicBoolean stop, AtomicLong completed) {
        q.onCompletion((s, status, len) -> {
            completed.incrementAndGet();
            q.release(s);
        });
        long sector = q.index() * 8L;
        long quietSince = System.nanoTime();
        while (true) {
            if (!stop.get()) {
                BlkSlot s;
                boolean posted = false;
                while ((s = q.acquire()) != null) {
                    q.postWrite(s, sector, 4096, 1);
                    sector = (sector + 16) % ((16L << 20) / 512 - 8);
                    posted = true;
                }
                if (posted) {
                    q.kick();
                }
            } else if (q.inFlight() == 0 || System.nanoTime() - quietSince > TimeUnit.SECONDS.toNanos(3)) {
                return;
            }
            if (q.enableInterrupts() && q.awaitInterrupt(50) == 0) {
                continue; // no notification: do not look at the used ring
            }
            if (q.reap() > 0) {
                quietSince = System.nanoTime();
            }
        }
    }
}
