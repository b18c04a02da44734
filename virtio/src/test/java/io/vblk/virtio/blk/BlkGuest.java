package io.vblk.virtio.blk;

import io.vblk.aio.sys.Sys;
import io.vblk.virtio.device.QueueLayout;
import io.vblk.virtio.memory.GuestMemory;
import io.vblk.virtio.memory.MemoryRegion;
import io.vblk.virtio.queue.AvailRingLayout;
import io.vblk.virtio.queue.DescriptorLayout;
import io.vblk.virtio.queue.UsedRingLayout;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import static io.vblk.virtio.queue.LittleEndian.U16;
import static io.vblk.virtio.queue.LittleEndian.U32;
import static io.vblk.virtio.queue.LittleEndian.U64;
import static io.vblk.virtio.queue.LittleEndian.U8;

/**
 * Home thread: the test thread (or the thread that drives this queue's guest side).
 *
 * <p>A small in-test virtio-blk guest for one queue: builds request chains (header, data, status)
 * in its own guest memory, posts them, kicks, and reaps the used ring. Direct chains by default,
 * one indirect table per request when {@link #indirect} is set. Owns the kick and call eventfds
 * until it hands them to the device.
 */
final class BlkGuest implements AutoCloseable {
    static final long GPA = 0x10000;

    record Req(int head, int type, long hdr, long data, int dataLen, long status, int[] descs, long table) {
    }

    record Done(Req req, int len, int status) {
    }

    final Arena arena = Arena.ofShared();
    final GuestMemory memory;
    final int size;
    final long desc;
    final long avail;
    final long used;
    final int kickFd;
    final int callFd;
    private final long heapStart;
    private long heap;
    private final long memEnd;
    private final ArrayDeque<Integer> freeDescs = new ArrayDeque<>();
    private final Map<Integer, Req> inflight = new HashMap<>();
    private int availIdx;
    private int lastUsed;
    boolean indirect;
    /** Re-arm used_event after each reap, as Linux's virtqueue_enable_cb does ("tell me about the next one"). */
    boolean rearm;

    BlkGuest(int size, long memBytes) {
        this(size, memBytes, null);
    }

    /** With {@code shared} set, lays this queue out in another guest's memory (multiqueue). */
    BlkGuest(int size, long memBytes, BlkGuest shared) {
        this.size = size;
        if (shared == null) {
            MemorySegment m = arena.allocate(memBytes, 4096);
            memory = GuestMemory.of(List.of(new MemoryRegion(GPA, memBytes, GPA, m)));
            heap = GPA;
            memEnd = GPA + memBytes;
        } else {
            memory = shared.memory;
            heap = shared.heap;
            memEnd = heap + memBytes;
            shared.heap = memEnd;
            if (memEnd > shared.memEnd) {
                throw new IllegalArgumentException("shared guest memory too small");
            }
        }
        desc = alloc(DescriptorLayout.tableBytes(size), 16);
        avail = alloc(AvailRingLayout.bytes(size), 2);
        used = alloc(UsedRingLayout.bytes(size), 4);
        heapStart = heap;
        for (int i = 0; i < size; i++) {
            freeDescs.add(i);
        }
        kickFd = Sys.eventfd(0, Sys.EFD_NONBLOCK | Sys.EFD_CLOEXEC);
        callFd = Sys.eventfd(0, Sys.EFD_NONBLOCK | Sys.EFD_CLOEXEC);
    }

    QueueLayout layout() {
        return new QueueLayout(size, desc, avail, used, 0);
    }

    long alloc(long len, long align) {
        long a = (heap + align - 1) & -align;
        if (a + len > memEnd) {
            throw new IllegalStateException("test guest out of memory");
        }
        heap = a + len;
        return a;
    }

    /** Frees every data buffer (call with nothing in flight). */
    void resetHeap() {
        heap = heapStart;
    }

    MemorySegment mem(long gpa, long len) {
        return memory.translate(gpa, len);
    }

    // ---- requests ----

    Req read(long sector, int len) {
        return post(BlkRequestType.IN, sector, null, len, true, 1);
    }

    Req write(long sector, byte[] data) {
        return post(BlkRequestType.OUT, sector, data, data.length, false, 1);
    }

    Req flush() {
        return post(BlkRequestType.FLUSH, 0, null, 0, false, 1);
    }

    Req getId(int room) {
        return post(BlkRequestType.GET_ID, 0, null, room, true, 1);
    }

    Req discard(long sector, long sectors, int flags) {
        return post(BlkRequestType.DISCARD, 0, segment(sector, sectors, flags), 16, false, 1);
    }

    Req writeZeroes(long sector, long sectors, int flags) {
        return post(BlkRequestType.WRITE_ZEROES, 0, segment(sector, sectors, flags), 16, false, 1);
    }

    static byte[] segment(long sector, long sectors, int flags) {
        byte[] b = new byte[16];
        MemorySegment s = MemorySegment.ofArray(b);
        s.set(U64, DiscardWriteZeroesLayout.SECTOR, sector);
        s.set(U32, DiscardWriteZeroesLayout.NUM_SECTORS, (int) sectors);
        s.set(U32, DiscardWriteZeroesLayout.FLAGS, flags);
        return b;
    }

    /**
     * Posts one request: header (device-readable), data ({@code dataLen} bytes, device-writable
     * if {@code dataWritable}, initialised from {@code data} when given), status ({@code statusLen}
     * device-writable bytes, 0 for none).
     */
    Req post(int type, long sector, byte[] data, int dataLen, boolean dataWritable, int statusLen) {
        long hdr = alloc(16, 16);
        MemorySegment h = mem(hdr, 16);
        h.set(U32, BlkRequestHeaderLayout.TYPE, type);
        h.set(U32, BlkRequestHeaderLayout.RESERVED, 0);
        h.set(U64, BlkRequestHeaderLayout.SECTOR, sector);
        long dataGpa = 0;
        if (dataLen > 0) {
            dataGpa = alloc(dataLen, 512);
            if (data != null) {
                MemorySegment.copy(MemorySegment.ofArray(data), 0, mem(dataGpa, dataLen), 0, dataLen);
            } else {
                mem(dataGpa, dataLen).fill((byte) 0xee);
            }
        }
        long status = statusLen > 0 ? alloc(statusLen, 1) : 0;
        if (statusLen > 0) {
            mem(status, statusLen).fill((byte) 0x7f);
        }
        List<long[]> bufs = new ArrayList<>();
        bufs.add(new long[] {hdr, 16, 0});
        if (dataLen > 0) {
            bufs.add(new long[] {dataGpa, dataLen, dataWritable ? DescriptorLayout.F_WRITE : 0});
        }
        if (statusLen > 0) {
            bufs.add(new long[] {status, statusLen, DescriptorLayout.F_WRITE});
        }
        return postChain(type, hdr, dataGpa, dataLen, status, bufs);
    }

    /** Posts an arbitrary chain of {gpa, len, flags(WRITE)} buffers. */
    Req postChain(int type, long hdr, long dataGpa, int dataLen, long status, List<long[]> bufs) {
        MemorySegment table = mem(desc, DescriptorLayout.tableBytes(size));
        int[] ids;
        long tableGpa = 0;
        if (indirect) {
            ids = new int[] {take()};
            tableGpa = alloc(16L * bufs.size(), 16);
            MemorySegment t = mem(tableGpa, 16L * bufs.size());
            for (int i = 0; i < bufs.size(); i++) {
                long[] b = bufs.get(i);
                boolean last = i == bufs.size() - 1;
                DescriptorLayout.write(t, 0, i, b[0], (int) b[1], (int) b[2] | (last ? 0 : DescriptorLayout.F_NEXT),
                        last ? 0 : i + 1);
            }
            DescriptorLayout.write(table, 0, ids[0], tableGpa, 16 * bufs.size(), DescriptorLayout.F_INDIRECT, 0);
        } else {
            ids = new int[bufs.size()];
            for (int i = 0; i < ids.length; i++) {
                ids[i] = take();
            }
            for (int i = 0; i < ids.length; i++) {
                long[] b = bufs.get(i);
                boolean last = i == ids.length - 1;
                DescriptorLayout.write(table, 0, ids[i], b[0], (int) b[1],
                        (int) b[2] | (last ? 0 : DescriptorLayout.F_NEXT), last ? 0 : ids[i + 1]);
            }
        }
        Req r = new Req(ids[0], type, hdr, dataGpa, dataLen, status, ids, tableGpa);
        inflight.put(r.head, r);
        MemorySegment a = mem(avail, AvailRingLayout.bytes(size));
        a.set(U16, AvailRingLayout.ringOffset(availIdx % size), (short) r.head);
        availIdx = (availIdx + 1) & 0xffff;
        // The spec's driver-side write barrier before publishing idx (2.7.13.3).
        java.lang.invoke.VarHandle.releaseFence();
        a.set(U16, AvailRingLayout.IDX, (short) availIdx);
        return r;
    }

    private int take() {
        Integer i = freeDescs.poll();
        if (i == null) {
            throw new IllegalStateException("test guest: no free descriptor");
        }
        return i;
    }

    int freeDescriptors() {
        return freeDescs.size();
    }

    void kick() {
        Sys.eventfdWrite(kickFd, 1);
    }

    /** Reads and clears the call eventfd: the number of notifications since the last read (0 if none). */
    long takeCalls() {
        long v = Sys.eventfdRead(callFd);
        return v < 0 ? 0 : v;
    }

    /** The driver's used_event (2.7.7): "notify me when used idx passes this". */
    void setUsedEvent(int v) {
        mem(avail, AvailRingLayout.bytes(size)).set(U16, AvailRingLayout.usedEventOffset(size), (short) v);
    }

    void setAvailFlags(int flags) {
        mem(avail, 2).set(U16, AvailRingLayout.FLAGS, (short) flags);
    }

    int usedIdx() {
        return UsedRingLayout.idx(mem(used, UsedRingLayout.bytes(size)));
    }

    int availEvent() {
        return UsedRingLayout.availEvent(mem(used, UsedRingLayout.bytes(size)), size);
    }

    /** Completed requests since the last reap. */
    List<Done> reap() {
        List<Done> out = new ArrayList<>();
        MemorySegment u = mem(used, UsedRingLayout.bytes(size));
        int idx = UsedRingLayout.idx(u);
        java.lang.invoke.VarHandle.acquireFence();
        while (lastUsed != idx) {
            int slot = lastUsed % size;
            int id = UsedRingLayout.elemId(u, slot);
            int len = UsedRingLayout.elemLen(u, slot);
            Req r = inflight.remove(id);
            if (r == null) {
                throw new IllegalStateException("device used unknown head " + id);
            }
            for (int d : r.descs) {
                freeDescs.add(d);
            }
            int status = r.status == 0 ? -1 : Byte.toUnsignedInt(mem(r.status, 1).get(U8, 0));
            out.add(new Done(r, len, status));
            lastUsed = (lastUsed + 1) & 0xffff;
        }
        if (rearm) {
            setUsedEvent(lastUsed);
        }
        return out;
    }

    int inFlight() {
        return inflight.size();
    }

    byte[] data(Req r) {
        byte[] b = new byte[r.dataLen];
        MemorySegment.copy(mem(r.data, r.dataLen), 0, MemorySegment.ofArray(b), 0, r.dataLen);
        return b;
    }

    @Override
    public void close() {
        arena.close();
    }
}
