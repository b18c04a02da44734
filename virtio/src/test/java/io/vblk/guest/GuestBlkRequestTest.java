package io.vblk.guest;

import io.vblk.drivers.nullblk.NullDriver;
import io.vblk.virtio.blk.BlkDeviceConfig;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;

import static io.vblk.guest.BlkWireLayout.*;
import static io.vblk.guest.GuestFeatures.*;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * Every virtio-blk request type and error path (virtio 1.x 5.2.6), sent by the emulated guest
 * through real split virtqueues to the real device over the real null driver.
 */
@Timeout(30)
class GuestBlkRequestTest {
    private GuestRig rig;

    @AfterEach
    void tearDown() {
        if (rig != null) {
            rig.close();
        }
    }

    private GuestRig start(BlkDeviceConfig cfg, GuestBlkDriver.Options o) {
        rig = GuestRig.nullDevice(NullDriver.Completion.SYNC, cfg, 1, o);
        return rig;
    }

    private GuestRig start() {
        return start(new BlkDeviceConfig().serial("vblk-serial-0001"), GuestBlkDriver.Options.defaults());
    }

    @Test
    void negotiatesVersion1AndReadsTheConfiguration() {
        start();
        GuestBlkDriver g = rig.guest;
        assertThat(g.negotiated(F_VERSION_1)).isTrue();
        assertThat(g.negotiated(F_EVENT_IDX)).isTrue();
        assertThat(g.negotiated(F_INDIRECT_DESC)).isTrue();
        assertThat(g.negotiated(BLK_F_FLUSH)).isTrue();
        assertThat(g.negotiated(BLK_F_RO)).isFalse();
        BlkConfig c = g.config();
        assertThat(c.capacitySectors()).isEqualTo(GuestRig.NULL_BYTES / 512);
        assertThat(c.blkSize()).isEqualTo(512);
        if (g.negotiated(BLK_F_SEG_MAX)) {
            assertThat(c.segMax()).isPositive();
        }
        if (g.negotiated(BLK_F_MQ)) {
            assertThat(c.numQueues()).isEqualTo(1);
        }
    }

    @Test
    void readFillsTheBufferAndReportsDataPlusStatusAsUsedLength() {
        start();
        GuestRig.Done d = rig.roundTrip(0, s -> {
            s.data().asSlice(0, 4096).fill((byte) 0xAA);
            rig.q(0).postRead(s, 8, 4096, 1);
        });
        assertThat(d.status()).isEqualTo(S_OK);
        // 2.7.8: len is the bytes written into the chain: 4096 of data and the status byte.
        assertThat(d.usedLen()).isEqualTo(4096 + 1);
        // The null driver reads zeroes.
        assertThat(d.slot().data().asSlice(0, 4096).mismatch(MemorySegment.ofArray(new byte[4096]))).isEqualTo(-1);
    }

    @Test
    void writeReportsOnlyTheStatusByteAsWritten() {
        start();
        GuestRig.Done d = rig.roundTrip(0, s -> rig.q(0).postWrite(s, 16, 8192, 1));
        assertThat(d.status()).isEqualTo(S_OK);
        assertThat(d.usedLen()).isEqualTo(1);
    }

    @ParameterizedTest
    @ValueSource(booleans = {false, true})
    void multiSegmentRequestsWorkDirectAndIndirect(boolean indirect) {
        start();
        rig.q(0).setIndirect(indirect);
        GuestRig.Done r = rig.roundTrip(0, s -> rig.q(0).postRead(s, 0, 16384, 4));
        assertThat(r.status()).isEqualTo(S_OK);
        assertThat(r.usedLen()).isEqualTo(16384 + 1);
        GuestRig.Done w = rig.roundTrip(0, s -> rig.q(0).postWrite(s, 32, 16384, 4));
        assertThat(w.status()).isEqualTo(S_OK);
    }

    @Test
    void flushSucceeds() {
        start();
        assertThat(rig.roundTrip(0, s -> rig.q(0).postFlush(s)).status()).isEqualTo(S_OK);
    }

    @Test
    void getIdReturnsTheSerialNulPadded() {
        start();
        GuestRig.Done d = rig.roundTrip(0, s -> {
            s.data().asSlice(0, ID_BYTES).fill((byte) 0x55);
            rig.q(0).postGetId(s);
        });
        assertThat(d.status()).isEqualTo(S_OK);
        assertThat(d.usedLen()).isEqualTo(ID_BYTES + 1);
        byte[] id = d.slot().data().asSlice(0, ID_BYTES).toArray(ValueLayout.JAVA_BYTE);
        byte[] want = new byte[ID_BYTES];
        byte[] serial = "vblk-serial-0001".getBytes(StandardCharsets.US_ASCII);
        System.arraycopy(serial, 0, want, 0, serial.length);
        assertThat(id).isEqualTo(want);
    }

    @Test
    void discardAndWriteZeroesFollowTheSpecChecks() {
        start();
        GuestBlkDriver g = rig.guest;
        assertThat(g.negotiated(BLK_F_DISCARD)).isTrue();
        assertThat(g.negotiated(BLK_F_WRITE_ZEROES)).isTrue();
        long cap = g.config().capacitySectors();
        assertThat(dwz(T_DISCARD, 0, 8, 0)).isEqualTo(S_OK);
        assertThat(dwz(T_WRITE_ZEROES, 8, 8, 0)).isEqualTo(S_OK);
        assertThat(dwz(T_WRITE_ZEROES, 8, 8, DWZ_FLAG_UNMAP)).isEqualTo(S_OK);
        // 5.2.6.2: UNSUPP for discard with the unmap flag, and for any unknown flag.
        assertThat(dwz(T_DISCARD, 0, 8, DWZ_FLAG_UNMAP)).isEqualTo(S_UNSUPP);
        assertThat(dwz(T_DISCARD, 0, 8, 2)).isEqualTo(S_UNSUPP);
        assertThat(dwz(T_WRITE_ZEROES, 0, 8, 0x80000000)).isEqualTo(S_UNSUPP);
        // A range past the capacity cannot be executed.
        assertThat(dwz(T_DISCARD, cap - 4, 8, 0)).isEqualTo(S_IOERR);
        assertThat(dwz(T_WRITE_ZEROES, cap, 1, 0)).isEqualTo(S_IOERR);
        // More segments than max_discard_seg / max_write_zeroes_seg.
        BlkConfig c = g.config();
        if (c.maxDiscardSeg() == 1) {
            GuestRig.Done two = rig.roundTrip(0, s -> {
                s.setSegment(0, 0, 8, 0);
                s.setSegment(1, 16, 8, 0);
                rig.q(0).postSegments(s, T_DISCARD, 2);
            });
            assertThat(two.status()).isNotEqualTo(S_OK);
        }
        if (c.maxDiscardSectors() > 0 && c.maxDiscardSectors() < cap) {
            // 5.2.4: max_discard_sectors bounds one segment.
            assertThat(dwz(T_DISCARD, 0, (int) c.maxDiscardSectors() + 1, 0)).isNotEqualTo(S_OK);
        }
    }

    @Test
    void segmentsLongerThanTheConfiguredMaximumFail() {
        start(new BlkDeviceConfig().maxDiscardSectors(64).maxWriteZeroesSectors(32), GuestBlkDriver.Options.defaults());
        assertThat(rig.guest.config().maxDiscardSectors()).isEqualTo(64);
        assertThat(rig.guest.config().maxWriteZeroesSectors()).isEqualTo(32);
        assertThat(dwz(T_DISCARD, 0, 64, 0)).isEqualTo(S_OK);
        assertThat(dwz(T_DISCARD, 0, 65, 0)).isEqualTo(S_IOERR);
        assertThat(dwz(T_WRITE_ZEROES, 0, 32, 0)).isEqualTo(S_OK);
        assertThat(dwz(T_WRITE_ZEROES, 0, 33, 0)).isEqualTo(S_IOERR);
    }

    private int dwz(int type, long sector, int sectors, int flags) {
        return rig.roundTrip(0, s -> {
            s.setSegment(0, sector, sectors, flags);
            rig.q(0).postSegments(s, type, 1);
        }).status();
    }

    @ParameterizedTest
    @ValueSource(ints = {T_GET_LIFETIME, T_SECURE_ERASE, 2, 99, 0x7fffffff})
    void unknownAndUnofferedRequestTypesAreUnsupported(int type) {
        start();
        // 5.2.6.2: a request the device does not support gets VIRTIO_BLK_S_UNSUPP.
        GuestRig.Done d = rig.roundTrip(0, s -> rig.q(0).post(s, type, 0, s.dataGpa(), 512, 1, true));
        assertThat(d.status()).isEqualTo(S_UNSUPP);
        assertThat(rig.guest.transport().needsResetReason()).isNull();
    }

    @Test
    void requestsOutsideTheDeviceOrNotInSectorsFailWithIoerr() {
        start();
        long cap = rig.guest.config().capacitySectors();
        GuestBlkQueue q = rig.q(0);
        assertThat(rig.roundTrip(0, s -> q.postRead(s, cap, 512, 1)).status()).isEqualTo(S_IOERR);
        assertThat(rig.roundTrip(0, s -> q.postRead(s, cap - 4, 4096, 1)).status()).isEqualTo(S_IOERR);
        assertThat(rig.roundTrip(0, s -> q.postWrite(s, cap - 1, 1024, 1)).status()).isEqualTo(S_IOERR);
        assertThat(rig.roundTrip(0, s -> q.postRead(s, 0, 1000, 1)).status()).isEqualTo(S_IOERR);
        assertThat(rig.roundTrip(0, s -> q.postRead(s, Long.MAX_VALUE >>> 8, 512, 1)).status()).isEqualTo(S_IOERR);
        // The last sector itself is fine.
        assertThat(rig.roundTrip(0, s -> q.postRead(s, cap - 1, 512, 1)).status()).isEqualTo(S_OK);
        assertThat(rig.guest.transport().needsResetReason()).isNull();
    }

    @Test
    void readOnlyDeviceOffersRoAndRefusesWrites() {
        start(new BlkDeviceConfig().readOnly(true), GuestBlkDriver.Options.defaults());
        assertThat(rig.guest.negotiated(BLK_F_RO)).isTrue();
        GuestBlkQueue q = rig.q(0);
        // 5.2.6.2: IOERR for a write to a device offering VIRTIO_BLK_F_RO.
        assertThat(rig.roundTrip(0, s -> q.postWrite(s, 0, 4096, 1)).status()).isEqualTo(S_IOERR);
        assertThat(rig.roundTrip(0, s -> q.postRead(s, 0, 4096, 1)).status()).isEqualTo(S_OK);
        assertThat(rig.guest.negotiated(BLK_F_DISCARD)).isFalse();
        assertThat(dwz(T_DISCARD, 0, 8, 0)).isNotEqualTo(S_OK);
    }

    @Test
    void writebackToggleThroughConfigSpace() {
        start();
        assertThat(rig.guest.negotiated(BLK_F_CONFIG_WCE)).isTrue();
        GuestTransport t = rig.guest.transport();
        byte[] b = new byte[1];
        assertThat(t.writeConfig(CFG_WRITEBACK, new byte[] {0}, 1)).isTrue();
        t.readConfig(CFG_WRITEBACK, b, 1);
        assertThat(b[0]).isZero();
        assertThat(t.writeConfig(CFG_WRITEBACK, new byte[] {1}, 1)).isTrue();
        t.readConfig(CFG_WRITEBACK, b, 1);
        assertThat(b[0]).isEqualTo((byte) 1);
        // Read-only fields stay read-only.
        assertThat(t.writeConfig(CFG_CAPACITY, new byte[] {1}, 1)).isFalse();
        // Writes still complete in either mode.
        assertThat(rig.roundTrip(0, s -> rig.q(0).postWrite(s, 0, 4096, 1)).status()).isEqualTo(S_OK);
    }

    @Test
    void aChainWithoutStatusByteNeedsResetAndOtherDevicesKeepRunning() {
        start();
        try (GuestRig other = GuestRig.nullDevice(NullDriver.Completion.SYNC, new BlkDeviceConfig(), 1,
                GuestBlkDriver.Options.defaults())) {
            GuestBlkQueue q = rig.q(0);
            BlkSlot s = q.acquire();
            // 5.2.6: a request ends with a device-writable status byte; this one has none.
            GuestVring v = q.vring();
            v.beginChain();
            v.addBuffer(s.hdrGpa(), HDR_BYTES, false);
            v.addBuffer(s.dataGpa(), 512, false);
            v.commitChain(s.index());
            q.kick();
            long end = System.nanoTime() + 10_000_000_000L;
            String reason;
            while ((reason = rig.guest.transport().needsResetReason()) == null && System.nanoTime() < end) {
                Thread.onSpinWait();
            }
            assertThat(reason).isNotNull().containsIgnoringCase("status");
            // The other device, and this process, keep serving.
            assertThat(other.roundTrip(0, x -> other.q(0).postRead(x, 0, 4096, 1)).status()).isEqualTo(S_OK);
        }
    }
}
