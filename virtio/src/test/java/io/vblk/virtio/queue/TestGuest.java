package io.vblk.virtio.queue;

import io.vblk.virtio.device.QueueLayout;
import io.vblk.virtio.memory.GuestMemory;
import io.vblk.virtio.memory.MemoryRegion;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.List;

import static io.vblk.virtio.queue.LittleEndian.U16;
import static io.vblk.virtio.queue.LittleEndian.U32;

/**
 * Home thread: the test thread. Not a driver: it keeps no bookkeeping beyond a bump allocator.
 *
 * <p>A tiny guest-side writer for queue conformance tests: lays out one split virtqueue in a small
 * guest memory of three regions (two adjacent, one after a gap) and writes descriptors and ring
 * entries by hand, including the bad ones no well-behaved driver writes.
 */
final class TestGuest implements AutoCloseable {
    /** Region 0 holds the rings; region 1 follows it directly; region 2 lies after a gap. */
    static final long R0 = 0x1000;
    static final long R1 = 0x41000;
    static final long R2 = 0x100000;
    static final long REGION_SIZE = 0x40000;
    /** An address in no region (the gap between region 1 and region 2). */
    static final long HOLE = 0x90000;

    final Arena arena = Arena.ofShared();
    final GuestMemory memory;
    final int size;
    final long descGpa;
    final long availGpa;
    final long usedGpa;
    private long heap;
    private int availIdx;

    TestGuest(int size) {
        this.size = size;
        MemorySegment m0 = arena.allocate(REGION_SIZE, 4096);
        MemorySegment m1 = arena.allocate(REGION_SIZE, 4096);
        MemorySegment m2 = arena.allocate(REGION_SIZE, 4096);
        memory = GuestMemory.of(List.of(new MemoryRegion(R0, REGION_SIZE, R0, m0),
                new MemoryRegion(R1, REGION_SIZE, R1, m1), new MemoryRegion(R2, REGION_SIZE, R2, m2)));
        descGpa = R0;
        availGpa = align(descGpa + DescriptorLayout.tableBytes(size), 2);
        usedGpa = align(availGpa + AvailRingLayout.bytes(size), 4);
        heap = align(usedGpa + UsedRingLayout.bytes(size), 64);
    }

    QueueLayout layout() {
        return new QueueLayout(size, descGpa, availGpa, usedGpa, 0);
    }

    static long align(long v, long a) {
        return (v + a - 1) & -a;
    }

    /** A fresh guest buffer in region 0 or, when it does not fit, in region 2. */
    long alloc(long len) {
        long a = align(heap, 16);
        if (a + len > R0 + REGION_SIZE && a < R2) {
            a = R2;
        }
        heap = a + len;
        return a;
    }

    MemorySegment at(long gpa, long len) {
        MemorySegment s = memory.translate(gpa, len);
        if (s == null) {
            throw new IllegalArgumentException("test guest address 0x" + Long.toHexString(gpa) + " not mapped");
        }
        return s;
    }

    void desc(int index, long addr, long len, int flags, int next) {
        DescriptorLayout.write(at(descGpa, DescriptorLayout.tableBytes(size)), 0, index, addr, (int) len, flags, next);
    }

    /** Writes entry {@code index} of an indirect table at {@code tableGpa}. */
    void indirect(long tableGpa, int index, long addr, long len, int flags, int next) {
        DescriptorLayout.write(at(tableGpa + DescriptorLayout.offset(index), DescriptorLayout.BYTES), 0, 0, addr,
                (int) len, flags, next);
    }

    /** Makes chain {@code head} available and publishes the index. */
    void post(int head) {
        MemorySegment a = at(availGpa, AvailRingLayout.bytes(size));
        a.set(U16, AvailRingLayout.ringOffset(availIdx % size), (short) head);
        availIdx = (availIdx + 1) & 0xffff;
        a.set(U16, AvailRingLayout.IDX, (short) availIdx);
    }

    void setAvailIdx(int idx) {
        availIdx = idx & 0xffff;
        at(availGpa, 4).set(U16, AvailRingLayout.IDX, (short) availIdx);
    }

    int availIdx() {
        return availIdx;
    }

    void setAvailFlags(int flags) {
        at(availGpa, 2).set(U16, AvailRingLayout.FLAGS, (short) flags);
    }

    void setUsedEvent(int v) {
        at(availGpa, AvailRingLayout.bytes(size)).set(U16, AvailRingLayout.usedEventOffset(size), (short) v);
    }

    int usedIdx() {
        return UsedRingLayout.idx(at(usedGpa, UsedRingLayout.bytes(size)));
    }

    int usedId(int n) {
        return UsedRingLayout.elemId(at(usedGpa, UsedRingLayout.bytes(size)), n % size);
    }

    int usedLen(int n) {
        return at(usedGpa, UsedRingLayout.bytes(size)).get(U32, UsedRingLayout.elemOffset(n % size) + 4);
    }

    int usedFlags() {
        return UsedRingLayout.flags(at(usedGpa, UsedRingLayout.bytes(size)));
    }

    int availEvent() {
        return UsedRingLayout.availEvent(at(usedGpa, UsedRingLayout.bytes(size)), size);
    }

    /** Host address the device should map {@code gpa} to. */
    long host(long gpa) {
        return memory.hostAddress(gpa, 1);
    }

    @Override
    public void close() {
        arena.close();
    }
}
