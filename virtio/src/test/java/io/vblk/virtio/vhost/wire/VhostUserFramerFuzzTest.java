package io.vblk.virtio.vhost.wire;

import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import com.code_intelligence.jazzer.junit.FuzzTest;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.HashSet;
import java.util.Set;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Fuzz target: the vhost-user frame reader ({@link VhostUserFramer}) fed a byte stream cut into
 * reads of any length, each carrying any number of fds (up to 9, with or without MSG_CTRUNC).
 * Headers are either raw bytes or built from a request number, flags and a size the fuzzer picks
 * (every request type, sizes near the table's bounds), so both the header checks and the payload
 * and fd rules are reached. Properties: the framer never throws anything but a
 * {@link VhostUserProtocolException} (or refuses use after one), never returns a message that
 * breaks the table, and every fd handed to it is either returned inside a message or closed,
 * exactly once. Regression corpus: {@code src/test/resources/.../VhostUserFramerFuzzTestInputs};
 * fuzz with {@code JAZZER_FUZZ=1} (docs/FUZZING.md).
 */
class VhostUserFramerFuzzTest {
    private static final int FIRST_FAKE_FD = 100_000;

    @FuzzTest(maxDuration = "3h", maxExecutions = 10_000_000)
    void frames(FuzzedDataProvider d) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buf = arena.allocate(VhostUserFramer.BUFFER_BYTES, 8);
            Set<Integer> closed = new HashSet<>();
            Set<Integer> returned = new HashSet<>();
            VhostUserFramer.Direction dir = d.consumeBoolean() ? VhostUserFramer.Direction.REQUESTS
                    : VhostUserFramer.Direction.REPLIES;
            VhostUserFramer f = new VhostUserFramer(dir, buf, fd -> {
                assertThat(closed.add(fd)).as("fd %d closed once", fd).isTrue();
            });
            int nextFd = FIRST_FAKE_FD;
            byte[] stream = stream(d);
            int at = 0;
            boolean failed = false;
            while (at < stream.length && !failed) {
                int n = Math.min(d.consumeInt(1, f.wanted()), stream.length - at);
                MemorySegment.copy(MemorySegment.ofArray(stream), at, MemorySegment.ofAddress(f.writeAddress()).reinterpret(n), 0, n);
                at += n;
                int fdCount = d.consumeInt(0, 12) <= 9 ? 0 : d.consumeInt(1, 9);
                int[] fds = new int[Math.max(fdCount, 1)];
                for (int i = 0; i < fdCount; i++) {
                    fds[i] = nextFd++;
                }
                boolean truncated = d.consumeInt(0, 31) == 0;
                try {
                    VhostUserMessage m = f.received(n, fds, fdCount, truncated);
                    if (m != null) {
                        checkMessage(dir, m);
                        for (int fd : m.fds()) {
                            assertThat(returned.add(fd)).isTrue();
                        }
                    }
                } catch (VhostUserProtocolException e) {
                    assertThat(e.getMessage()).isNotBlank();
                    failed = true;
                }
            }
            if (!failed) {
                f.discard();
            }
            for (int fd = FIRST_FAKE_FD; fd < nextFd; fd++) {
                assertThat(closed.contains(fd) ^ returned.contains(fd)).as("fd %d closed or returned, once", fd).isTrue();
            }
        }
    }

    /** The bytes a peer sends: raw, or a run of headers the fuzzer shapes, each with its payload. */
    private static byte[] stream(FuzzedDataProvider d) {
        if (d.consumeInt(0, 7) == 0) {
            return d.consumeBytes(VhostUserFramer.BUFFER_BYTES * 2);
        }
        int messages = d.consumeInt(1, 4);
        ByteBuffer b = ByteBuffer.allocate(messages * (VhostUserFramer.BUFFER_BYTES + 12)).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < messages; i++) {
            int request = d.consumeInt(0, 15) == 0 ? d.consumeInt() : d.consumeInt(0, 44);
            int flags = switch (d.consumeInt(0, 5)) {
                case 0 -> d.consumeInt();
                case 1 -> VhostUserMessageLayout.VERSION | VhostUserMessageLayout.FLAG_REPLY;
                case 2 -> VhostUserMessageLayout.VERSION | VhostUserMessageLayout.FLAG_NEED_REPLY;
                default -> VhostUserMessageLayout.VERSION;
            };
            int size = switch (d.consumeInt(0, 5)) {
                case 0 -> d.consumeInt();
                case 1 -> d.consumeInt(0, VhostUserMessageLayout.MAX_PAYLOAD_BYTES + 8);
                case 2 -> 0;
                case 3 -> 40;
                default -> 8;
            };
            b.putInt(request).putInt(flags).putInt(size);
            int payload = Math.max(0, Math.min(size, VhostUserMessageLayout.MAX_PAYLOAD_BYTES));
            byte[] p = d.consumeBytes(payload);
            b.put(p);
            b.put(new byte[payload - p.length]);
        }
        byte[] out = new byte[b.position()];
        b.flip().get(out);
        return out;
    }

    private static void checkMessage(VhostUserFramer.Direction dir, VhostUserMessage m) {
        assertThat(m.size()).isBetween(0, VhostUserMessageLayout.MAX_PAYLOAD_BYTES);
        assertThat(m.fds().length).isBetween(0, VhostUserMessageLayout.MAX_MEM_TABLE_REGIONS);
        assertThat(m.isReply()).isEqualTo(dir == VhostUserFramer.Direction.REPLIES);
        VhostUserRequest kind = m.kind();
        assertThat(kind).as("request %d is in the table", m.request()).isNotNull();
        if (dir == VhostUserFramer.Direction.REQUESTS) {
            assertThat(kind.served).as("%s is served", kind).isTrue();
        }
    }
}
