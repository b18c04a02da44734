package io.vblk.virtio.queue;

import io.vblk.guest.GuestRam;
import io.vblk.guest.GuestVring;
import io.vblk.virtio.memory.GuestMemory;

import java.lang.foreign.Arena;

/**
 * Home thread: the test thread.
 *
 * <p>The mock guest as the queue conformance tests set it up: RAM of three regions (two adjacent,
 * one after a hole), one {@link GuestVring} laid out at the start of region 0, and the device's
 * memory map of that RAM. The tests write descriptors and rings through the vring's forging
 * calls, including what no well-behaved driver writes.
 */
final class QueueGuest implements AutoCloseable {
    /** Region 0 holds the rings; region 1 follows it directly; region 2 lies after a hole. */
    static final long R0 = 0x1000;
    static final long R1 = 0x41000;
    static final long R2 = 0x100000;
    static final long REGION_SIZE = 0x40000;
    /** An address in no region (the hole between region 1 and region 2). */
    static final long HOLE = 0x90000;

    final GuestRam ram;
    final GuestVring v;
    /** The device's view of {@link #ram}. */
    final GuestMemory memory;

    QueueGuest(int size) {
        ram = GuestRam.ofArenaRegions("queue-test", Arena.ofShared(), R0, REGION_SIZE, R1, REGION_SIZE, R2,
                REGION_SIZE);
        v = GuestVring.allocate(ram, size);
        memory = ram.guestMemory();
    }

    /** A fresh 16-byte aligned guest buffer (region 0, then the next region when it is full). */
    long alloc(long len) {
        return ram.allocate(len, 16);
    }

    /** Host address the device should map {@code gpa} to. */
    long host(long gpa) {
        return memory.hostAddress(gpa, 1);
    }

    @Override
    public void close() {
        memory.release();
        ram.close();
    }
}
