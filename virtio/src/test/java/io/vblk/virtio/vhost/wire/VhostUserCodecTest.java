package io.vblk.virtio.vhost.wire;

import io.vblk.virtio.vhost.wire.VhostUserCodec.ConfigSpace;
import io.vblk.virtio.vhost.wire.VhostUserCodec.Inflight;
import io.vblk.virtio.vhost.wire.VhostUserCodec.MemRegion;
import io.vblk.virtio.vhost.wire.VhostUserCodec.VringAddr;
import io.vblk.virtio.vhost.wire.VhostUserCodec.VringState;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

@Timeout(value = 10, unit = TimeUnit.SECONDS)
class VhostUserCodecTest {
    private static VhostUserMessage msg(VhostUserRequest r, byte[] payload) {
        return VhostUserMessage.request(r, false, payload);
    }

    @Test
    void headerIsRequestFlagsSizeInNativeOrder() {
        byte[] wire = VhostUserCodec.encode(VhostUserMessage.request(VhostUserRequest.SET_FEATURES, true,
                VhostUserCodec.u64(0x1_4000_0000L)));
        ByteBuffer b = ByteBuffer.wrap(wire).order(ByteOrder.nativeOrder());
        assertThat(wire).hasSize(20);
        assertThat(b.getInt(0)).isEqualTo(2);
        assertThat(b.getInt(4)).isEqualTo(0x1 | 0x8);
        assertThat(b.getInt(8)).isEqualTo(8);
        assertThat(b.getLong(12)).isEqualTo(0x1_4000_0000L);
    }

    @Test
    void replyFlagsAreExactlyVersionAndReply() {
        assertThat(VhostUserMessage.reply(1, VhostUserCodec.u64(0)).flags()).isEqualTo(0x5);
    }

    @Test
    void u64RoundTrip() throws Exception {
        assertThat(VhostUserCodec.decodeU64(msg(VhostUserRequest.SET_FEATURES, VhostUserCodec.u64(-2L)))).isEqualTo(-2L);
    }

    @Test
    void vringStateRoundTripAndOffsets() throws Exception {
        byte[] p = VhostUserCodec.vringState(3, 0xfffe);
        ByteBuffer b = ByteBuffer.wrap(p).order(ByteOrder.nativeOrder());
        assertThat(b.getInt(0)).isEqualTo(3);
        assertThat(b.getInt(4)).isEqualTo(0xfffe);
        assertThat(VhostUserCodec.decodeVringState(msg(VhostUserRequest.SET_VRING_BASE, p)))
                .isEqualTo(new VringState(3, 0xfffe));
    }

    @Test
    void vringAddrRoundTripAndFieldOrderDescUsedAvailLog() throws Exception {
        VringAddr a = new VringAddr(1, 1, 0x1000, 0x3000, 0x2000, 0x4000);
        byte[] p = VhostUserCodec.vringAddr(a);
        ByteBuffer b = ByteBuffer.wrap(p).order(ByteOrder.nativeOrder());
        assertThat(p).hasSize(40);
        assertThat(b.getLong(8)).isEqualTo(0x1000);
        assertThat(b.getLong(16)).isEqualTo(0x3000);
        assertThat(b.getLong(24)).isEqualTo(0x2000);
        assertThat(b.getLong(32)).isEqualTo(0x4000);
        assertThat(VhostUserCodec.decodeVringAddr(msg(VhostUserRequest.SET_VRING_ADDR, p))).isEqualTo(a);
    }

    @Test
    void memTableRoundTripIsEightPlus32PerRegion() throws Exception {
        List<MemRegion> regions = List.of(new MemRegion(0, 0x10000, 0x7f00_0000_0000L, 0),
                new MemRegion(0x100000, 0x20000, 0x7f00_1000_0000L, 0x1000));
        byte[] p = VhostUserCodec.memTable(regions);
        assertThat(p).hasSize(8 + 64);
        assertThat(VhostUserCodec.decodeMemTable(msg(VhostUserRequest.SET_MEM_TABLE, p))).isEqualTo(regions);
    }

    @Test
    void memTableWithMoreRegionsThanBytesIsRejected() {
        byte[] p = VhostUserCodec.memTable(List.of(new MemRegion(0, 4096, 0, 0)));
        ByteBuffer.wrap(p).order(ByteOrder.nativeOrder()).putInt(0, 2);
        assertThatThrownBy(() -> VhostUserCodec.decodeMemTable(msg(VhostUserRequest.SET_MEM_TABLE, p)))
                .isInstanceOf(VhostUserProtocolException.class).hasMessageContaining("cannot hold 2 regions");
        ByteBuffer.wrap(p).order(ByteOrder.nativeOrder()).putInt(0, 9);
        assertThatThrownBy(() -> VhostUserCodec.decodeMemTable(msg(VhostUserRequest.SET_MEM_TABLE, p)))
                .hasMessageContaining("9 regions, at most 8");
    }

    @Test
    void singleRegionHasEightBytesOfPaddingFirst() throws Exception {
        MemRegion r = new MemRegion(0x1000, 0x2000, 0x3000, 0x40);
        byte[] p = VhostUserCodec.memReg(r);
        ByteBuffer b = ByteBuffer.wrap(p).order(ByteOrder.nativeOrder());
        assertThat(p).hasSize(40);
        assertThat(b.getLong(0)).isZero();
        assertThat(b.getLong(8)).isEqualTo(0x1000);
        assertThat(VhostUserCodec.decodeMemReg(msg(VhostUserRequest.ADD_MEM_REG, p))).isEqualTo(r);
    }

    @Test
    void configRoundTripAndSizeChecks() throws Exception {
        byte[] data = {1, 2, 3, 4, 5};
        byte[] p = VhostUserCodec.config(8, 0, data);
        ConfigSpace c = VhostUserCodec.decodeConfig(msg(VhostUserRequest.SET_CONFIG, p));
        assertThat(c.offset()).isEqualTo(8);
        assertThat(c.size()).isEqualTo(5);
        assertThat(c.data()).containsExactly(data);
        byte[] bad = VhostUserCodec.config(0, 0, new byte[4]);
        ByteBuffer.wrap(bad).order(ByteOrder.nativeOrder()).putInt(4, 6);
        assertThatThrownBy(() -> VhostUserCodec.decodeConfig(msg(VhostUserRequest.SET_CONFIG, bad)))
                .hasMessageContaining("payload of 16 bytes for a config size of 6");
        ByteBuffer.wrap(bad).order(ByteOrder.nativeOrder()).putInt(4, 300);
        assertThatThrownBy(() -> VhostUserCodec.decodeConfig(msg(VhostUserRequest.SET_CONFIG, bad)))
                .hasMessageContaining("config size 300, at most 256");
    }

    @Test
    void inflightIs24BytesWithU16QueueFields() throws Exception {
        Inflight i = new Inflight(0x3000, 0, 2, 128);
        byte[] p = VhostUserCodec.inflight(i);
        ByteBuffer b = ByteBuffer.wrap(p).order(ByteOrder.nativeOrder());
        assertThat(p).hasSize(24);
        assertThat(b.getShort(16)).isEqualTo((short) 2);
        assertThat(b.getShort(18)).isEqualTo((short) 128);
        assertThat(VhostUserCodec.decodeInflight(msg(VhostUserRequest.GET_INFLIGHT_FD, p))).isEqualTo(i);
    }

    @Test
    void wrongFixedSizeNamesMessageAndExpectation() {
        assertThatThrownBy(() -> VhostUserCodec.decodeVringState(msg(VhostUserRequest.SET_VRING_NUM, new byte[4])))
                .hasMessage("SET_VRING_NUM (8): payload of 4 bytes, expected 8");
    }

    @Test
    void requestNumbersMatchTheSpec() {
        assertThat(VhostUserRequest.of(1)).isEqualTo(VhostUserRequest.GET_FEATURES);
        assertThat(VhostUserRequest.of(11)).isEqualTo(VhostUserRequest.GET_VRING_BASE);
        assertThat(VhostUserRequest.of(24)).isEqualTo(VhostUserRequest.GET_CONFIG);
        assertThat(VhostUserRequest.of(31)).isEqualTo(VhostUserRequest.GET_INFLIGHT_FD);
        assertThat(VhostUserRequest.of(34)).isEqualTo(VhostUserRequest.RESET_DEVICE);
        assertThat(VhostUserRequest.of(36)).isEqualTo(VhostUserRequest.GET_MAX_MEM_SLOTS);
        assertThat(VhostUserRequest.of(40)).isEqualTo(VhostUserRequest.GET_STATUS);
        assertThat(VhostUserRequest.of(0)).isNull();
        assertThat(VhostUserRequest.of(99)).isNull();
        for (VhostUserRequest r : VhostUserRequest.values()) {
            assertThat(VhostUserRequest.of(r.id)).isSameAs(r);
        }
    }
}
