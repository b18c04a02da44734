package io.vblk.virtio.vhost.wire;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** Feeds the framer the way a non-blocking socket would: in arbitrary short pieces. */
@Timeout(value = 10, unit = TimeUnit.SECONDS)
class VhostUserFramerTest {
    private final Arena arena = Arena.ofConfined();
    private final MemorySegment buf = arena.allocate(VhostUserFramer.BUFFER_BYTES, 8);
    private final List<Integer> closed = new ArrayList<>();
    private final VhostUserFramer requests = new VhostUserFramer(VhostUserFramer.Direction.REQUESTS, buf, closed::add);

    @AfterEach
    void free() {
        arena.close();
    }

    /** Copies up to {@code max} bytes of {@code wire[from..]} as one read; returns what the framer produced. */
    private VhostUserMessage feed(VhostUserFramer f, byte[] wire, int from, int n, int... fds) throws Exception {
        assertThat(n).isLessThanOrEqualTo(f.wanted());
        MemorySegment.copy(MemorySegment.ofArray(wire), from, MemorySegment.ofAddress(f.writeAddress()).reinterpret(n), 0, n);
        return f.received(n, fds, fds.length, false);
    }

    private List<VhostUserMessage> feedInPieces(VhostUserFramer f, byte[] wire, int piece) throws Exception {
        List<VhostUserMessage> out = new ArrayList<>();
        int at = 0;
        while (at < wire.length) {
            int n = Math.min(Math.min(piece, f.wanted()), wire.length - at);
            VhostUserMessage m = feed(f, wire, at, n);
            at += n;
            if (m != null) {
                out.add(m);
            }
        }
        return out;
    }

    @Test
    void messagesSplitAtEveryByteBoundaryComeOutWhole() throws Exception {
        VhostUserMessage a = VhostUserMessage.request(VhostUserRequest.SET_VRING_ADDR, false,
                VhostUserCodec.vringAddr(new VhostUserCodec.VringAddr(0, 0, 1, 2, 3, 4)));
        VhostUserMessage b = VhostUserMessage.request(VhostUserRequest.GET_FEATURES, true, new byte[0]);
        byte[] wa = VhostUserCodec.encode(a);
        byte[] wb = VhostUserCodec.encode(b);
        byte[] both = new byte[wa.length + wb.length];
        System.arraycopy(wa, 0, both, 0, wa.length);
        System.arraycopy(wb, 0, both, wa.length, wb.length);
        for (int piece = 1; piece <= both.length; piece++) {
            assertThat(feedInPieces(requests, both, piece)).as("pieces of %d", piece).containsExactly(a, b);
            assertThat(requests.midMessage()).isFalse();
        }
    }

    @Test
    void fdsStayWithTheMessageTheyCameWith() throws Exception {
        byte[] kick = VhostUserCodec.encode(VhostUserMessage.request(VhostUserRequest.SET_VRING_KICK, false, VhostUserCodec.u64(1)));
        assertThat(feed(requests, kick, 0, 12, 42)).isNull();
        VhostUserMessage m = feed(requests, kick, 12, 8);
        assertThat(m.fds()).containsExactly(42);
        byte[] get = VhostUserCodec.encode(VhostUserMessage.request(VhostUserRequest.GET_FEATURES, false, new byte[0]));
        assertThat(feed(requests, get, 0, 12).fds()).isEmpty();
    }

    @Test
    void unknownRequestIsRejectedAtTheHeaderAndItsFdsClosed() throws Exception {
        byte[] wire = VhostUserCodec.encode(new VhostUserMessage(99, 1, new byte[8], null));
        assertThatThrownBy(() -> feed(requests, wire, 0, 12, 7, 8))
                .isInstanceOf(VhostUserProtocolException.class).hasMessageStartingWith("unknown request 99");
        assertThat(closed).containsExactly(7, 8);
    }

    @Test
    void badSizeIsRejectedBeforeThePayloadIsRead() {
        byte[] wire = VhostUserCodec.encode(VhostUserMessage.request(VhostUserRequest.SET_VRING_NUM, false, new byte[12]));
        assertThatThrownBy(() -> feed(requests, wire, 0, 12))
                .hasMessage("SET_VRING_NUM (8): bad size 12, expected 8");
        byte[] huge = VhostUserCodec.encode(VhostUserMessage.request(VhostUserRequest.SET_CONFIG, false, new byte[12]));
        java.nio.ByteBuffer.wrap(huge).order(java.nio.ByteOrder.nativeOrder()).putInt(8, -1);
        VhostUserFramer f = new VhostUserFramer(VhostUserFramer.Direction.REQUESTS, buf, closed::add);
        assertThatThrownBy(() -> feed(f, huge, 0, 12)).hasMessage("SET_CONFIG (25): bad size 4294967295, expected 12..268");
    }

    @Test
    void wrongVersionAndReplyFlagOnRequestAreRejected() {
        byte[] v2 = VhostUserCodec.encode(new VhostUserMessage(1, 2, new byte[0], null));
        assertThatThrownBy(() -> feed(requests, v2, 0, 12)).hasMessageContaining("protocol version 2");
        VhostUserFramer f = new VhostUserFramer(VhostUserFramer.Direction.REQUESTS, buf, closed::add);
        byte[] rep = VhostUserCodec.encode(VhostUserMessage.reply(1, new byte[0]));
        assertThatThrownBy(() -> feed(f, rep, 0, 12)).hasMessageContaining("REPLY flag is set on a request");
    }

    @Test
    void moreThanEightFdsOrTruncatedControlDataIsRejected() throws Exception {
        byte[] wire = VhostUserCodec.encode(VhostUserMessage.request(VhostUserRequest.SET_MEM_TABLE, false, new byte[8]));
        assertThat(feed(requests, wire, 0, 12, 1, 2, 3, 4, 5)).isNull();
        assertThatThrownBy(() -> feed(requests, wire, 12, 8, 6, 7, 8, 9))
                .hasMessageContaining("more than 8 file descriptors").hasMessageContaining("SET_MEM_TABLE");
        assertThat(closed).containsExactlyInAnyOrder(1, 2, 3, 4, 5, 6, 7, 8, 9);
        VhostUserFramer f = new VhostUserFramer(VhostUserFramer.Direction.REQUESTS, buf, closed::add);
        MemorySegment.copy(MemorySegment.ofArray(wire), 0, MemorySegment.ofAddress(f.writeAddress()).reinterpret(12), 0, 12);
        assertThatThrownBy(() -> f.received(12, new int[]{10}, 1, true)).hasMessageContaining("more than 8");
        assertThat(closed).contains(10);
    }

    @Test
    void discardMidMessageClosesHeldFds() throws Exception {
        byte[] wire = VhostUserCodec.encode(VhostUserMessage.request(VhostUserRequest.SET_VRING_CALL, false, VhostUserCodec.u64(0)));
        feed(requests, wire, 0, 5, 33);
        assertThat(requests.midMessage()).isTrue();
        requests.discard();
        assertThat(closed).containsExactly(33);
        assertThat(requests.midMessage()).isFalse();
    }

    @Test
    void replyDirectionDemandsTheReplyFlag() throws Exception {
        VhostUserFramer replies = new VhostUserFramer(VhostUserFramer.Direction.REPLIES, buf, closed::add);
        byte[] ok = VhostUserCodec.encode(VhostUserMessage.reply(15, VhostUserCodec.u64(5)));
        assertThat(feedInPieces(replies, ok, 7)).hasSize(1);
        byte[] notReply = VhostUserCodec.encode(VhostUserMessage.request(VhostUserRequest.GET_FEATURES, false, new byte[0]));
        assertThatThrownBy(() -> feed(replies, notReply, 0, 12)).hasMessageContaining("without the REPLY flag");
    }

    @Test
    void repliesAreCheckedAgainstTheReplyColumnOfTheTable() throws Exception {
        VhostUserFramer replies = new VhostUserFramer(VhostUserFramer.Direction.REPLIES, buf, closed::add);
        byte[] shortFeatures = VhostUserCodec.encode(VhostUserMessage.reply(VhostUserRequest.GET_FEATURES.id, new byte[4]));
        assertThatThrownBy(() -> feed(replies, shortFeatures, 0, 12))
                .hasMessage("GET_FEATURES (1): bad reply size 4, expected 8");
        VhostUserFramer f = new VhostUserFramer(VhostUserFramer.Direction.REPLIES, buf, closed::add);
        byte[] inflight = VhostUserCodec.encode(VhostUserMessage.reply(VhostUserRequest.GET_INFLIGHT_FD.id,
                VhostUserCodec.inflight(new VhostUserCodec.Inflight(4096, 0, 1, 128))));
        assertThat(feed(f, inflight, 0, 12)).isNull();
        assertThatThrownBy(() -> feed(f, inflight, 12, 24))
                .hasMessage("GET_INFLIGHT_FD (31): missing fds: 0 attached, 1 expected");
        VhostUserFramer g = new VhostUserFramer(VhostUserFramer.Direction.REPLIES, buf, closed::add);
        byte[] ack = VhostUserCodec.encode(VhostUserMessage.reply(VhostUserRequest.SET_MEM_TABLE.id, VhostUserCodec.u64(0)));
        assertThat(feed(g, ack, 0, 12, 5)).isNull();
        assertThatThrownBy(() -> feed(g, ack, 12, 8)).hasMessage("SET_MEM_TABLE (5): unexpected fds: 1 attached, 0 expected");
        assertThat(closed).contains(5);
    }

    /** Fuzzer finding: a GET_CONFIG reply of 1..11 bytes made the config rule read past the payload. */
    @Test
    void aConfigReplyShorterThanItsHeaderIsRefusedNotReadPast() throws Exception {
        VhostUserFramer replies = new VhostUserFramer(VhostUserFramer.Direction.REPLIES, buf, closed::add);
        byte[] shortConfig = VhostUserCodec.encode(VhostUserMessage.reply(VhostUserRequest.GET_CONFIG.id, new byte[4]));
        assertThat(feed(replies, shortConfig, 0, 12)).isNull();
        assertThatThrownBy(() -> feed(replies, shortConfig, 12, 4))
                .hasMessage("GET_CONFIG (24): payload of 4 bytes is shorter than the 12-byte config header");
    }
}
