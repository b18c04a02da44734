package io.vblk.virtio.queue;

import io.vblk.guest.GuestPackedVring;
import io.vblk.guest.GuestRam;
import io.vblk.virtio.memory.GuestMemory;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static io.vblk.guest.GuestPackedVring.F_AVAIL;
import static io.vblk.guest.GuestPackedVring.F_INDIRECT;
import static io.vblk.guest.GuestPackedVring.F_NEXT;
import static io.vblk.guest.GuestPackedVring.F_USED;
import static io.vblk.guest.GuestPackedVring.F_WRITE;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * Conformance of the packed virtqueue with virtio 1.2 section 2.8: the device's {@link PackedQueue}
 * against the mock guest's {@link GuestPackedVring} (written from the spec separately), plus forged
 * descriptors for what no well-behaved driver writes.
 */
@Timeout(10)
class PackedQueueTest {
    static final long ALL = SplitQueueTest.ALL | VirtioFeatures.bit(VirtioFeatures.RING_PACKED);
    static final long NO_EVENT_IDX = ALL & ~VirtioFeatures.bit(VirtioFeatures.RING_EVENT_IDX);
    static final long NO_INDIRECT = ALL & ~VirtioFeatures.bit(VirtioFeatures.RING_INDIRECT_DESC);

    GuestRam ram;
    GuestMemory memory;
    GuestPackedVring v;
    final PackedQueue q = new PackedQueue("p0");
    final DescriptorChain c = new DescriptorChain();
    final List<int[]> used = new ArrayList<>();

    @AfterEach
    void close() {
        if (ram != null) {
            memory.release();
            ram.close();
        }
    }

    PackedQueue started(int size, long features) {
        ram = GuestRam.ofArenaRegions("packed-test", Arena.ofShared(), QueueGuest.R0, QueueGuest.REGION_SIZE,
                QueueGuest.R1, QueueGuest.REGION_SIZE);
        memory = ram.guestMemory();
        v = GuestPackedVring.allocate(ram, size);
        v.setEventIdx(VirtioFeatures.has(features, VirtioFeatures.RING_EVENT_IDX));
        assertThat(q.start(v.layout(), memory, features, VirtQueue.MAX_SIZE)).as(q.brokenReason()).isTrue();
        return q;
    }

    long alloc(long len) {
        return ram.allocate(len, 16);
    }

    /** Posts a chain of {@code readable} then {@code writable} buffers of {@code len} bytes each. */
    int post(int token, int readable, int writable, int len) {
        v.beginChain();
        for (int i = 0; i < readable + writable; i++) {
            v.addBuffer(alloc(len), len, i >= readable);
        }
        return v.commitChain(token);
    }

    void assertBroken(QueueViolation violation) {
        assertThat(q.pop(c)).isFalse();
        assertThat(q.violation()).as(q.brokenReason()).isEqualTo(violation);
        assertThat(q.brokenReason()).contains(violation.name()).contains(violation.packedSection());
        assertThat(q.pop(c)).isFalse();
        assertThat(q.hasAvailable()).isFalse();
    }

    int reap() {
        return v.reap((token, len) -> used.add(new int[]{token, len}));
    }

    @Test
    void emptyRingPopsNothing() {
        started(8, ALL);
        assertThat(q.hasAvailable()).isFalse();
        assertThat(q.pop(c)).isFalse();
        assertThat(q.broken()).isFalse();
    }

    @Test
    void chainIsInvisibleUntilPublishedThenPopsReadableThenWritable() {
        started(8, ALL);
        long hdr = alloc(16);
        long data = alloc(4096);
        long status = alloc(1);
        v.beginChain();
        v.addBuffer(hdr, 16, false);
        v.addBuffer(data, 4096, true);
        v.addBuffer(status, 1, true);
        int id = v.commitChain(42);
        assertThat(q.hasAvailable()).as("head flags are stored at publish").isFalse();
        v.publish();
        assertThat(q.pop(c)).isTrue();
        assertThat(c.head()).isEqualTo(id);
        assertThat(c.readableSegments()).isEqualTo(1);
        assertThat(c.writableSegments()).isEqualTo(2);
        assertThat(c.writableBytes()).isEqualTo(4097);
        assertThat(c.address(0)).isEqualTo(memory.hostAddress(hdr, 1));
        assertThat(c.address(1)).isEqualTo(memory.hostAddress(data, 1));
        assertThat(c.address(2)).isEqualTo(memory.hostAddress(status, 1));
        assertThat(q.pop(c)).isFalse();
        assertThat(v.hasUsed()).isFalse();

        q.push(id, 4097);
        // 2.8.1: a used descriptor has AVAIL == USED == the device wrap counter (1 on the first lap).
        assertThat(v.flagsAt(0) & (F_AVAIL | F_USED)).isEqualTo(F_AVAIL | F_USED);
        assertThat(v.idAt(0)).isEqualTo(id);
        assertThat(reap()).isEqualTo(1);
        assertThat(used.get(0)).containsExactly(42, 4097);
        // 2.8.6: both sides skipped the three descriptors of the chain.
        assertThat(q.nextAvailIdx() & 0xffff).isEqualTo(3 | 0x8000);
        assertThat(v.usedState()).isEqualTo(3 | 0x8000);
        assertThat(v.freeDescriptors()).isEqualTo(8);
    }

    @Test
    void chainsAcrossTheRingEndFlipTheWrapCounterMidChain() {
        started(5, ALL);
        for (int round = 0; round < 40; round++) {
            // Chains of 3 in a ring of 5: every other chain runs across the end.
            long[] bufs = {alloc(16), alloc(512), alloc(1)};
            v.beginChain();
            v.addBuffer(bufs[0], 16, false);
            v.addBuffer(bufs[1], 512, true);
            v.addBuffer(bufs[2], 1, true);
            int id = v.commitChain(round);
            v.publish();
            assertThat(q.pop(c)).as("round %d %s", round, q).isTrue();
            assertThat(c.head()).isEqualTo(id);
            for (int i = 0; i < 3; i++) {
                assertThat(c.address(i)).isEqualTo(memory.hostAddress(bufs[i], 1));
            }
            q.push(id, 513);
            used.clear();
            assertThat(reap()).isEqualTo(1);
            assertThat(used.get(0)).containsExactly(round, 513);
            assertThat(q.broken()).isFalse();
            assertThat(v.freeDescriptors()).isEqualTo(5);
            ram.rewind(ram.mark()); // keep allocating fresh buffers; the region is large enough
        }
        // 40 chains of 3 = 120 descriptors = 24 laps of 5: both sides back at slot 0, wrap 1.
        assertThat(q.nextAvailIdx()).isEqualTo(0x8000 | 0x8000 << 16);
        assertThat(v.availState()).isEqualTo(0x8000);
    }

    @Test
    void outOfOrderCompletionsWriteUsedDescriptorsInCompletionOrder() {
        started(8, ALL);
        int a = post(1, 1, 1, 16); // slots 0-1
        int b = post(2, 1, 2, 16); // slots 2-4
        int d = post(3, 1, 1, 16); // slots 5-6
        v.publish();
        for (int i = 0; i < 3; i++) {
            assertThat(q.pop(c)).isTrue();
        }
        q.push(d, 7);
        q.push(a, 5);
        q.push(b, 6);
        // Used descriptors at slot 0 (d, skip 2), slot 2 (a, skip 2), slot 4 (b, skip 3).
        assertThat(v.idAt(0)).isEqualTo(d);
        assertThat(v.idAt(2)).isEqualTo(a);
        assertThat(v.idAt(4)).isEqualTo(b);
        assertThat(reap()).isEqualTo(3);
        assertThat(used).extracting(u -> u[0]).containsExactly(3, 1, 2);
        assertThat(v.inFlight()).isZero();
    }

    @Test
    void seededRandomChainsAndCompletionOrderKeepBothSidesInStep() {
        long seed = System.nanoTime();
        System.out.println("PackedQueueTest random seed " + seed);
        Random rnd = new Random(seed);
        started(7, ALL); // 2.8: a packed ring need not be a power of two
        ArrayDeque<Integer> popped = new ArrayDeque<>();
        int[] tokenOfId = new int[7];
        int next = 0;
        int completed = 0;
        long mark = ram.mark();
        for (int step = 0; step < 5000; step++) {
            ram.rewind(mark);
            int descs = 1 + rnd.nextInt(3);
            if (rnd.nextBoolean() && v.freeDescriptors() >= descs && v.inFlight() < 7) {
                int id = post(next, 1, descs - 1, 8);
                tokenOfId[id] = next++;
                if (rnd.nextInt(3) == 0) {
                    v.publish();
                }
            } else if (!popped.isEmpty()) {
                // Complete a random popped one (rotate the deque a random amount first).
                for (int r = rnd.nextInt(popped.size()); r > 0; r--) {
                    popped.addLast(popped.removeFirst());
                }
                int id = popped.removeFirst();
                q.push(id, tokenOfId[id] & 0xff);
            } else {
                v.publish();
            }
            while (q.pop(c)) {
                popped.add(c.head());
            }
            assertThat(q.broken()).as("seed %d: %s", seed, q.brokenReason()).isFalse();
            used.clear();
            reap();
            for (int[] u : used) {
                assertThat(u[1]).as("seed %d", seed).isEqualTo(u[0] & 0xff);
                completed++;
            }
        }
        assertThat(completed).as("seed %d", seed).isGreaterThan(500);
    }

    @Test
    void indirectChainReadsTheTable() {
        started(8, ALL);
        long table = alloc(4 * 16);
        MemorySegment t = ram.segment(table, 4 * 16);
        long hdr = alloc(16);
        long data = alloc(4096);
        long status = alloc(1);
        v.beginIndirectChain(table, t, 4);
        v.addBuffer(hdr, 16, false);
        v.addBuffer(data, 4096, true);
        v.addBuffer(status, 1, true);
        int id = v.commitChain(9);
        v.publish();
        assertThat(q.pop(c)).isTrue();
        assertThat(c.head()).isEqualTo(id);
        assertThat(c.segments()).isEqualTo(3);
        assertThat(c.readableBytes()).isEqualTo(16);
        assertThat(c.writableBytes()).isEqualTo(4097);
        q.push(id, 1);
        assertThat(reap()).isEqualTo(1);
        // An indirect buffer takes one ring descriptor.
        assertThat(v.usedState()).isEqualTo(1 | 0x8000);
        assertThat(q.nextAvailIdx() & 0xffff).isEqualTo(1 | 0x8000);
    }

    @Test
    void descriptorMarkedWithTheWrongWrapIsNotAvailable() {
        started(4, ALL);
        // AVAIL and USED equal: a used descriptor, or the driver's bits for the other lap.
        v.forgeDescriptor(0, alloc(16), 16, 0, F_AVAIL | F_USED);
        assertThat(q.hasAvailable()).isFalse();
        v.forgeDescriptor(0, alloc(16), 16, 0, F_USED); // available for wrap 0, not for wrap 1
        assertThat(q.pop(c)).isFalse();
        assertThat(q.broken()).isFalse();
        v.forgeDescriptor(0, alloc(16), 16, 0, F_AVAIL);
        assertThat(q.pop(c)).isTrue();
    }

    // ---- bad flags and chains: NEEDS_RESET reasons ----

    @Test
    void indirectWithoutTheFeatureBreaksTheQueue() {
        started(4, NO_INDIRECT);
        v.forgeDescriptor(0, alloc(32), 32, 0, F_AVAIL | F_INDIRECT);
        assertBroken(QueueViolation.INDIRECT_NOT_NEGOTIATED);
    }

    @Test
    void indirectTogetherWithNextBreaksTheQueue() {
        started(4, ALL);
        v.forgeDescriptor(1, alloc(16), 16, 0, F_AVAIL);
        v.forgeDescriptor(0, alloc(32), 32, 0, F_AVAIL | F_INDIRECT | F_NEXT);
        assertBroken(QueueViolation.INDIRECT_WITH_NEXT);
    }

    @Test
    void indirectInsideADirectChainBreaksTheQueue() {
        started(4, ALL);
        v.forgeDescriptor(1, alloc(32), 32, 0, F_AVAIL | F_INDIRECT);
        v.forgeDescriptor(0, alloc(16), 16, 0, F_AVAIL | F_NEXT);
        assertBroken(QueueViolation.INDIRECT_WITH_NEXT);
    }

    @Test
    void badIndirectLengthBreaksTheQueue() {
        started(4, ALL);
        v.forgeDescriptor(0, alloc(32), 24, 0, F_AVAIL | F_INDIRECT);
        assertBroken(QueueViolation.BAD_INDIRECT_LENGTH);
    }

    @Test
    void readableAfterWritableBreaksTheQueue() {
        started(4, ALL);
        v.forgeDescriptor(1, alloc(16), 16, 0, F_AVAIL);
        v.forgeDescriptor(0, alloc(16), 16, 0, F_AVAIL | F_WRITE | F_NEXT);
        assertBroken(QueueViolation.READABLE_AFTER_WRITABLE);
    }

    @Test
    void chainThatNeverEndsBreaksTheQueue() {
        started(4, ALL);
        for (int i = 3; i >= 0; i--) {
            v.forgeDescriptor(i, alloc(16), 16, 0, F_AVAIL | F_NEXT);
        }
        assertBroken(QueueViolation.CHAIN_LOOP);
    }

    @Test
    void bufferIdOutsideTheQueueBreaksIt() {
        started(4, ALL);
        v.forgeDescriptor(0, alloc(16), 16, 4, F_AVAIL);
        assertBroken(QueueViolation.HEAD_OUT_OF_RANGE);
    }

    @Test
    void bufferIdReusedWhileInFlightBreaksTheQueue() {
        started(4, ALL);
        v.forgeDescriptor(0, alloc(16), 16, 2, F_AVAIL);
        assertThat(q.pop(c)).isTrue();
        v.forgeDescriptor(1, alloc(16), 16, 2, F_AVAIL);
        assertBroken(QueueViolation.BUFFER_ID_IN_USE);
    }

    @Test
    void bufferOutsideGuestMemoryBreaksTheQueue() {
        started(4, ALL);
        v.forgeDescriptor(0, QueueGuest.HOLE, 16, 0, F_AVAIL);
        assertBroken(QueueViolation.ADDRESS_OUT_OF_RANGE);
    }

    @Test
    void startChecksSizeAlignmentAndResumeIndex() {
        ram = GuestRam.ofArenaRegions("packed-test", Arena.ofShared(), QueueGuest.R0, QueueGuest.REGION_SIZE);
        memory = ram.guestMemory();
        v = GuestPackedVring.allocate(ram, 8);
        QueueLayout l = v.layout();
        assertThat(q.start(new QueueLayout(2048, l.descAddr(), l.availAddr(), l.usedAddr(), 0x8000), memory, ALL,
                VirtQueue.MAX_SIZE)).isFalse();
        assertThat(q.violation()).isEqualTo(QueueViolation.BAD_QUEUE_SIZE);
        assertThat(q.start(new QueueLayout(8, l.descAddr() + 8, l.availAddr(), l.usedAddr(), 0x8000), memory, ALL,
                VirtQueue.MAX_SIZE)).isFalse();
        assertThat(q.violation()).isEqualTo(QueueViolation.RING_MISALIGNED);
        assertThat(q.start(new QueueLayout(8, l.descAddr(), l.availAddr(), l.usedAddr(), 0x8000 | 8), memory, ALL,
                VirtQueue.MAX_SIZE)).isFalse();
        assertThat(q.violation()).isEqualTo(QueueViolation.BAD_RESUME_INDEX);
        // Resume at slot 6, wrap 0: the driver's descriptors there carry the wrap-0 bits.
        assertThat(q.start(new QueueLayout(8, l.descAddr(), l.availAddr(), l.usedAddr(), 6), memory, ALL,
                VirtQueue.MAX_SIZE)).isTrue();
        v.forgeDescriptor(6, alloc(16), 16, 1, F_USED);
        assertThat(q.pop(c)).isTrue();
        assertThat(q.nextAvailIdx() & 0xffff).isEqualTo(7);
    }

    // ---- event suppression (2.8.10) ----

    @Test
    void deviceSwitchesKicksOffAndBackOnWithTheDescriptorEvent() {
        started(8, ALL);
        q.disableNotification();
        assertThat(v.deviceEvent() >>> 16).isEqualTo(GuestPackedVring.EVENT_DISABLE);
        post(0, 1, 0, 16);
        v.publish();
        assertThat(v.kickNeeded()).as("kicks off").isFalse();
        assertThat(q.pop(c)).isTrue();
        assertThat(q.enableNotification()).as("nothing more waiting").isFalse();
        // EVENT_IDX: kick when the descriptor at the device's read position (slot 1, wrap 1) is made available.
        assertThat(v.deviceEvent()).isEqualTo((1 | 0x8000) | GuestPackedVring.EVENT_DESC << 16);
        post(1, 1, 0, 16);
        v.publish();
        assertThat(v.kickNeeded()).isTrue();
        post(2, 1, 0, 16);
        v.publish();
        assertThat(v.kickNeeded()).as("the device has not read slot 1 yet: one kick was enough").isFalse();
    }

    @Test
    void enableWithoutEventIdxSetsEnableAndFindsWhatCameMeanwhile() {
        started(8, NO_EVENT_IDX);
        q.disableNotification();
        post(0, 1, 0, 16);
        v.publish();
        assertThat(v.kickNeeded()).isFalse();
        assertThat(q.enableNotification()).as("the re-check sees the buffer").isTrue();
        assertThat(v.deviceEvent() >>> 16).isEqualTo(GuestPackedVring.EVENT_ENABLE);
    }

    @Test
    void driverEventDecidesUsedNotifications() {
        started(8, ALL);
        int[] ids = new int[6];
        for (int i = 0; i < 6; i++) {
            ids[i] = post(i, 1, 0, 16);
        }
        v.publish();
        for (int i = 0; i < 6; i++) {
            assertThat(q.pop(c)).isTrue();
        }
        v.setDriverEvent(0, GuestPackedVring.EVENT_DISABLE);
        q.push(ids[0], 0);
        assertThat(q.needsNotify()).isFalse();
        v.setDriverEvent(0, GuestPackedVring.EVENT_ENABLE);
        q.push(ids[1], 0);
        assertThat(q.needsNotify()).isTrue();
        // DESC: notify once the used descriptor at slot 3 (wrap 1) is written.
        v.setDriverEvent(3 | 0x8000, GuestPackedVring.EVENT_DESC);
        q.push(ids[2], 0); // slot 2
        assertThat(q.needsNotify()).isFalse();
        q.push(ids[3], 0); // slot 3
        assertThat(q.needsNotify()).isTrue();
        q.push(ids[4], 0); // slot 4: the event is behind
        assertThat(q.needsNotify()).isFalse();
        // The guest's own enable asks for the next used slot it reads.
        assertThat(reap()).isEqualTo(5);
        assertThat(v.enableInterrupts()).isTrue();
        q.push(ids[5], 0);
        assertThat(q.needsNotify()).isTrue();
    }

    @Test
    void needEventHandlesWrapAroundOfTheRing() {
        // Ring of 4: the device moved from free-running 6 to 9 (slots 2,3,0 on laps 1 and 2).
        // Position 8 = slot 0 on the third lap (wrap 1).
        assertThat(PackedRingLayout.needEvent(0 | 0x8000, 6, 9, 1, true, 4)).isTrue();
        // Slot 1 wrap 1 is position 9: not yet written.
        assertThat(PackedRingLayout.needEvent(1 | 0x8000, 6, 9, 1, true, 4)).isFalse();
        // Slot 2 wrap 0 is position 6: written in this window.
        assertThat(PackedRingLayout.needEvent(2, 6, 9, 1, true, 4)).isTrue();
        // Slot 1 wrap 0 is position 5: before the window.
        assertThat(PackedRingLayout.needEvent(1, 6, 9, 1, true, 4)).isFalse();
    }
}
