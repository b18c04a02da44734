package io.vblk.virtio.vhost.socket;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioOptions;
import io.vblk.aio.IoThread;
import io.vblk.aio.sys.EventFds;
import io.vblk.aio.sys.FileIo;
import io.vblk.aio.sys.Mmap;
import io.vblk.virtio.vhost.RawClient;
import io.vblk.virtio.vhost.RecordingDevice;
import io.vblk.virtio.vhost.wire.VhostUserCodec;
import io.vblk.virtio.vhost.wire.VhostUserCodec.MemRegion;
import io.vblk.virtio.vhost.wire.VhostUserMessage;
import io.vblk.virtio.vhost.wire.VhostUserRequest;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.File;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * A hostile front-end over the real socket: each bad input closes only its own connection with a
 * reason naming it (the log line), the export serves the next client, and the process's fd count
 * returns to its baseline. The long parts (1000 connect/disconnect cycles, 50 clients at once)
 * are tagged stress.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class HostilePeerTest {
    private static final Duration T = Duration.ofSeconds(10);
    private static final long VERSION_1 = 1L << 32;

    @TempDir
    Path dir;
    private IoThread io;
    private AioContext ctx;
    private String sock;
    private RecordingDevice device;
    private VhostUserExport export;
    private final BlockingQueue<String> reasons = new LinkedBlockingQueue<>();
    private int baselineFds;

    private <T> T on(Callable<T> c) {
        return AioContext.await(ctx.callOn(c), T);
    }

    @BeforeEach
    void setUp() {
        io = IoThread.start("hostile-main", AioOptions.DEFAULT);
        ctx = io.ctx();
        sock = dir.resolve("vblk.sock").toString();
        device = on(() -> new RecordingDevice(ctx, 2, 2048));
        export = on(() -> {
            VhostUserExport e = VhostUserExport.listen("e0", ctx, device, sock);
            e.onConnectionClosed(reasons::add);
            return e;
        });
        baselineFds = openFds();
    }

    @AfterEach
    void tearDown() {
        CompletableFuture<Void> idle = new CompletableFuture<>();
        on(() -> {
            export.close(() -> idle.complete(null));
            return null;
        });
        AioContext.await(idle, T);
        on(() -> {
            device.close();
            return null;
        });
        io.close();
    }

    private static int openFds() {
        String[] l = new File("/proc/self/fd").list();
        return l == null ? -1 : l.length;
    }

    private static int memfd(long size) {
        int fd = Mmap.memfdCreate("hostile", Mmap.MFD_CLOEXEC);
        FileIo.ftruncate(fd, size);
        return fd;
    }

    private String nextReason() throws InterruptedException {
        String r = reasons.poll(10, TimeUnit.SECONDS);
        assertThat(r).as("a connection closed").isNotNull();
        return r;
    }

    /** Sends what {@code send} sends, expects the server to close with a reason containing {@code part}. */
    private void refused(String part, Consumer<RawClient> send) throws Exception {
        try (RawClient c = new RawClient(sock)) {
            send.accept(c);
            c.awaitClosedByServer(5000);
        }
        assertThat(nextReason()).contains(part);
        // The export lives: the next client is served.
        try (RawClient c = new RawClient(sock)) {
            c.send(VhostUserRequest.GET_FEATURES, false, new byte[0]);
            assertThat(VhostUserCodec.decodeU64(c.reply(5000)) & VERSION_1).isNotZero();
        }
        assertThat(nextReason()).isEqualTo("front-end disconnected");
    }

    private void awaitBaselineFds() {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (openFds() != baselineFds && System.nanoTime() < deadline) {
            on(() -> null); // let the loop finish closing; bounded
        }
        assertThat(openFds()).as("fds back to the baseline").isEqualTo(baselineFds);
    }

    private static void sendClosing(RawClient c, VhostUserRequest r, byte[] payload, int... fds) {
        c.send(r, false, payload, fds);
        for (int fd : fds) {
            FileIo.close(fd);
        }
    }

    @Test
    void malformedFramesAndWrongFdCounts() throws Exception {
        // (More than 8 fds on one message: the kernel truncates them, MSG_CTRUNC; VhostUserFramerFuzzTest covers it.)
        refused("protocol version 2", c -> c.sendBytes(VhostUserCodec.encode(new VhostUserMessage(1, 2, new byte[0], null))));
        refused("unknown request 4096", c -> c.sendBytes(VhostUserCodec.encode(new VhostUserMessage(4096, 1, new byte[0], null))));
        refused("SET_FEATURES (2): bad size 7", c -> c.sendBytes(VhostUserCodec.encode(new VhostUserMessage(2, 1, new byte[7], null))));
        refused("SET_MEM_TABLE (5): 1 regions but 2 fds", c -> sendClosing(c, VhostUserRequest.SET_MEM_TABLE,
                VhostUserCodec.memTable(List.of(new MemRegion(0, 4096, 0x7000_0000L, 0))), memfd(4096), memfd(4096)));
        refused("ADD_MEM_REG (37): missing fds", c -> c.send(VhostUserRequest.ADD_MEM_REG, false,
                VhostUserCodec.memReg(new MemRegion(0, 4096, 0x7000_0000L, 0))));
        awaitBaselineFds();
    }

    @Test
    void badMemoryTablesAreRefusedBeforeAnyMapping() throws Exception {
        refused("lies beyond the end of its fd (4096 bytes)", c -> sendClosing(c, VhostUserRequest.SET_MEM_TABLE,
                VhostUserCodec.memTable(List.of(new MemRegion(0, 64 << 10, 0x7000_0000L, 0))), memfd(4096)));
        refused("mmap_offset + size = 69632 bytes lies beyond the end of its fd (65536 bytes)",
                c -> sendClosing(c, VhostUserRequest.SET_MEM_TABLE,
                        VhostUserCodec.memTable(List.of(new MemRegion(0, 64 << 10, 0x7000_0000L, 4096))), memfd(64 << 10)));
        refused("size 9223372036854775808 is 2^63 bytes or more", c -> sendClosing(c, VhostUserRequest.SET_MEM_TABLE,
                VhostUserCodec.memTable(List.of(new MemRegion(0, 1L << 63, 0x7000_0000L, 0))), memfd(4096)));
        refused("size 18446744073709547520 is 2^63 bytes or more", c -> sendClosing(c, VhostUserRequest.ADD_MEM_REG,
                VhostUserCodec.memReg(new MemRegion(0, -4096L, 0x7000_0000L, 0)), memfd(4096)));
        refused("guest range wraps the address space", c -> sendClosing(c, VhostUserRequest.SET_MEM_TABLE,
                VhostUserCodec.memTable(List.of(new MemRegion(Long.MAX_VALUE - 100, 4096, 0x7000_0000L, 0))), memfd(4096)));
        // Not a memfd: /dev/null has no size to back a region; a directory cannot be mapped.
        refused("lies beyond the end of its fd (0 bytes)", c -> sendClosing(c, VhostUserRequest.SET_MEM_TABLE,
                VhostUserCodec.memTable(List.of(new MemRegion(0, 4096, 0x7000_0000L, 0))),
                FileIo.open("/dev/null", FileIo.O_RDWR | FileIo.O_CLOEXEC, 0)));
        refused("memory region", c -> sendClosing(c, VhostUserRequest.SET_MEM_TABLE,
                VhostUserCodec.memTable(List.of(new MemRegion(0, 4096, 0x7000_0000L, 0))),
                FileIo.open(dir.toString(), FileIo.O_RDONLY | FileIo.O_CLOEXEC, 0)));
        awaitBaselineFds();
    }

    @Test
    void ringsOutsideMemoryQueueIndexOutOfRangeAndLegacyDrivers() throws Exception {
        refused("is not inside guest memory", c -> {
            sendClosing(c, VhostUserRequest.SET_MEM_TABLE,
                    VhostUserCodec.memTable(List.of(new MemRegion(0, 64 << 10, 0x10000, 0))), memfd(64 << 10));
            c.send(VhostUserRequest.SET_VRING_NUM, false, VhostUserCodec.vringState(0, 16));
            c.send(VhostUserRequest.SET_VRING_ADDR, false, VhostUserCodec.vringAddr(
                    new VhostUserCodec.VringAddr(0, 0, 0x10000 + (64 << 10) - 16, 0x12000, 0x11000, 0)));
            sendClosing(c, VhostUserRequest.SET_VRING_KICK, VhostUserCodec.u64(0), EventFds.eventfd(0, EventFds.EFD_CLOEXEC));
        });
        refused("queue index 2 out of range", c -> c.send(VhostUserRequest.SET_VRING_NUM, false, VhostUserCodec.vringState(2, 16)));
        refused("queue index 65535 out of range",
                c -> c.send(VhostUserRequest.SET_VRING_ENABLE, false, VhostUserCodec.vringState(65535, 1)));
        refused("lack VIRTIO_F_VERSION_1 (bit 32): legacy drivers are not supported",
                c -> c.send(VhostUserRequest.SET_FEATURES, false, VhostUserCodec.u64(0)));
        assertThat(on(() -> device.driverFeatures)).isZero();
        awaitBaselineFds();
    }

    @Test
    void aPeerThatVanishesMidMessageLeavesNothingBehind() throws Exception {
        try (RawClient c = new RawClient(sock)) {
            byte[] m = VhostUserCodec.encode(VhostUserMessage.request(VhostUserRequest.SET_MEM_TABLE, false,
                    VhostUserCodec.memTable(List.of(new MemRegion(0, 4096, 0x7000_0000L, 0)))));
            int fd = memfd(4096);
            c.sendBytes(java.util.Arrays.copyOf(m, 20), fd);
            FileIo.close(fd);
        }
        assertThat(nextReason()).contains("mid-message");
        awaitBaselineFds();
    }

    @Test
    @Tag("stress")
    void aThousandConnectDisconnectCyclesAndFiftyClientsAtOnce() throws Exception {
        for (int i = 0; i < 1000; i++) {
            try (RawClient c = new RawClient(sock)) {
                if (i % 2 == 0) {
                    c.send(VhostUserRequest.GET_FEATURES, false, new byte[0]);
                    c.reply(5000);
                }
            }
            assertThat(nextReason()).isEqualTo("front-end disconnected");
        }
        awaitBaselineFds();
        // 50 clients at once, each on its own thread: the export serves one connection at a time,
        // the others wait in connect (beyond the listen backlog) or in the backlog.
        java.util.concurrent.ExecutorService pool = java.util.concurrent.Executors.newFixedThreadPool(50);
        try {
            List<java.util.concurrent.Future<Long>> answers = new ArrayList<>();
            for (int i = 0; i < 50; i++) {
                answers.add(pool.submit(() -> {
                    try (RawClient c = new RawClient(sock)) {
                        c.send(VhostUserRequest.GET_QUEUE_NUM, false, new byte[0]);
                        return VhostUserCodec.decodeU64(c.reply(30_000));
                    }
                }));
            }
            for (java.util.concurrent.Future<Long> a : answers) {
                assertThat(a.get(60, TimeUnit.SECONDS)).isEqualTo(2);
            }
            for (int i = 0; i < 50; i++) {
                assertThat(nextReason()).isEqualTo("front-end disconnected");
            }
        } finally {
            pool.shutdownNow();
        }
        awaitBaselineFds();
        Runtime rt = Runtime.getRuntime();
        System.gc();
        long used = rt.totalMemory() - rt.freeMemory();
        System.out.println("heap in use after 1050 connections: " + (used >> 20) + " MiB, fds " + openFds());
    }
}
