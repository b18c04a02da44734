package io.vblk.virtio.queue;

import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import com.code_intelligence.jazzer.junit.FuzzTest;
import io.vblk.virtio.memory.GuestMemory;
import io.vblk.virtio.memory.MemoryRegion;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Fuzz target: descriptor-chain walking of a {@link SplitQueue} over a {@link GuestMemory} of two
 * native regions with a hole between them. The fuzzer writes the ring layout (queue size, ring
 * addresses), the descriptor table (addresses in a region, across its end, in the hole, near
 * 2^64; lengths up to 2^32 - 1; any flags, NEXT, WRITE and INDIRECT included; any next index),
 * indirect tables, the avail ring (index jumps, heads out of range) and the features (INDIRECT_DESC,
 * EVENT_IDX). Properties: start and pop never throw; a popped chain's segments all lie inside
 * guest memory, number at most {@link DescriptorChain#MAX_SEGMENTS}, carry at most 2^32 bytes and
 * put every readable segment before the writable ones; a refused chain names a violation, after
 * which the queue pops nothing more.
 */
class SplitQueueFuzzTest {
    static final long R0 = 0;
    static final long R0_SIZE = 64 << 10;
    /** Region 1 starts after a 64 KiB hole. */
    static final long R1 = 128 << 10;
    static final long R1_SIZE = 16 << 10;
    private static final long[] INTERESTING = {0, R0_SIZE - 16, R0_SIZE - 1, R0_SIZE, R0_SIZE + 4096, R1 - 8, R1,
        R1 + R1_SIZE - 512, R1 + R1_SIZE, -1L, -4096L, Long.MAX_VALUE, 1L << 32};

    private static final Arena ARENA = Arena.ofAuto();
    private static final MemorySegment HOST0 = ARENA.allocate(R0_SIZE, 4096);
    private static final MemorySegment HOST1 = ARENA.allocate(R1_SIZE, 4096);
    private static final GuestMemory MEMORY = GuestMemory.of(List.of(
            new MemoryRegion(R0, R0_SIZE, 0x7f00_0000_0000L, HOST0),
            new MemoryRegion(R1, R1_SIZE, 0x7f10_0000_0000L, HOST1)));

    @FuzzTest(maxDuration = "3h", maxExecutions = 10_000_000)
    void walkChains(FuzzedDataProvider d) {
        HOST0.fill((byte) 0);
        HOST1.fill((byte) 0);
        int size = 1 << d.consumeInt(0, 8);
        long desc = d.consumeInt(0, 15) == 0 ? pick(d) : 0;
        long avail = d.consumeInt(0, 15) == 0 ? pick(d) : 0x2000;
        long used = d.consumeInt(0, 15) == 0 ? pick(d) : 0x3000;
        long features = VirtioFeatures.bit(VirtioFeatures.VERSION_1)
                | (d.consumeBoolean() ? VirtioFeatures.bit(VirtioFeatures.RING_INDIRECT_DESC) : 0)
                | (d.consumeBoolean() ? VirtioFeatures.bit(VirtioFeatures.RING_EVENT_IDX) : 0);
        int nDesc = d.consumeInt(0, size);
        for (int i = 0; i < nDesc; i++) {
            descriptor(d, HOST0, DescriptorLayout.offset(d.consumeInt(0, size - 1)), size);
        }
        // Indirect tables live at 0x4000 (region 0) and at R1 (region 1, near the hole).
        int nInd = d.consumeInt(0, 16);
        for (int i = 0; i < nInd; i++) {
            boolean inR1 = d.consumeBoolean();
            MemorySegment host = inR1 ? HOST1 : HOST0;
            long base = inR1 ? 0 : 0x4000;
            descriptor(d, host, base + DescriptorLayout.offset(d.consumeInt(0, 63)), 64);
        }
        int availIdx = d.consumeInt(0, 7) == 0 ? d.consumeInt(0, 0xffff) : d.consumeInt(0, size);
        int nextAvail = d.consumeInt(0, 7) == 0 ? d.consumeInt(0, 0xffff) : 0;
        if (avail == 0x2000) {
            HOST0.set(ValueLayout.JAVA_SHORT_UNALIGNED, avail + AvailRingLayout.IDX, (short) availIdx);
            for (int s = 0; s < size; s++) {
                int head = d.consumeInt(0, 15) == 0 ? d.consumeInt(0, 0xffff) : d.consumeInt(0, size - 1);
                HOST0.set(ValueLayout.JAVA_SHORT_UNALIGNED, avail + AvailRingLayout.ringOffset(s), (short) head);
            }
        }
        SplitQueue q = new SplitQueue("fuzz");
        boolean started = q.start(new QueueLayout(size, desc, avail, used, nextAvail), MEMORY, features, SplitQueue.MAX_SIZE);
        if (!started) {
            assertThat(q.violation()).isNotNull();
            return;
        }
        DescriptorChain c = new DescriptorChain();
        int pops = 0;
        while (pops < 2 * size + 2 && q.pop(c)) {
            pops++;
            checkChain(c);
            q.push(c.head(), c.writableBytes());
            if (d.consumeBoolean()) {
                q.needsNotify();
                q.enableNotification();
            }
        }
        if (q.broken()) {
            assertThat(q.violation()).isNotNull();
            assertThat(q.brokenReason()).isNotBlank();
            assertThat(q.pop(c)).as("a broken queue pops nothing more").isFalse();
        }
        q.stop();
    }

    private static void descriptor(FuzzedDataProvider d, MemorySegment host, long at, int tableSize) {
        long addr = switch (d.consumeInt(0, 3)) {
            case 0 -> pick(d);
            case 1 -> d.consumeLong();
            default -> d.consumeLong(0, R0_SIZE - 1);
        };
        long len = d.consumeInt(0, 7) == 0 ? d.consumeLong(0, 0xffff_ffffL) : d.consumeLong(0, 8192);
        int flags = d.consumeInt(0, 15) == 0 ? d.consumeInt(0, 0xffff) : d.consumeInt(0, 7);
        int next = d.consumeInt(0, 15) == 0 ? d.consumeInt(0, 0xffff) : d.consumeInt(0, tableSize - 1);
        host.set(ValueLayout.JAVA_LONG_UNALIGNED, at + DescriptorLayout.ADDR, addr);
        host.set(ValueLayout.JAVA_INT_UNALIGNED, at + DescriptorLayout.LEN, (int) len);
        host.set(ValueLayout.JAVA_SHORT_UNALIGNED, at + DescriptorLayout.FLAGS, (short) flags);
        host.set(ValueLayout.JAVA_SHORT_UNALIGNED, at + DescriptorLayout.NEXT, (short) next);
    }

    private static long pick(FuzzedDataProvider d) {
        return d.pickValue(INTERESTING) + d.consumeInt(-16, 16);
    }

    private static boolean inside(MemorySegment host, long addr, long len) {
        return addr >= host.address() && addr - host.address() + len <= host.byteSize();
    }

    static void checkChain(DescriptorChain c) {
        int n = c.segments();
        assertThat(n).isBetween(0, DescriptorChain.MAX_SEGMENTS);
        assertThat(c.readableSegments() + c.writableSegments()).isEqualTo(n);
        long total = 0;
        for (int i = 0; i < n; i++) {
            long len = c.length(i);
            assertThat(len).isNotNegative();
            if (len > 0) {
                MemorySegment m = c.memoryOf(i);
                assertThat(m).isNotNull();
                assertThat(c.offsetOf(i) + len).as("segment %d inside its region", i).isLessThanOrEqualTo(m.byteSize());
                assertThat(m.address() + c.offsetOf(i)).isEqualTo(c.address(i));
                assertThat(inside(HOST0, c.address(i), len) || inside(HOST1, c.address(i), len))
                        .as("segment %d in guest memory", i).isTrue();
            }
            total += len;
        }
        assertThat(total).isLessThanOrEqualTo(1L << 32);
        assertThat(c.readableBytes() + c.writableBytes()).isEqualTo(total);
    }
}
