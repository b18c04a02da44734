package io.vblk.virtio.vhost.socket;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioOptions;
import io.vblk.aio.IoThread;
import io.vblk.aio.sys.EventFds;
import io.vblk.aio.sys.FileIo;
import io.vblk.virtio.vhost.RawClient;
import io.vblk.virtio.vhost.RecordingDevice;
import io.vblk.virtio.vhost.wire.FdRule;
import io.vblk.virtio.vhost.wire.VhostUserCodec;
import io.vblk.virtio.vhost.wire.VhostUserCodec.MemRegion;
import io.vblk.virtio.vhost.wire.VhostUserMessage;
import io.vblk.virtio.vhost.wire.VhostUserMessageLayout;
import io.vblk.virtio.vhost.wire.VhostUserRequest;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The request table of {@link VhostUserRequest} driven over a real socket, row by row: for every
 * request type a message with one fd too many and one too few, a payload one byte short and one
 * byte long, a size far too large; plus sizes that disagree with a count in the payload, unknown
 * request numbers, a bad version and reserved flag bits. Each must close its connection with "malformed message: " and the named reason, close the
 * fds it carried, and leave the daemon's other connection (on a second export) answering.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class VhostUserRequestTableTest {
    private static final Duration T = Duration.ofSeconds(10);

    @TempDir
    Path dir;
    private IoThread io;
    private AioContext ctx;
    private RecordingDevice deviceA;
    private RecordingDevice deviceB;
    private VhostUserExport exportA;
    private VhostUserExport exportB;
    private String sockB;
    private final BlockingQueue<String> reasonsB = new LinkedBlockingQueue<>();

    /** One malformed message: its bytes, how many eventfds ride with it, the reason it must be refused with. */
    private record Case(String what, byte[] wire, int fds, String reason) {
    }

    private <T> T on(Callable<T> c) {
        return AioContext.await(ctx.callOn(c), T);
    }

    @BeforeEach
    void setUp() {
        io = IoThread.start("vhost-main", AioOptions.DEFAULT);
        ctx = io.ctx();
        deviceA = on(() -> new RecordingDevice(ctx, 2, 4096));
        deviceB = on(() -> new RecordingDevice(ctx, 2, 4096));
        sockB = dir.resolve("b.sock").toString();
        exportA = on(() -> VhostUserExport.listen("a", ctx, deviceA, dir.resolve("a.sock").toString()));
        exportB = on(() -> {
            VhostUserExport e = VhostUserExport.listen("b", ctx, deviceB, sockB);
            e.onConnectionClosed(reasonsB::add);
            return e;
        });
    }

    @AfterEach
    void tearDown() {
        for (VhostUserExport e : List.of(exportA, exportB)) {
            CompletableFuture<Void> idle = new CompletableFuture<>();
            on(() -> {
                e.close(() -> idle.complete(null));
                return null;
            });
            AioContext.await(idle, T);
        }
        on(() -> {
            deviceA.close();
            deviceB.close();
            return null;
        });
        io.close();
    }

    // ---------------------------------------------------------------- building the cases

    /** Header with any request, flags and size, then {@code payload} (which may disagree with the size). */
    private static byte[] raw(int request, int flags, long size, byte[] payload) {
        ByteBuffer b = ByteBuffer.allocate(VhostUserMessageLayout.HEADER_BYTES + payload.length).order(ByteOrder.nativeOrder());
        b.putInt(request).putInt(flags).putInt((int) size).put(payload);
        return b.array();
    }

    private static byte[] request(VhostUserRequest r, byte[] payload) {
        return VhostUserCodec.encode(VhostUserMessage.request(r, false, payload));
    }

    /** A payload of the smallest allowed size that the fd rule reads as "expects {@link #allowedFds} fds". */
    private static byte[] validPayload(VhostUserRequest r) {
        if (r.fds == FdRule.PER_REGION) {
            return VhostUserCodec.memTable(List.of(new MemRegion(0, 4096, 0x7000_0000L, 0)));
        }
        return new byte[r.size.min()]; // SET_VRING_KICK/CALL/ERR: queue 0, VRING_NOFD clear
    }

    /** The fd count {@link #validPayload} allows (for AT_MOST_ONE, the most). */
    private static int allowedFds(VhostUserRequest r) {
        return switch (r.fds) {
            case NONE -> 0;
            case ONE, AT_MOST_ONE, PER_REGION, UNLESS_NOFD -> 1;
            case ANY -> 0;
        };
    }

    private static String fdReason(VhostUserRequest r, int fds) {
        String w = r.describe();
        return switch (r.fds) {
            case NONE -> w + ": unexpected fds: " + fds + " attached, 0 expected";
            case ONE -> w + ": " + (fds == 0 ? "missing fds: " : "unexpected fds: ") + fds + " attached, 1 expected";
            case AT_MOST_ONE -> w + ": " + fds + " fds, at most 1 is tolerated";
            case PER_REGION -> w + ": 1 regions but " + fds + " fds";
            case UNLESS_NOFD -> w + ": queue 0 without VRING_NOFD needs 1 fd, got " + fds;
            case ANY -> throw new AssertionError("no fd case for " + w);
        };
    }

    private static String sizeReason(VhostUserRequest r, long size) {
        return r.describe() + ": bad size " + size + ", expected " + r.size.describe();
    }

    private static List<Case> cases() {
        List<Case> out = new ArrayList<>();
        for (VhostUserRequest r : VhostUserRequest.values()) {
            if (!r.served) {
                out.add(new Case(r + " (not served)", request(r, new byte[r.size.min()]), 0,
                        r.describe() + " is not supported by vblk (no feature that allows it was offered)"));
                continue;
            }
            byte[] ok = validPayload(r);
            int fds = allowedFds(r);
            out.add(new Case(r + " one fd too many", request(r, ok), fds + 1, fdReason(r, fds + 1)));
            if (fds > 0 && r.fds != FdRule.AT_MOST_ONE) {
                out.add(new Case(r + " one fd too few", request(r, ok), fds - 1, fdReason(r, fds - 1)));
            }
            // Refused at the header, before any payload byte is read: the header alone is sent.
            if (r.size.min() > 0) {
                int n = r.size.min() - 1;
                out.add(new Case(r + " payload one byte short", raw(r.id, 1, n, new byte[0]), 0, sizeReason(r, n)));
            }
            int n = r.size.max() + 1;
            out.add(new Case(r + " payload one byte long", raw(r.id, 1, n, new byte[0]), 0, sizeReason(r, n)));
            out.add(new Case(r + " size far too large", raw(r.id, 1, 0xffff_ffffL, new byte[0]), fds,
                    sizeReason(r, 0xffff_ffffL)));
        }
        for (int unknown : new int[]{0, 44, 63, 99, -1}) {
            out.add(new Case("unknown request " + unknown, raw(unknown, 1, 0, new byte[0]), 1,
                    "unknown request " + Integer.toUnsignedString(unknown) + " (flags 0x1, size 0)"));
        }
        // Sizes that a count inside the payload decides (PayloadRule).
        byte[] table = VhostUserCodec.memTable(List.of(new MemRegion(0, 4096, 0x7000_0000L, 0)));
        ByteBuffer.wrap(table).order(ByteOrder.nativeOrder()).putInt(0, 2);
        out.add(new Case("SET_MEM_TABLE counting more regions than it holds", request(VhostUserRequest.SET_MEM_TABLE, table), 2,
                "SET_MEM_TABLE (5): payload of 40 bytes cannot hold 2 regions (72 bytes)"));
        byte[] config = VhostUserCodec.config(0, 0, new byte[4]);
        ByteBuffer.wrap(config).order(ByteOrder.nativeOrder()).putInt(4, 6);
        out.add(new Case("SET_CONFIG whose size disagrees with its payload", request(VhostUserRequest.SET_CONFIG, config), 0,
                "SET_CONFIG (25): payload of 16 bytes for a config size of 6 (expected 18)"));
        out.add(new Case("version 2", raw(VhostUserRequest.GET_FEATURES.id, 2, 0, new byte[0]), 0,
                "GET_FEATURES (1): protocol version 2, only version 1 is spoken"));
        out.add(new Case("reserved flag bit", raw(VhostUserRequest.GET_FEATURES.id, 0x11, 0, new byte[0]), 0,
                "GET_FEATURES (1): reserved flag bits 0x10 set"));
        out.add(new Case("REPLY flag on a request", raw(VhostUserRequest.GET_FEATURES.id, 0x5, 0, new byte[0]), 0,
                "GET_FEATURES (1): the REPLY flag is set on a request"));
        return out;
    }

    // ---------------------------------------------------------------- the test

    private static long openEventfds() throws IOException {
        try (Stream<Path> fds = Files.list(Path.of("/proc/self/fd"))) {
            return fds.filter(p -> {
                try {
                    return Files.readSymbolicLink(p).toString().contains("eventfd");
                } catch (IOException e) {
                    return false; // the directory's own fd, closed while listing
                }
            }).count();
        }
    }

    private static void assertAnswers(RawClient a) throws Exception {
        a.send(VhostUserRequest.GET_QUEUE_NUM, false, new byte[0]);
        assertThat(VhostUserCodec.decodeU64(a.reply(5000))).as("the other connection still answers").isEqualTo(2);
    }

    @Test
    void everyRowOfTheTableRefusesWhatBreaksItAndOnlyThatConnectionCloses() throws Exception {
        List<Case> cases = cases();
        long servedRows = Arrays.stream(VhostUserRequest.values()).filter(r -> r.served).count();
        assertThat(cases.size()).as("cases").isGreaterThan((int) servedRows * 4);
        try (RawClient a = new RawClient(dir.resolve("a.sock").toString())) {
            assertAnswers(a);
            long eventfdsBefore = openEventfds();
            for (Case c : cases) {
                int[] attach = new int[c.fds];
                for (int i = 0; i < attach.length; i++) {
                    attach[i] = EventFds.eventfd(0, EventFds.EFD_CLOEXEC);
                }
                try (RawClient b = new RawClient(sockB)) {
                    b.sendBytes(c.wire, attach);
                    for (int fd : attach) {
                        FileIo.close(fd);
                    }
                    b.awaitClosedByServer(5000);
                }
                String reason = reasonsB.poll(10, TimeUnit.SECONDS);
                assertThat(reason).as(c.what).isNotNull().startsWith("malformed message: " + c.reason);
                assertAnswers(a);
            }
            // Every fd a refused message carried was closed by the server (ours were closed after sending).
            assertThat(openEventfds()).as("eventfds open after all cases").isEqualTo(eventfdsBefore);
            assertThat(on(() -> exportB.stats().protocolErrors())).isEqualTo(cases.size());
        }
        // The export that saw every malformed message still serves a well-behaved client.
        try (RawClient b = new RawClient(sockB)) {
            b.send(VhostUserRequest.GET_QUEUE_NUM, false, new byte[0]);
            assertThat(VhostUserCodec.decodeU64(b.reply(5000))).isEqualTo(2);
        }
        assertThat(reasonsB.poll(10, TimeUnit.SECONDS)).isEqualTo("front-end disconnected");
    }
}
