package io.vblk.virtio.blk;

import io.vblk.aio.sys.Errno;
import io.vblk.aio.sys.FileIo;
import io.vblk.guest.BlkSlot;
import io.vblk.guest.BlkWireLayout;
import io.vblk.guest.GuestBlkQueue;
import io.vblk.guest.GuestRam;
import io.vblk.guest.GuestRing;
import io.vblk.guest.GuestVring;
import io.vblk.virtio.queue.VirtioFeatures;
import io.vblk.virtio.queue.QueueLayout;
import io.vblk.virtio.device.VirtioDevice;
import io.vblk.virtio.memory.GuestMemory;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;

/**
 * Home thread: the test thread (or the thread that drives this queue's guest side).
 *
 * <p>One queue of the mock guest ({@link GuestBlkQueue}) with what device tests want on top:
 * requests from and to byte arrays, each posted request visible to the device at once (a kick is
 * separate), completions collected as {@link Done}s. Every descriptor and ring write is the
 * guest package's; this class only chooses what to post. A completed slot stays as the device
 * left it (its data readable) until {@link #recycle()}, or until a post finds no free slot.
 */
final class GuestQueue implements AutoCloseable {
    /** Largest data buffer of one request. */
    static final int DATA_BYTES = 64 * 1024;
    /** Data descriptors one request may use (a split header and a separate status come on top). */
    static final int MAX_SEGMENTS = 6;

    /** A completed request: its slot, the used length the device reported, its status byte. */
    record Done(BlkSlot slot, int len, int status) {
    }

    /**
     * Whether fixtures built on this thread run their queues on packed rings (set by the packed
     * variants of the device tests around each test).
     */
    static final ThreadLocal<Boolean> PACKED = ThreadLocal.withInitial(() -> false);
    /** VIRTIO_F_IN_ORDER is accepted only on a thread that asks for it (InOrderTest): others see completion order. */
    static final ThreadLocal<Boolean> IN_ORDER = ThreadLocal.withInitial(() -> false);

    final GuestBlkQueue q;
    /** The split ring (null on a packed ring): what the split-only forging helpers use. */
    final GuestVring vring;
    final GuestRing ring;
    final GuestRam ram;
    private final List<Done> reaped = new ArrayList<>();
    private final ArrayDeque<BlkSlot> completed = new ArrayDeque<>();
    private int deviceKickFd = -1;
    private int deviceCallFd = -1;
    /** Re-arm used_event after each reap, as Linux's virtqueue_enable_cb does ("tell me about the next one"). */
    boolean rearm;

    /** A queue of {@code size} entries and {@code slots} requests in {@code ram}, driven with {@code features}. */
    GuestQueue(GuestRam ram, int index, int size, int slots, long features) {
        this.ram = ram;
        this.q = GuestBlkQueue.create(index, ram, size, slots, DATA_BYTES, MAX_SEGMENTS, features, true);
        this.ring = q.ring();
        this.vring = ring instanceof GuestVring v ? v : null;
        q.setIndirect(false);
        q.onCompletion((s, status, len) -> {
            reaped.add(new Done(s, len, status));
            completed.add(s);
        });
    }

    /** A memory map of {@code ram} handed to {@code dev} (which takes its own reference). */
    static void giveMemory(VirtioDevice dev, GuestRam ram) {
        GuestMemory m = ram.guestMemory();
        try {
            dev.setMemory(m);
        } finally {
            m.release();
        }
    }

    /** Tells {@code dev} where this queue lives and gives it copies of the queue's eventfds. */
    void attach(VirtioDevice dev) {
        dev.configureQueue(q.index(), layout());
        deviceKickFd = dup(q.kickFd());
        deviceCallFd = dup(q.callFd());
        dev.setQueueFds(q.index(), deviceKickFd, deviceCallFd);
    }

    private static int dup(int fd) {
        int d = FileIo.dup(fd);
        if (d < 0) {
            throw new IllegalStateException("dup(" + fd + "): " + Errno.name(-d));
        }
        return d;
    }

    /**
     * The features a test guest accepts from {@code offered}: RING_PACKED only on a thread that
     * runs the packed variants ({@link #PACKED}), so device and guest always agree on the ring.
     */
    static long ringFeatures(long offered) {
        long packed = 1L << VirtioFeatures.RING_PACKED;
        long f = IN_ORDER.get() ? offered : offered & ~(1L << VirtioFeatures.IN_ORDER);
        return PACKED.get() ? f | packed : f & ~packed;
    }

    QueueLayout layout() {
        return ring.layout();
    }

    int size() {
        return ring.size();
    }

    /** The device's copy of the call eventfd (it closes it when it gets a new one). */
    int deviceCallFd() {
        return deviceCallFd;
    }

    int kickFd() {
        return q.kickFd();
    }

    int callFd() {
        return q.callFd();
    }

    /** Whether requests go out as indirect chains (one ring descriptor each). */
    void setIndirect(boolean on) {
        q.setIndirect(on);
    }

    boolean indirect() {
        return q.indirect();
    }

    // ---- requests ----

    /** A free slot; when none is left, every completed slot is recycled first. */
    BlkSlot acquire() {
        BlkSlot s = q.acquire();
        if (s == null) {
            recycle();
            s = q.acquire();
        }
        if (s == null) {
            throw new IllegalStateException("all " + q.slotCount() + " request slots are in flight");
        }
        return s;
    }

    /** Gives every completed slot back (its data buffer is then reused). */
    void recycle() {
        BlkSlot s;
        while ((s = completed.poll()) != null) {
            q.release(s);
        }
    }

    BlkSlot read(long sector, int len) {
        BlkSlot s = acquire();
        s.data().asSlice(0, len).fill((byte) 0xee);
        q.postRead(s, sector, len, 1);
        return published(s);
    }

    BlkSlot write(long sector, byte[] data) {
        BlkSlot s = acquire();
        MemorySegment.copy(MemorySegment.ofArray(data), 0, s.data(), 0, data.length);
        q.postWrite(s, sector, data.length, 1);
        return published(s);
    }

    BlkSlot flush() {
        BlkSlot s = acquire();
        q.postFlush(s);
        return published(s);
    }

    /** GET_ID with {@code room} bytes for the serial. */
    BlkSlot getId(int room) {
        BlkSlot s = acquire();
        q.post(s, BlkWireLayout.T_GET_ID, 0, s.dataGpa(), room, 1, true);
        return published(s);
    }

    /** GET_LIFETIME with {@code room} bytes for the reply (5.2.6: 6 bytes). */
    BlkSlot getLifetime(int room) {
        BlkSlot s = acquire();
        q.post(s, BlkWireLayout.T_GET_LIFETIME, 0, s.dataGpa(), room, 1, true);
        return published(s);
    }

    BlkSlot discard(long sector, long sectors, int flags) {
        return segments(BlkWireLayout.T_DISCARD, new long[] {sector, sectors, flags});
    }

    BlkSlot secureErase(long sector, long sectors, int flags) {
        return segments(BlkWireLayout.T_SECURE_ERASE, new long[] {sector, sectors, flags});
    }

    BlkSlot writeZeroes(long sector, long sectors, int flags) {
        return segments(BlkWireLayout.T_WRITE_ZEROES, new long[] {sector, sectors, flags});
    }

    /** DISCARD or WRITE_ZEROES with one {sector, sectors, flags} triple per segment. */
    BlkSlot segments(int type, long[]... segs) {
        BlkSlot s = acquire();
        for (int i = 0; i < segs.length; i++) {
            s.setSegment(i, segs[i][0], (int) segs[i][1], (int) segs[i][2]);
        }
        q.postSegments(s, type, segs.length);
        return published(s);
    }

    /** A request of any type with header, {@code dataLen} device-readable bytes of the slot's data buffer, status. */
    BlkSlot post(int type, long sector, int dataLen) {
        BlkSlot s = acquire();
        q.post(s, type, sector, s.dataGpa(), dataLen, dataLen == 0 ? 0 : 1, false);
        return published(s);
    }

    /** Starts a hand-framed request (see {@link GuestBlkQueue#beginFramed}). */
    BlkSlot beginFramed(int type, int reserved, long sector) {
        BlkSlot s = acquire();
        q.beginFramed(s, type, reserved, sector);
        return s;
    }

    void addBuffer(long gpa, long len, boolean deviceWritable) {
        q.addBuffer(gpa, (int) len, deviceWritable);
    }

    /** Commits a hand-framed request, status expected at {@code statusGpa} (-1: none), and publishes it. */
    BlkSlot commitFramed(BlkSlot s, long statusGpa, int dataBytes) {
        q.commitFramed(s, statusGpa, dataBytes);
        return published(s);
    }

    private BlkSlot published(BlkSlot s) {
        ring.publish();
        return s;
    }

    /** Writes the kick eventfd (whatever avail_event says). */
    void kick() {
        q.notifyDevice();
    }

    /** Reads and clears the call eventfd: the number of notifications since the last read (0 if none). */
    long takeCalls() {
        return q.consumeInterrupts();
    }

    /** The driver's used_event (2.7.10): "notify me when used idx passes this". */
    void setUsedEvent(int v) {
        vring.setUsedEvent(v);
    }

    void setAvailFlags(int flags) {
        vring.setAvailFlags(flags);
    }

    int usedIdx() {
        return vring.usedIdx();
    }

    int availEvent() {
        return vring.availEvent();
    }

    /** Completed requests since the last reap. */
    List<Done> reap() {
        q.reap();
        if (rearm) {
            q.enableInterrupts();
        }
        List<Done> out = new ArrayList<>(reaped);
        reaped.clear();
        return out;
    }

    int inFlight() {
        return q.inFlight();
    }

    /** The first {@link BlkSlot#dataBytes()} bytes of the slot's data buffer. */
    static byte[] data(BlkSlot s) {
        return s.data().asSlice(0, s.dataBytes()).toArray(ValueLayout.JAVA_BYTE);
    }

    /** The sector a request was posted for. */
    static long sector(BlkSlot s) {
        return s.sector();
    }

    @Override
    public void close() {
        q.close();
    }
}
