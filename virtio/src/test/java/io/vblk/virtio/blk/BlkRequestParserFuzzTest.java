package io.vblk.virtio.blk;

import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import com.code_intelligence.jazzer.junit.FuzzTest;
import io.vblk.drivers.BlockIo;
import io.vblk.virtio.memory.GuestMemory;
import io.vblk.virtio.memory.MemoryRegion;
import io.vblk.virtio.queue.AvailRingLayout;
import io.vblk.virtio.queue.DescriptorChain;
import io.vblk.virtio.queue.DescriptorLayout;
import io.vblk.virtio.queue.QueueLayout;
import io.vblk.virtio.queue.SplitQueue;
import io.vblk.virtio.queue.VirtioFeatures;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Fuzz target: the virtio-blk request parser ({@link BlkRequestParser}) on chains a
 * {@link SplitQueue} popped from fuzzed guest memory: a header of any type (the known ones, the
 * unsupported ones, any value), sector and length near the capacity, data segments of any length
 * and direction, discard/write-zeroes segments with any field, a status byte that is missing,
 * read-only or too short. Properties: parse never throws; its answer is one of the four outcomes;
 * a COMPLETE carries a status byte of 5.2.6 (OK, IOERR, UNSUPP); a READ or WRITE handed to the
 * driver lies inside the capacity, is sector-aligned and carries exactly the chain's data bytes;
 * a read-only device never hands on a write; a VIOLATION names its kind.
 */
class BlkRequestParserFuzzTest {
    private static final long CAPACITY = 2048;
    private static final long SIZE = 64 << 10;
    private static final long HEADERS = 0x4000;
    private static final int[] TYPES = {BlkRequestType.IN, BlkRequestType.OUT, BlkRequestType.FLUSH, BlkRequestType.GET_ID,
        BlkRequestType.GET_LIFETIME, BlkRequestType.DISCARD, BlkRequestType.WRITE_ZEROES, BlkRequestType.SECURE_ERASE};
    private static final long[] SECTORS = {0, 1, 7, 8, CAPACITY - 8, CAPACITY - 1, CAPACITY, CAPACITY + 1, -1L, 1L << 55};

    private static final Arena ARENA = Arena.ofAuto();
    private static final MemorySegment HOST = ARENA.allocate(SIZE, 4096);
    private static final GuestMemory MEMORY = GuestMemory.of(List.of(new MemoryRegion(0, SIZE, 0x7f00_0000_0000L, HOST)));
    private static final BlkRequest REQUEST = new BlkRequest(0, new BlockIo(ARENA, DescriptorChain.MAX_SEGMENTS));
    private static final BlkRequestParser READ_WRITE = parser(false);
    private static final BlkRequestParser READ_ONLY = parser(true);

    private static BlkRequestParser parser(boolean readOnly) {
        BlkDeviceConfig cfg = new BlkDeviceConfig().serial("fuzz-serial");
        return new BlkRequestParser(CAPACITY, 512, readOnly, true, true, true, true, null, cfg, (io, result) -> { });
    }

    @FuzzTest(maxDuration = "3h", maxExecutions = 10_000_000)
    void parse(FuzzedDataProvider d) {
        HOST.fill((byte) 0);
        // The header area: 16-byte header, then discard/write-zeroes segments or data.
        HOST.set(ValueLayout.JAVA_INT_UNALIGNED, HEADERS, d.consumeInt(0, 3) == 0 ? d.consumeInt() : d.pickValue(TYPES));
        HOST.set(ValueLayout.JAVA_INT_UNALIGNED, HEADERS + 4, d.consumeInt(0, 7) == 0 ? d.consumeInt() : 0);
        HOST.set(ValueLayout.JAVA_LONG_UNALIGNED, HEADERS + 8, d.consumeBoolean() ? d.pickValue(SECTORS) : d.consumeLong());
        for (int s = 0; s < 4; s++) {
            long at = HEADERS + 16 + 16L * s;
            HOST.set(ValueLayout.JAVA_LONG_UNALIGNED, at, d.consumeBoolean() ? d.pickValue(SECTORS) : d.consumeLong());
            HOST.set(ValueLayout.JAVA_INT_UNALIGNED, at + 8, d.consumeBoolean() ? d.consumeInt(0, 64) : d.consumeInt());
            HOST.set(ValueLayout.JAVA_INT_UNALIGNED, at + 12, d.consumeInt(0, 3) == 0 ? d.consumeInt() : d.consumeInt(0, 1));
        }
        // The chain: descriptors 0..n-1, linked in order.
        int n = d.consumeInt(1, 6);
        long next = HEADERS;
        for (int i = 0; i < n; i++) {
            long len = switch (d.consumeInt(0, 5)) {
                case 0 -> d.consumeInt(0, 32);
                case 1 -> 16;
                case 2 -> 1;
                case 3 -> 512L * d.consumeInt(0, 8);
                default -> d.consumeInt(0, 4096);
            };
            long addr = i == 0 ? HEADERS : Math.min(next, SIZE - len);
            next = addr + len;
            boolean writable = i > 0 && d.consumeInt(0, 2) != 0 || i == 0 && d.consumeInt(0, 15) == 0;
            int flags = (writable ? DescriptorLayout.F_WRITE : 0) | (i < n - 1 ? DescriptorLayout.F_NEXT : 0);
            long at = DescriptorLayout.offset(i);
            HOST.set(ValueLayout.JAVA_LONG_UNALIGNED, at + DescriptorLayout.ADDR, addr);
            HOST.set(ValueLayout.JAVA_INT_UNALIGNED, at + DescriptorLayout.LEN, (int) len);
            HOST.set(ValueLayout.JAVA_SHORT_UNALIGNED, at + DescriptorLayout.FLAGS, (short) flags);
            HOST.set(ValueLayout.JAVA_SHORT_UNALIGNED, at + DescriptorLayout.NEXT, (short) (i + 1));
        }
        HOST.set(ValueLayout.JAVA_SHORT_UNALIGNED, 0x2000 + AvailRingLayout.IDX, (short) 1);
        SplitQueue q = new SplitQueue("fuzz");
        assertThat(q.start(new QueueLayout(8, 0, 0x2000, 0x3000, 0), MEMORY,
                VirtioFeatures.bit(VirtioFeatures.VERSION_1), SplitQueue.MAX_SIZE)).isTrue();
        DescriptorChain c = new DescriptorChain();
        if (!q.pop(c)) {
            assertThat(q.broken()).isTrue();
            return;
        }
        boolean readOnly = d.consumeBoolean();
        BlkRequestParser p = readOnly ? READ_ONLY : READ_WRITE;
        int outcome = p.parse(c, REQUEST, d.consumeBoolean());
        switch (outcome) {
            case BlkRequestParser.COMPLETE ->
                    assertThat(REQUEST.status).isIn(BlkStatus.OK, BlkStatus.IOERR, BlkStatus.UNSUPP);
            case BlkRequestParser.SUBMIT_RW -> {
                BlockIo io = REQUEST.io;
                assertThat(io.op).isIn(BlockIo.READ, BlockIo.WRITE);
                if (readOnly) {
                    assertThat(io.op).as("read-only device hands on no write").isEqualTo(BlockIo.READ);
                }
                long bytes = io.iov.totalLength();
                assertThat(bytes).isEqualTo(REQUEST.dataBytes);
                assertThat(bytes % 512).isZero();
                assertThat(io.offset).isNotNegative();
                assertThat(io.offset + bytes).isLessThanOrEqualTo(CAPACITY * 512);
            }
            case BlkRequestParser.SUBMIT_OTHER -> {
                BlockIo io = REQUEST.io;
                if (io.op != BlockIo.FLUSH) {
                    assertThat(io.offset).isNotNegative();
                    assertThat(io.offset + io.length).isLessThanOrEqualTo(CAPACITY * 512);
                    assertThat(readOnly).as("read-only device hands on no discard or write-zeroes").isFalse();
                }
            }
            case BlkRequestParser.VIOLATION -> assertThat(p.violation.kind).isNotNull();
            default -> throw new AssertionError("parse answered " + outcome);
        }
        q.stop();
    }
}
