package io.vblk.virtio.queue;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import static io.vblk.virtio.queue.DescriptorLayout.F_INDIRECT;
import static io.vblk.virtio.queue.DescriptorLayout.F_NEXT;
import static io.vblk.virtio.queue.DescriptorLayout.F_WRITE;
import static org.assertj.core.api.Assertions.assertThat;

/** Conformance of the split virtqueue with virtio 1.2 section 2.7, driven by a hand-written guest. */
@Timeout(10)
class SplitQueueTest {
    static final long ALL = VirtioFeatures.bit(VirtioFeatures.VERSION_1)
            | VirtioFeatures.bit(VirtioFeatures.RING_INDIRECT_DESC) | VirtioFeatures.bit(VirtioFeatures.RING_EVENT_IDX);
    static final long NO_EVENT_IDX = ALL & ~VirtioFeatures.bit(VirtioFeatures.RING_EVENT_IDX);

    QueueGuest g;
    final SplitQueue q = new SplitQueue("q0");
    final DescriptorChain c = new DescriptorChain();

    @AfterEach
    void close() {
        if (g != null) {
            g.close();
        }
    }

    SplitQueue started(int size, long features) {
        g = new QueueGuest(size);
        assertThat(q.start(g.v.layout(), g.memory, features, SplitQueue.MAX_SIZE)).as(q.brokenReason()).isTrue();
        return q;
    }

    void assertBroken(QueueViolation v) {
        assertThat(q.pop(c)).isFalse();
        assertThat(q.broken()).isTrue();
        assertThat(q.violation()).as(q.brokenReason()).isEqualTo(v);
        assertThat(q.brokenReason()).contains(v.name()).contains(v.section());
        // A broken queue stays broken: nothing more is taken from it.
        assertThat(q.pop(c)).isFalse();
        assertThat(q.hasAvailable()).isFalse();
    }

    @Test
    void emptyQueuePopsNothing() {
        started(8, ALL);
        assertThat(q.hasAvailable()).isFalse();
        assertThat(q.pop(c)).isFalse();
        assertThat(q.broken()).isFalse();
    }

    @Test
    void directChainSplitsIntoReadableThenWritable() {
        started(8, ALL);
        long hdr = g.alloc(16);
        long data = g.alloc(4096);
        long status = g.alloc(1);
        g.v.forgeDescriptor(5, hdr, 16, F_NEXT, 2);
        g.v.forgeDescriptor(2, data, 4096, F_NEXT | F_WRITE, 7);
        g.v.forgeDescriptor(7, status, 1, F_WRITE, 0);
        g.v.forgeAvail(5);
        assertThat(q.hasAvailable()).isTrue();
        assertThat(q.pop(c)).isTrue();
        assertThat(c.head()).isEqualTo(5);
        assertThat(c.readableSegments()).isEqualTo(1);
        assertThat(c.writableSegments()).isEqualTo(2);
        assertThat(c.readableBytes()).isEqualTo(16);
        assertThat(c.writableBytes()).isEqualTo(4097);
        assertThat(c.address(0)).isEqualTo(g.host(hdr));
        assertThat(c.address(1)).isEqualTo(g.host(data));
        assertThat(c.address(2)).isEqualTo(g.host(status));
        assertThat(q.inFlight()).isEqualTo(1);
        assertThat(q.nextAvailIdx()).isEqualTo(1);
        assertThat(q.pop(c)).isFalse();

        q.push(5, 4097);
        assertThat(g.v.usedIdx()).isEqualTo(1);
        assertThat(g.v.usedElemId(0)).isEqualTo(5);
        assertThat(g.v.usedElemLen(0)).isEqualTo(4097);
        assertThat(q.inFlight()).isZero();
    }

    @Test
    void headerReadsAndStatusWritesCrossDescriptorBoundaries() {
        started(8, ALL);
        // 2.7.4.1: no assumption about framing: the 16-byte header split 3 + 13, the status byte
        // sharing its descriptor with data.
        long a = g.alloc(3);
        long b = g.alloc(13);
        long w = g.alloc(9);
        g.ram.segment(a, 3).setAtIndex(LittleEndian.U8, 0, (byte) 0x78);
        g.ram.segment(a, 3).setAtIndex(LittleEndian.U8, 1, (byte) 0x56);
        g.ram.segment(a, 3).setAtIndex(LittleEndian.U8, 2, (byte) 0x34);
        g.ram.segment(b, 13).setAtIndex(LittleEndian.U8, 0, (byte) 0x12);
        g.ram.segment(b, 13).set(LittleEndian.U64, 5, 0x0102030405060708L);
        g.v.forgeDescriptor(0, a, 3, F_NEXT, 1);
        g.v.forgeDescriptor(1, b, 13, F_NEXT, 2);
        g.v.forgeDescriptor(2, w, 9, F_WRITE, 0);
        g.v.forgeAvail(0);
        assertThat(q.pop(c)).isTrue();
        assertThat(c.readLe32(0)).isEqualTo(0x12345678);
        assertThat(c.readLe64(8)).isEqualTo(0x0102030405060708L);
        c.writeU8(8, 0x5a);
        assertThat(g.ram.segment(w, 9).get(LittleEndian.U8, 8)).isEqualTo((byte) 0x5a);
    }

    @Test
    void indirectTableAfterDirectDescriptors() {
        started(8, ALL);
        long hdr = g.alloc(16);
        long table = g.alloc(3 * 16);
        long d1 = g.alloc(512);
        long d2 = g.alloc(512);
        long st = g.alloc(1);
        // 2.7.5.3.2: zero or more direct descriptors followed by one indirect descriptor; the
        // WRITE flag on the indirect descriptor itself is ignored.
        g.v.forgeDescriptor(3, hdr, 16, F_NEXT, 4);
        g.v.forgeDescriptor(4, table, 3 * 16, F_INDIRECT | F_WRITE, 0);
        g.v.forgeIndirect(table, 0, d1, 512, F_NEXT, 2);
        g.v.forgeIndirect(table, 2, d2, 512, F_NEXT | F_WRITE, 1);
        g.v.forgeIndirect(table, 1, st, 1, F_WRITE, 0);
        g.v.forgeAvail(3);
        assertThat(q.pop(c)).as(String.valueOf(q.brokenReason())).isTrue();
        assertThat(c.head()).isEqualTo(3);
        assertThat(c.readableSegments()).isEqualTo(2);
        assertThat(c.readableBytes()).isEqualTo(16 + 512);
        assertThat(c.writableBytes()).isEqualTo(513);
        assertThat(c.address(1)).isEqualTo(g.host(d1));
        assertThat(c.address(2)).isEqualTo(g.host(d2));
    }

    @Test
    void bufferCrossingIntoAdjacentRegionBecomesTwoSegments() {
        started(8, ALL);
        long start = QueueGuest.R1 - 100;
        g.v.forgeDescriptor(0, start, 300, F_WRITE, 0);
        g.v.forgeAvail(0);
        assertThat(q.pop(c)).isTrue();
        assertThat(c.segments()).isEqualTo(2);
        assertThat(c.length(0)).isEqualTo(100);
        assertThat(c.length(1)).isEqualTo(200);
        assertThat(c.address(0)).isEqualTo(g.host(start));
        assertThat(c.address(1)).isEqualTo(g.host(QueueGuest.R1));
        assertThat(c.writableBytes()).isEqualTo(300);
    }

    @Test
    void zeroLengthDescriptorsAreSkipped() {
        started(8, ALL);
        long a = g.alloc(8);
        g.v.forgeDescriptor(0, QueueGuest.HOLE, 0, F_NEXT, 1);
        g.v.forgeDescriptor(1, a, 8, 0, 0);
        g.v.forgeAvail(0);
        assertThat(q.pop(c)).isTrue();
        assertThat(c.segments()).isEqualTo(1);
        assertThat(c.readableBytes()).isEqualTo(8);
    }

    @Test
    void indexesWrapAt65536() {
        g = new QueueGuest(4);
        QueueLayout l = g.v.layout();
        assertThat(q.start(new QueueLayout(4, l.descAddr(), l.availAddr(), l.usedAddr(), 0xfffe), g.memory, ALL, 1024))
                .isTrue();
        long b = g.alloc(8);
        g.v.forgeDescriptor(0, b, 8, 0, 0);
        g.v.forgeAvailIdx(0xfffe);
        for (int i = 0; i < 4; i++) {
            g.v.forgeAvail(0);
            assertThat(q.pop(c)).isTrue();
            q.push(0, 0);
        }
        assertThat(q.nextAvailIdx()).isEqualTo(2);
        assertThat(g.v.usedIdx()).isEqualTo(4);
    }

    // ---- chains that break the rules → NEEDS_RESET with a named reason ----

    @Test
    void loopIsRefused() {
        started(8, ALL);
        long b = g.alloc(8);
        g.v.forgeDescriptor(0, b, 8, F_NEXT, 1);
        g.v.forgeDescriptor(1, b, 8, F_NEXT, 0);
        g.v.forgeAvail(0);
        assertBroken(QueueViolation.CHAIN_LOOP);
    }

    @Test
    void selfLoopIsRefused() {
        started(2, ALL);
        g.v.forgeDescriptor(1, g.alloc(8), 8, F_NEXT, 1);
        g.v.forgeAvail(1);
        assertBroken(QueueViolation.CHAIN_LOOP);
    }

    @Test
    void loopInIndirectTableIsRefused() {
        started(8, ALL);
        long t = g.alloc(32);
        long b = g.alloc(8);
        g.v.forgeDescriptor(0, t, 32, F_INDIRECT, 0);
        g.v.forgeIndirect(t, 0, b, 8, F_NEXT, 1);
        g.v.forgeIndirect(t, 1, b, 8, F_NEXT, 0);
        g.v.forgeAvail(0);
        assertBroken(QueueViolation.CHAIN_LOOP);
    }

    @Test
    void addressOutsideGuestMemoryIsRefused() {
        started(8, ALL);
        g.v.forgeDescriptor(0, QueueGuest.HOLE, 16, 0, 0);
        g.v.forgeAvail(0);
        assertBroken(QueueViolation.ADDRESS_OUT_OF_RANGE);
    }

    @Test
    void bufferRunningPastTheLastRegionIsRefused() {
        started(8, ALL);
        g.v.forgeDescriptor(0, QueueGuest.R2 + QueueGuest.REGION_SIZE - 8, 16, F_WRITE, 0);
        g.v.forgeAvail(0);
        assertBroken(QueueViolation.ADDRESS_OUT_OF_RANGE);
    }

    @Test
    void bufferWrappingTheAddressSpaceIsRefused() {
        started(8, ALL);
        g.v.forgeDescriptor(0, -16L, 64, 0, 0);
        g.v.forgeAvail(0);
        assertBroken(QueueViolation.ADDRESS_OUT_OF_RANGE);
    }

    @Test
    void readableAfterWritableIsRefused() {
        started(8, ALL);
        g.v.forgeDescriptor(0, g.alloc(8), 8, F_WRITE | F_NEXT, 1);
        g.v.forgeDescriptor(1, g.alloc(8), 8, 0, 0);
        g.v.forgeAvail(0);
        assertBroken(QueueViolation.READABLE_AFTER_WRITABLE);
    }

    @Test
    void indirectInsideIndirectIsRefused() {
        started(8, ALL);
        long t = g.alloc(16);
        long t2 = g.alloc(16);
        g.v.forgeDescriptor(0, t, 16, F_INDIRECT, 0);
        g.v.forgeIndirect(t, 0, t2, 16, F_INDIRECT, 0);
        g.v.forgeIndirect(t2, 0, g.alloc(8), 8, 0, 0);
        g.v.forgeAvail(0);
        assertBroken(QueueViolation.NESTED_INDIRECT);
    }

    @Test
    void indirectWithNextIsRefused() {
        started(8, ALL);
        long t = g.alloc(16);
        g.v.forgeIndirect(t, 0, g.alloc(8), 8, 0, 0);
        g.v.forgeDescriptor(0, t, 16, F_INDIRECT | F_NEXT, 1);
        g.v.forgeDescriptor(1, g.alloc(8), 8, F_WRITE, 0);
        g.v.forgeAvail(0);
        assertBroken(QueueViolation.INDIRECT_WITH_NEXT);
    }

    @Test
    void indirectTableLengthNotAMultipleOf16IsRefused() {
        started(8, ALL);
        long t = g.alloc(32);
        g.v.forgeDescriptor(0, t, 17, F_INDIRECT, 0);
        g.v.forgeAvail(0);
        assertBroken(QueueViolation.BAD_INDIRECT_LENGTH);
    }

    @Test
    void emptyIndirectTableIsRefused() {
        started(8, ALL);
        g.v.forgeDescriptor(0, g.alloc(16), 0, F_INDIRECT, 0);
        g.v.forgeAvail(0);
        assertBroken(QueueViolation.BAD_INDIRECT_LENGTH);
    }

    @Test
    void indirectTableOutsideMemoryIsRefused() {
        started(8, ALL);
        g.v.forgeDescriptor(0, QueueGuest.HOLE, 32, F_INDIRECT, 0);
        g.v.forgeAvail(0);
        assertBroken(QueueViolation.ADDRESS_OUT_OF_RANGE);
    }

    @Test
    void indirectWithoutTheFeatureIsRefused() {
        started(8, ALL & ~VirtioFeatures.bit(VirtioFeatures.RING_INDIRECT_DESC));
        long t = g.alloc(16);
        g.v.forgeIndirect(t, 0, g.alloc(8), 8, 0, 0);
        g.v.forgeDescriptor(0, t, 16, F_INDIRECT, 0);
        g.v.forgeAvail(0);
        assertBroken(QueueViolation.INDIRECT_NOT_NEGOTIATED);
    }

    @Test
    void availIndexJumpingMoreThanQueueSizeIsRefused() {
        started(8, ALL);
        g.v.forgeAvailIdx(9);
        assertBroken(QueueViolation.AVAIL_INDEX_JUMP);
    }

    @Test
    void availIndexMovingBackIsRefused() {
        started(8, ALL);
        g.v.forgeDescriptor(0, g.alloc(8), 8, 0, 0);
        g.v.forgeAvail(0);
        assertThat(q.pop(c)).isTrue();
        g.v.forgeAvailIdx(0); // 2.7.6.1: "A driver MUST NOT decrement the available idx"
        assertBroken(QueueViolation.AVAIL_INDEX_JUMP);
    }

    @Test
    void availIndexExactlyQueueSizeAheadIsFine() {
        started(4, ALL);
        g.v.forgeDescriptor(0, g.alloc(8), 8, 0, 0);
        for (int i = 0; i < 4; i++) {
            g.v.forgeAvail(0);
        }
        for (int i = 0; i < 4; i++) {
            assertThat(q.pop(c)).isTrue();
        }
        assertThat(q.pop(c)).isFalse();
        assertThat(q.broken()).isFalse();
    }

    @Test
    void headOutsideTheTableIsRefused() {
        started(8, ALL);
        g.v.forgeAvail(8);
        assertBroken(QueueViolation.HEAD_OUT_OF_RANGE);
    }

    @Test
    void nextOutsideTheTableIsRefused() {
        started(8, ALL);
        g.v.forgeDescriptor(0, g.alloc(8), 8, F_NEXT, 8);
        g.v.forgeAvail(0);
        assertBroken(QueueViolation.NEXT_OUT_OF_RANGE);
    }

    @Test
    void nextOutsideTheIndirectTableIsRefused() {
        started(8, ALL);
        long t = g.alloc(32);
        g.v.forgeIndirect(t, 0, g.alloc(8), 8, F_NEXT, 2);
        g.v.forgeDescriptor(0, t, 32, F_INDIRECT, 0);
        g.v.forgeAvail(0);
        assertBroken(QueueViolation.NEXT_OUT_OF_RANGE);
    }

    @Test
    void badLayoutsAreRefusedAtStart() {
        g = new QueueGuest(8);
        QueueLayout l = g.v.layout();
        assertThat(q.start(new QueueLayout(6, l.descAddr(), l.availAddr(), l.usedAddr(), 0), g.memory, ALL, 1024))
                .isFalse();
        assertThat(q.violation()).isEqualTo(QueueViolation.BAD_QUEUE_SIZE);
        assertThat(q.start(new QueueLayout(2048, l.descAddr(), l.availAddr(), l.usedAddr(), 0), g.memory, ALL, 4096))
                .isFalse();
        assertThat(q.violation()).isEqualTo(QueueViolation.BAD_QUEUE_SIZE);
        assertThat(q.start(new QueueLayout(8, l.descAddr() + 8, l.availAddr(), l.usedAddr(), 0), g.memory, ALL, 1024))
                .isFalse();
        assertThat(q.violation()).isEqualTo(QueueViolation.RING_MISALIGNED);
        assertThat(q.start(new QueueLayout(8, l.descAddr(), l.availAddr(), l.usedAddr() + 2, 0), g.memory, ALL, 1024))
                .isFalse();
        assertThat(q.violation()).isEqualTo(QueueViolation.RING_MISALIGNED);
        assertThat(q.start(new QueueLayout(8, l.descAddr(), QueueGuest.HOLE, l.usedAddr(), 0), g.memory, ALL, 1024))
                .isFalse();
        assertThat(q.violation()).isEqualTo(QueueViolation.RING_OUTSIDE_MEMORY);
        assertThat(q.started()).isFalse();
        assertThat(q.start(l, g.memory, ALL, 1024)).isTrue();
        assertThat(q.broken()).isFalse();
    }

    // ---- notification suppression ----

    @Test
    void needEventMatchesTheSpecFormula() {
        // 2.7.7.2: notify when used idx moved past used_event since the last notification.
        assertThat(SplitQueue.needEvent(0, 1, 0)).isTrue();
        assertThat(SplitQueue.needEvent(1, 1, 0)).isFalse();
        assertThat(SplitQueue.needEvent(4, 10, 5)).isFalse();
        assertThat(SplitQueue.needEvent(5, 10, 5)).isTrue();
        assertThat(SplitQueue.needEvent(9, 10, 5)).isTrue();
        assertThat(SplitQueue.needEvent(10, 10, 5)).isFalse();
        assertThat(SplitQueue.needEvent(0xffff, 2, 0xfffe)).isTrue(); // across the wrap
        assertThat(SplitQueue.needEvent(0xfffd, 2, 0xfffe)).isFalse();
    }

    private void postAndComplete(int n) {
        for (int i = 0; i < n; i++) {
            g.v.forgeAvail(0);
            assertThat(q.pop(c)).isTrue();
            q.push(0, 1);
        }
    }

    @Test
    void eventIdxNotifiesOnlyWhenUsedEventIsPassed() {
        started(8, ALL);
        g.v.forgeDescriptor(0, g.alloc(1), 1, F_WRITE, 0);
        postAndComplete(1);
        assertThat(q.needsNotify()).as("first decision after start").isTrue();
        // The driver asks to be told once used idx passes 2 (i.e. after the 3rd completion).
        g.v.setUsedEvent(2);
        postAndComplete(1); // used idx 2: event 2 not yet passed
        assertThat(q.needsNotify()).isFalse();
        postAndComplete(1); // used idx 3: passed 2
        assertThat(q.needsNotify()).isTrue();
        postAndComplete(1); // used idx 4, event still 2: already notified for it
        assertThat(q.needsNotify()).isFalse();
        // A batch that moves several steps and crosses the event notifies once.
        g.v.setUsedEvent(5);
        postAndComplete(3); // 4 -> 7 crosses 5
        assertThat(q.needsNotify()).isTrue();
        assertThat(q.needsNotify()).as("nothing new since").isFalse();
    }

    @Test
    void eventIdxIgnoresTheNoInterruptFlag() {
        started(8, ALL);
        g.v.forgeDescriptor(0, g.alloc(1), 1, F_WRITE, 0);
        g.v.setAvailFlags(AvailRingLayout.F_NO_INTERRUPT);
        postAndComplete(1);
        // 2.7.7.2: with EVENT_IDX "The device MUST ignore the lower bit of flags".
        assertThat(q.needsNotify()).isTrue();
    }

    @Test
    void noInterruptFlagSuppressesWithoutEventIdx() {
        started(8, NO_EVENT_IDX);
        g.v.forgeDescriptor(0, g.alloc(1), 1, F_WRITE, 0);
        postAndComplete(1);
        assertThat(q.needsNotify()).isTrue();
        g.v.setAvailFlags(AvailRingLayout.F_NO_INTERRUPT);
        postAndComplete(1);
        assertThat(q.needsNotify()).isFalse();
        g.v.setAvailFlags(0);
        assertThat(q.needsNotify()).isTrue();
    }

    @Test
    void notifyOnEmptyOverridesSuppression() {
        started(8, NO_EVENT_IDX | VirtioFeatures.bit(VirtioFeatures.NOTIFY_ON_EMPTY));
        g.v.forgeDescriptor(0, g.alloc(1), 1, F_WRITE, 0);
        g.v.setAvailFlags(AvailRingLayout.F_NO_INTERRUPT);
        g.v.forgeAvail(0);
        g.v.forgeAvail(0);
        assertThat(q.pop(c)).isTrue();
        q.push(0, 1);
        assertThat(q.needsNotify()).as("one still available").isFalse();
        assertThat(q.pop(c)).isTrue();
        assertThat(q.needsNotify()).as("one still in flight").isFalse();
        q.push(0, 1);
        assertThat(q.needsNotify()).as("ran out of buffers").isTrue();
    }

    @Test
    void kickSuppressionWithEventIdxUsesAvailEvent() {
        started(8, ALL);
        g.v.forgeDescriptor(0, g.alloc(1), 1, F_WRITE, 0);
        g.v.forgeAvail(0);
        g.v.forgeAvail(0);
        q.disableNotification();
        assertThat(q.pop(c)).isTrue();
        assertThat(q.pop(c)).isTrue();
        assertThat(q.enableNotification()).isFalse();
        assertThat(g.v.availEvent()).isEqualTo(2);
        assertThat(g.v.usedFlags()).isZero();
        // A buffer posted after the device looked: enable's second read sees it.
        g.v.forgeAvail(0);
        assertThat(q.enableNotification()).isTrue();
    }

    @Test
    void kickSuppressionWithoutEventIdxUsesUsedFlags() {
        started(8, NO_EVENT_IDX);
        q.disableNotification();
        assertThat(g.v.usedFlags()).isEqualTo(UsedRingLayout.F_NO_NOTIFY);
        assertThat(q.enableNotification()).isFalse();
        assertThat(g.v.usedFlags()).isZero();
        g.v.forgeDescriptor(0, g.alloc(1), 1, F_WRITE, 0);
        g.v.forgeAvail(0);
        assertThat(q.enableNotification()).isTrue();
    }

    @Test
    void resumesAtTheGivenAvailIndexAndUsedIndexFromTheRing() {
        g = new QueueGuest(8);
        g.v.forgeDescriptor(0, g.alloc(1), 1, F_WRITE, 0);
        g.v.forgeAvail(0);
        g.v.forgeAvail(0);
        g.v.forgeAvail(0);
        QueueLayout l = g.v.layout();
        assertThat(q.start(new QueueLayout(8, l.descAddr(), l.availAddr(), l.usedAddr(), 2), g.memory, ALL, 1024))
                .isTrue();
        assertThat(q.pop(c)).isTrue();
        assertThat(q.pop(c)).isFalse();
        assertThat(q.nextAvailIdx()).isEqualTo(3);
        q.stop();
        assertThat(q.started()).isFalse();
        assertThat(q.nextAvailIdx()).isEqualTo(3);
    }
}
