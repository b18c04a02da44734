package io.vblk.virtio.vhost;

import io.vblk.aio.sys.Errno;
import io.vblk.aio.sys.Sys;
import io.vblk.virtio.device.QueueLayout;
import io.vblk.virtio.memory.GuestMemory;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;

/**
 * A deliberately small guest-side virtio-blk driver for one split queue, enough for protocol tests
 * to see a request go through a back-end: it lays out the rings in guest memory, posts
 * header/data/status chains, kicks, and waits for the used ring. Not a workload generator.
 * (virtio 1.x 2.7 split virtqueues; 5.2.6 block requests.)
 *
 * <p>Any thread, one at a time (test code).
 */
public final class TestBlkRing implements AutoCloseable {
    public static final int VIRTIO_BLK_T_IN = 0;
    public static final int VIRTIO_BLK_T_OUT = 1;
    public static final int VIRTIO_BLK_T_FLUSH = 4;
    public static final int VIRTIO_BLK_S_OK = 0;
    static final int F_NEXT = 1;
    static final int F_WRITE = 2;

    private final MemorySegment host;
    private final long gpaBase;
    private final int size;
    private final long desc;
    private final long avail;
    private final long used;
    /** Per request slot: 16-byte header then the status byte, 64 bytes apart. */
    private final long headers;
    public final int kickFd;
    public final int callFd;
    private int availIdx;
    private int usedSeen;

    /**
     * Lays out a queue of {@code size} entries at {@code base} (guest-physical) inside {@code mem}'s
     * first region: descriptors, avail ring, used ring, request headers; 64 KiB in all at most for
     * size 256.
     */
    public TestBlkRing(GuestMemory mem, long base, int size) {
        var r = mem.region(0);
        this.host = r.host();
        this.gpaBase = r.gpa();
        this.size = size;
        this.desc = base;
        this.avail = base + 16L * size;
        this.used = align(avail + 6 + 2L * size, 4096);
        this.headers = align(used + 6 + 8L * size, 4096);
        host.asSlice(desc - gpaBase, headers + 64L * size - desc).fill((byte) 0);
        kickFd = Sys.eventfd(0, Sys.EFD_NONBLOCK | Sys.EFD_CLOEXEC);
        callFd = Sys.eventfd(0, Sys.EFD_NONBLOCK | Sys.EFD_CLOEXEC);
    }

    private static long align(long v, long a) {
        return (v + a - 1) / a * a;
    }

    /** First guest address after the ring's structures. */
    public long end() {
        return headers + 64L * size;
    }

    public QueueLayout layout(int nextAvail) {
        return new QueueLayout(size, desc, avail, used, nextAvail);
    }

    public MemorySegment at(long gpa, long len) {
        return host.asSlice(gpa - gpaBase, len);
    }

    /**
     * Posts one request (header, optional data buffer, status) and kicks. {@code dataGpa} is the
     * guest buffer; for IN the device writes it. Returns the slot (head descriptor / 3).
     */
    public int post(int type, long sector, long dataGpa, int dataLen) {
        int slot = availIdx % (size / 3);
        int head = slot * 3;
        long hdr = headers + 64L * slot;
        MemorySegment h = at(hdr, 17);
        h.set(ValueLayout.JAVA_INT_UNALIGNED, 0, type);
        h.set(ValueLayout.JAVA_INT_UNALIGNED, 4, 0);
        h.set(ValueLayout.JAVA_LONG_UNALIGNED, 8, sector);
        h.set(ValueLayout.JAVA_BYTE, 16, (byte) 0xff);
        int d = head;
        d = descriptor(d, hdr, 16, 0, true);
        if (dataLen > 0) {
            d = descriptor(d, dataGpa, dataLen, type == VIRTIO_BLK_T_IN ? F_WRITE : 0, true);
        }
        descriptor(d, hdr + 16, 1, F_WRITE, false);
        MemorySegment a = at(avail, 4 + 2L * size);
        a.set(ValueLayout.JAVA_SHORT_UNALIGNED, 4 + 2L * (availIdx % size), (short) head);
        VarHandle.releaseFence(); // the entry before the index (2.7.13); pairs with the device's read of avail->idx
        availIdx = (availIdx + 1) & 0xffff;
        a.set(ValueLayout.JAVA_SHORT_UNALIGNED, 2, (short) availIdx);
        VarHandle.fullFence();
        Sys.eventfdWrite(kickFd, 1);
        return slot;
    }

    private int descriptor(int i, long addr, int len, int flags, boolean next) {
        MemorySegment s = at(desc + 16L * i, 16);
        s.set(ValueLayout.JAVA_LONG_UNALIGNED, 0, addr);
        s.set(ValueLayout.JAVA_INT_UNALIGNED, 8, len);
        s.set(ValueLayout.JAVA_SHORT_UNALIGNED, 12, (short) (flags | (next ? F_NEXT : 0)));
        s.set(ValueLayout.JAVA_SHORT_UNALIGNED, 14, (short) (next ? i + 1 : 0));
        return i + 1;
    }

    /** The used ring's idx. */
    public int usedIdx() {
        int v = at(used, 4).get(ValueLayout.JAVA_SHORT_UNALIGNED, 2) & 0xffff;
        VarHandle.acquireFence();
        return v;
    }

    /**
     * Waits (bounded) until one more request is used; returns its status byte. Waits on the call
     * eventfd, re-checking the used index each time it fires.
     */
    public int awaitCompletion(long timeoutMs) {
        long deadline = System.nanoTime() + timeoutMs * 1_000_000;
        while (usedIdx() == usedSeen) {
            long left = (deadline - System.nanoTime()) / 1_000_000;
            if (left <= 0) {
                throw new AssertionError("no completion within " + timeoutMs + " ms (used idx " + usedIdx() + ")");
            }
            int r = Sys.poll(callFd, Sys.POLLIN, (int) Math.min(left, Integer.MAX_VALUE));
            if (r < 0) {
                throw new AssertionError("poll on call fd: " + Errno.name(-r));
            }
            if (r > 0) {
                Sys.eventfdRead(callFd);
            }
        }
        int id = at(used, 8 + 8L * size).get(ValueLayout.JAVA_INT_UNALIGNED, 4 + 8L * (usedSeen % size));
        usedSeen = (usedSeen + 1) & 0xffff;
        return at(headers + 64L * (id / 3) + 16, 1).get(ValueLayout.JAVA_BYTE, 0) & 0xff;
    }

    public int availIdx() {
        return availIdx;
    }

    @Override
    public void close() {
        Sys.close(kickFd);
        Sys.close(callFd);
    }
}
