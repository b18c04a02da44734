package io.vblk.guest;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * Reads back what the guest driver writes, at the byte offsets of virtio 1.x section 2.7 spelled
 * out here as numbers (not through {@link VringLayout}), and plays the device's side of the used
 * ring by hand to check reaping, kick suppression and interrupt requests.
 */
@Timeout(10)
class GuestVringLayoutTest {
    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong U64 = ValueLayout.JAVA_LONG.withOrder(ByteOrder.LITTLE_ENDIAN);

    private Arena arena;
    private GuestRam ram;

    @BeforeEach
    void setUp() {
        arena = Arena.ofShared();
        ram = GuestRam.ofArena("test", arena, GuestRam.DEFAULT_GPA_BASE, 1 << 20);
    }

    @AfterEach
    void tearDown() {
        ram.close();
    }

    // -- reading the rings back as a device would --

    private int u16(long gpa) {
        return Short.toUnsignedInt(ram.segment(gpa, 2).get(U16, 0));
    }

    private record Desc(long addr, int len, int flags, int next) {
    }

    private Desc desc(MemorySegment table, int i) {
        return new Desc(table.get(U64, 16L * i), table.get(U32, 16L * i + 8),
                Short.toUnsignedInt(table.get(U16, 16L * i + 12)), Short.toUnsignedInt(table.get(U16, 16L * i + 14)));
    }

    private MemorySegment descTable(GuestVring v) {
        return ram.segment(v.descGpa(), 16L * v.size());
    }

    /** Device side: puts {id, len} at used->ring[idx % size] and stores used->idx = idx + 1. */
    private void deviceUse(GuestVring v, int usedIdx, int id, int len) {
        MemorySegment used = ram.segment(v.usedGpa(), 6 + 8L * v.size());
        long off = 4 + 8L * (usedIdx % v.size());
        used.set(U32, off, id);
        used.set(U32, off + 4, len);
        used.set(U16, 2, (short) (usedIdx + 1));
    }

    @Test
    void partsAreAlignedAndSizedAsTheSpecSays() {
        for (int size = 1; size <= 1024; size <<= 1) {
            GuestVring v = GuestVring.allocate(ram, size);
            // 2.7: descriptor table 16-byte aligned, 16*size bytes; avail 2-aligned, 6+2*size; used 4-aligned, 6+8*size.
            assertThat(v.descGpa() % 16).isZero();
            assertThat(v.availGpa() % 2).isZero();
            assertThat(v.usedGpa() % 4).isZero();
            assertThat(v.availGpa()).isGreaterThanOrEqualTo(v.descGpa() + 16L * size);
            assertThat(v.usedGpa()).isGreaterThanOrEqualTo(v.availGpa() + 6 + 2L * size);
            assertThat(v.layout().size()).isEqualTo(size);
            assertThat(v.layout().descAddr()).isEqualTo(v.descGpa());
            assertThat(v.layout().availAddr()).isEqualTo(v.availGpa());
            assertThat(v.layout().usedAddr()).isEqualTo(v.usedGpa());
            assertThat(v.layout().nextAvailIdx()).isZero();
        }
    }

    @Test
    void refusesSizesThatAreNotPowersOfTwo() {
        for (int bad : new int[] {0, 3, 100, 65536, -4}) {
            assertThatThrownBy(() -> GuestVring.allocate(ram, bad)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("power of two");
        }
    }

    @Test
    void directChainIsLinkedWithNextAndWriteFlagsAndAppearsOnlyOnPublish() {
        GuestVring v = GuestVring.allocate(ram, 8);
        v.beginChain();
        v.addBuffer(0x200000, 16, false);
        v.addBuffer(0x300000, 4096, true);
        v.addBuffer(0x400000, 1, true);
        int head = v.commitChain(5);

        MemorySegment t = descTable(v);
        Desc d0 = desc(t, head);
        assertThat(d0.addr()).isEqualTo(0x200000);
        assertThat(d0.len()).isEqualTo(16);
        assertThat(d0.flags()).isEqualTo(1); // NEXT only: device-readable
        Desc d1 = desc(t, d0.next());
        assertThat(d1.addr()).isEqualTo(0x300000);
        assertThat(d1.len()).isEqualTo(4096);
        assertThat(d1.flags()).isEqualTo(1 | 2); // NEXT | WRITE
        Desc d2 = desc(t, d1.next());
        assertThat(d2.addr()).isEqualTo(0x400000);
        assertThat(d2.len()).isEqualTo(1);
        assertThat(d2.flags()).isEqualTo(2); // WRITE, end of chain
        assertThat(List.of(head, d0.next(), d1.next())).doesNotHaveDuplicates();

        // avail->ring[0] holds the head, but avail->idx stays 0 until publish (2.7.13).
        assertThat(u16(v.availGpa() + 4)).isEqualTo(head);
        assertThat(u16(v.availGpa() + 2)).isZero();
        v.publish();
        assertThat(u16(v.availGpa() + 2)).isEqualTo(1);
        assertThat(u16(v.availGpa())).isZero(); // flags: interrupts wanted
        assertThat(v.freeDescriptors()).isEqualTo(5);
        assertThat(v.inFlight()).isEqualTo(1);
    }

    @Test
    void indirectChainUsesOneQueueDescriptorPointingAtTheTable() {
        GuestVring v = GuestVring.allocate(ram, 4);
        long tableGpa = ram.allocate(4 * 16, 16);
        MemorySegment table = ram.segment(tableGpa, 4 * 16);
        v.beginIndirectChain(tableGpa, table, 4);
        v.addBuffer(0x200000, 16, false);
        v.addBuffer(0x300000, 512, false);
        v.addBuffer(0x400000, 1, true);
        int head = v.commitChain(0);

        Desc main = desc(descTable(v), head);
        assertThat(main.addr()).isEqualTo(tableGpa);
        assertThat(main.len()).isEqualTo(3 * 16); // 2.7.5.3: len is the table's size in bytes
        assertThat(main.flags()).isEqualTo(4); // INDIRECT alone: neither WRITE nor NEXT (2.7.5.3.1)
        // 2.7.5.3.1: inside the table, next indexes the table; the first is entry 0.
        Desc i0 = desc(table, 0);
        Desc i1 = desc(table, 1);
        Desc i2 = desc(table, 2);
        assertThat(i0).isEqualTo(new Desc(0x200000, 16, 1, 1));
        assertThat(i1).isEqualTo(new Desc(0x300000, 512, 1, 2));
        assertThat(i2.addr()).isEqualTo(0x400000);
        assertThat(i2.flags()).isEqualTo(2);
        assertThat(v.freeDescriptors()).isEqualTo(3);
    }

    @Test
    void reapReturnsTokensAndFreesTheWholeChain() {
        GuestVring v = GuestVring.allocate(ram, 8);
        int[] heads = new int[2];
        for (int r = 0; r < 2; r++) {
            v.beginChain();
            v.addBuffer(0x200000, 16, false);
            v.addBuffer(0x201000, 1, true);
            heads[r] = v.commitChain(10 + r);
        }
        v.publish();
        assertThat(v.freeDescriptors()).isEqualTo(4);
        // The device completes the second request first.
        deviceUse(v, 0, heads[1], 1);
        List<int[]> seen = new ArrayList<>();
        assertThat(v.reap((token, len) -> seen.add(new int[] {token, len}))).isEqualTo(1);
        assertThat(seen).hasSize(1);
        assertThat(seen.get(0)).containsExactly(11, 1);
        assertThat(v.freeDescriptors()).isEqualTo(6);
        deviceUse(v, 1, heads[0], 1);
        assertThat(v.reap((token, len) -> seen.add(new int[] {token, len}))).isEqualTo(1);
        assertThat(seen.get(1)).containsExactly(10, 1);
        assertThat(v.freeDescriptors()).isEqualTo(8);
        assertThat(v.inFlight()).isZero();
        assertThat(v.lastUsedIdx()).isEqualTo(2);
    }

    @Test
    void aUsedEntryForAChainNotInFlightIsADeviceBug() {
        GuestVring v = GuestVring.allocate(ram, 4);
        v.beginChain();
        v.addBuffer(0x200000, 16, false);
        int head = v.commitChain(0);
        v.publish();
        deviceUse(v, 0, (head + 1) % 4, 0);
        assertThatThrownBy(() -> v.reap((t, l) -> { })).isInstanceOf(GuestRingException.class)
                .hasMessageContaining("not the head of an in-flight chain");
    }

    @Test
    void aUsedIndexRunningAheadOfWhatIsInFlightIsADeviceBug() {
        GuestVring v = GuestVring.allocate(ram, 4);
        v.beginChain();
        v.addBuffer(0x200000, 16, false);
        v.commitChain(0);
        v.publish();
        deviceUse(v, 2, 0, 0); // used->idx = 3 with one chain in flight
        assertThatThrownBy(() -> v.reap((t, l) -> { })).isInstanceOf(GuestRingException.class)
                .hasMessageContaining("past the driver's");
    }

    @Test
    void kickFollowsNoNotifyWithoutEventIdx() {
        GuestVring v = GuestVring.allocate(ram, 4);
        MemorySegment used = ram.segment(v.usedGpa(), 6 + 8 * 4);
        assertThat(v.kickNeeded()).as("nothing added").isFalse();
        post(v);
        v.publish();
        assertThat(v.kickNeeded()).isTrue();
        used.set(U16, 0, (short) 1); // VIRTQ_USED_F_NO_NOTIFY
        post(v);
        v.publish();
        assertThat(v.kickNeeded()).isFalse();
    }

    @Test
    void kickFollowsAvailEventWithEventIdx() {
        GuestVring v = GuestVring.allocate(ram, 8);
        v.setEventIdx(true);
        MemorySegment used = ram.segment(v.usedGpa(), 6 + 8 * 8 + 2);
        long availEvent = 4 + 8 * 8; // after ring[size]
        // The device waits for the entry at index 0: the first add crosses it.
        used.set(U16, availEvent, (short) 0);
        post(v);
        v.publish();
        assertThat(v.kickNeeded()).isTrue();
        // The device is busy and says "wake me at index 5": idx 1 -> 3 does not cross it.
        used.set(U16, availEvent, (short) 5);
        post(v);
        post(v);
        v.publish();
        assertThat(v.kickNeeded()).isFalse();
        // idx 3 -> 6 crosses 5.
        post(v);
        post(v);
        post(v);
        v.publish();
        assertThat(v.kickNeeded()).isTrue();
        // The NO_NOTIFY flag is ignored with EVENT_IDX (2.7.10).
        used.set(U16, 0, (short) 1);
        used.set(U16, availEvent, (short) 6);
        post(v);
        v.publish();
        assertThat(v.kickNeeded()).isTrue();
    }

    @Test
    void interruptRequestsUseUsedEventWithEventIdxAndTheFlagWithout() {
        GuestVring plain = GuestVring.allocate(ram, 4);
        plain.disableInterrupts();
        assertThat(u16(plain.availGpa())).isEqualTo(1); // VIRTQ_AVAIL_F_NO_INTERRUPT
        assertThat(plain.enableInterrupts()).isTrue();
        assertThat(u16(plain.availGpa())).isZero();

        GuestVring ev = GuestVring.allocate(ram, 4);
        ev.setEventIdx(true);
        long usedEvent = ev.availGpa() + 4 + 2 * 4;
        int head = post(ev);
        ev.publish();
        deviceUse(ev, 0, head, 1);
        ev.reap((t, l) -> { });
        assertThat(ev.enableInterrupts()).isTrue();
        assertThat(u16(usedEvent)).isEqualTo(1); // notify me when you write entry 1
        assertThat(u16(ev.availGpa())).as("flags stay 0 with EVENT_IDX (2.7.10)").isZero();
        ev.disableInterrupts();
        assertThat(u16(usedEvent)).isEqualTo(0); // parked one behind
        assertThat(u16(ev.availGpa())).isZero();
        // A used entry arriving before re-enabling makes enableInterrupts report work.
        head = post(ev);
        ev.publish();
        deviceUse(ev, 1, head, 1);
        assertThat(ev.enableInterrupts()).isFalse();
    }

    @Test
    void indicesWrapAt65536() {
        GuestVring v = GuestVring.allocate(ram, 4);
        v.setEventIdx(true);
        int usedIdx = 0;
        for (int i = 0; i < 70_000; i++) {
            int head = post(v);
            v.publish();
            assertThat(u16(v.availGpa() + 2)).isEqualTo((i + 1) & 0xffff);
            assertThat(u16(v.availGpa() + 4 + 2L * (i % 4))).isEqualTo(head);
            deviceUse(v, usedIdx, head, 0);
            usedIdx = (usedIdx + 1) & 0xffff;
            assertThat(v.reap((t, l) -> { })).isEqualTo(1);
        }
        assertThat(v.freeDescriptors()).isEqualTo(4);
        assertThat(v.lastUsedIdx()).isEqualTo(70_000 & 0xffff);
    }

    @Test
    void randomChainsReadBackAsPosted() {
        long seed = System.nanoTime();
        System.out.println("randomChainsReadBackAsPosted seed=" + seed);
        SplittableRandom rnd = new SplittableRandom(seed);
        GuestVring v = GuestVring.allocate(ram, 16);
        int usedIdx = 0;
        for (int round = 0; round < 2000; round++) {
            int n = 1 + rnd.nextInt(v.freeDescriptors());
            long[] addr = new long[n];
            int[] len = new int[n];
            boolean[] w = new boolean[n];
            v.beginChain();
            for (int i = 0; i < n; i++) {
                addr[i] = GuestRam.DEFAULT_GPA_BASE + rnd.nextInt(1 << 20);
                len[i] = 1 + rnd.nextInt(65536);
                w[i] = rnd.nextBoolean();
                v.addBuffer(addr[i], len[i], w[i]);
            }
            int head = v.commitChain(round);
            v.publish();
            MemorySegment t = descTable(v);
            int d = head;
            for (int i = 0; i < n; i++) {
                Desc x = desc(t, d);
                assertThat(x.addr()).as("seed %d round %d desc %d", seed, round, i).isEqualTo(addr[i]);
                assertThat(x.len()).isEqualTo(len[i]);
                assertThat((x.flags() & 2) != 0).isEqualTo(w[i]);
                assertThat((x.flags() & 1) != 0).isEqualTo(i < n - 1);
                d = x.next();
            }
            int[] got = new int[1];
            deviceUse(v, usedIdx, head, 0);
            usedIdx++;
            v.reap((tok, l) -> got[0] = tok);
            assertThat(got[0]).isEqualTo(round);
            assertThat(v.freeDescriptors()).isEqualTo(16);
        }
    }

    @Test
    void needEventMatchesTheSpecFormula() {
        // 2.7.10: notify iff (u16)(new - event - 1) < (u16)(new - old)
        assertThat(VringLayout.needEvent(0, 1, 0)).isTrue();
        assertThat(VringLayout.needEvent(1, 1, 0)).isFalse();
        assertThat(VringLayout.needEvent(5, 6, 3)).isTrue();
        assertThat(VringLayout.needEvent(5, 5, 3)).isFalse();
        assertThat(VringLayout.needEvent(65535, 1, 65534)).isTrue(); // across the wrap
        assertThat(VringLayout.needEvent(2, 1, 65534)).isFalse();
    }

    private int post(GuestVring v) {
        v.beginChain();
        v.addBuffer(0x200000, 16, false);
        return v.commitChain(0);
    }
}
