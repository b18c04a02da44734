package io.vblk.virtio.queue;

import io.vblk.virtio.memory.DirtyLog;
import io.vblk.virtio.memory.GuestMemory;
import io.vblk.virtio.memory.MemoryRegion;

import java.lang.foreign.MemorySegment;
import java.lang.invoke.VarHandle;

import static io.vblk.virtio.queue.LittleEndian.U16;
import static io.vblk.virtio.queue.PackedRingLayout.*;

/**
 * Home thread: the owning IoThread of the device queue. No locking.
 *
 * <p>The device side of one packed virtqueue (virtio 1.2 section 2.8): reads available
 * descriptors in ring order, walking chains (across the ring's end, flipping the driver wrap
 * counter) and indirect tables; writes one used descriptor per buffer, in completion order, and
 * skips forward by the buffer's descriptor count (2.8.6); reads the driver's event suppression
 * structure to decide on used-buffer notifications and writes its own to switch kicks off and on
 * (2.8.10, with EVENT_IDX the descriptor-specific form).
 *
 * <p>Buffer ids: the id of a chain's last descriptor (2.8.6) names the buffer. vblk takes ids
 * below the queue size (as every driver it knows hands out: Linux, QEMU's and its own mock guest)
 * and remembers each in-flight id's descriptor count in an array; an id reused while in flight
 * breaks the queue (the skip-forward count would be lost). Nothing is allocated after start.
 *
 * <p>Resume point ({@link #nextAvailIdx()}, vhost-user SET/GET_VRING_BASE): avail index | wrap
 * counter << 15 in bits 0..15, used index | wrap << 15 in bits 16..31. A queue starts and stops
 * with nothing in flight, so both halves are equal; {@link #start} takes the low half for both —
 * unless an inflight record (packed layout) says where the last device stopped.
 * Used descriptors are written one per buffer, in completion order, which 2.8 allows ("Used
 * device descriptors are written in the order in which their processing is complete") — or, with
 * VIRTIO_F_IN_ORDER negotiated, in the order the buffers were made available ({@link InOrder}).
 */
public final class PackedQueue implements VirtQueue {
    private final String name;

    private GuestMemory memory;
    /** The migration dirty log (used descriptors, event structure and chain writes are marked), or null. */
    private DirtyLog dirty;
    private MemorySegment ring;
    private MemorySegment driverEvent;
    private MemorySegment deviceEvent;
    /** Buffer translation into the guest's regions (fixed while started). */
    private final BufferMap buffers = new BufferMap();
    /** VIRTIO_F_IN_ORDER: completions held until every earlier buffer completed. */
    private final InOrder inOrder = new InOrder();
    private int size;
    private boolean eventIdx;
    private boolean indirect;
    private boolean started;
    /** Descriptors of each in-flight buffer id, 0 when the id is free. */
    private int[] descsOfId = new int[0];

    // Device cursors: next slot to read (driver wrap counter) and next slot to write used (device's).
    private int availIdx;
    private boolean availWrap = true;
    private int usedIdx;
    private boolean usedWrap = true;
    /** Descriptors used since start (free-running), for EVENT_IDX windows. */
    private long usedCount;
    private long signalledUsed;
    private boolean signalledUsedValid;
    private int inFlight;
    private boolean kicksOff;
    /** Where popped buffers are recorded (vhost-user INFLIGHT_SHMFD, packed layout); {@link InflightLog#NONE} without one. */
    private InflightLog log = InflightLog.NONE;
    /** Buffers the record lists as taken by a previous device and never used are popped first. */
    private boolean resubmitting;

    private QueueViolation violation;
    private String violationDetail;

    public PackedQueue(String name) {
        this.name = name;
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public boolean start(QueueLayout layout, GuestMemory memory, long features, int maxSize) {
        if (started) {
            throw new IllegalStateException("queue " + name + " already started");
        }
        violation = null;
        violationDetail = null;
        int n = layout.size();
        // 2.8: "Packed virtqueues support up to 2^15 entries each"; "The Queue Size value does not
        // have to be a power of 2". vblk takes at most maxSize (<= 1024).
        if (n <= 0 || n > Math.min(maxSize, MAX_SIZE)) {
            return fail(QueueViolation.BAD_QUEUE_SIZE, "size " + n + ", maximum " + Math.min(maxSize, MAX_SIZE));
        }
        if ((layout.descAddr() & (RING_ALIGN - 1)) != 0 || (layout.availAddr() & (EVENT_ALIGN - 1)) != 0
                || (layout.usedAddr() & (EVENT_ALIGN - 1)) != 0) {
            return fail(QueueViolation.RING_MISALIGNED, String.format("ring 0x%x driver area 0x%x device area 0x%x",
                    layout.descAddr(), layout.availAddr(), layout.usedAddr()));
        }
        MemorySegment r = memory.translate(layout.descAddr(), ringBytes(n));
        MemorySegment drv = memory.translate(layout.availAddr(), EVENT_BYTES);
        MemorySegment dev = memory.translate(layout.usedAddr(), EVENT_BYTES);
        if (r == null || drv == null || dev == null) {
            return fail(QueueViolation.RING_OUTSIDE_MEMORY, String.format(
                    "ring 0x%x driver area 0x%x device area 0x%x size %d", layout.descAddr(), layout.availAddr(),
                    layout.usedAddr(), n));
        }
        int base = layout.nextAvailIdx() & 0xffff;
        if ((base & INDEX_MASK) >= n) {
            return fail(QueueViolation.BAD_RESUME_INDEX, "index " + (base & INDEX_MASK) + ", queue size " + n);
        }
        this.memory = memory;
        this.dirty = layout.dirty();
        buffers.attach(memory);
        this.ring = r;
        this.driverEvent = drv;
        this.deviceEvent = dev;
        this.size = n;
        if (descsOfId.length < n) {
            descsOfId = new int[n];
        } else {
            java.util.Arrays.fill(descsOfId, 0);
        }
        this.eventIdx = VirtioFeatures.has(features, VirtioFeatures.RING_EVENT_IDX);
        this.indirect = VirtioFeatures.has(features, VirtioFeatures.RING_INDIRECT_DESC);
        inOrder.reset(VirtioFeatures.has(features, VirtioFeatures.IN_ORDER), n);
        int state = base | base << 16;
        InflightLog rec = layout.inflight();
        if (rec != InflightLog.NONE) {
            if (!rec.packedLayout()) {
                return fail(QueueViolation.INFLIGHT_RECORD_INVALID, "the inflight record is laid out for split rings");
            }
            // The record knows the resume point better than the transport: after a lost back-end
            // the front-end re-sends the base of the last start (QEMU cannot read a packed ring's
            // indices from guest memory), while the record kept the used index and wrap counter.
            state = rec.recoverPacked(r, n, state);
            if (state == -1 || (state & INDEX_MASK) >= n || ((state >>> 16) & INDEX_MASK) >= n) {
                return fail(QueueViolation.INFLIGHT_RECORD_INVALID, String.format("recovered state 0x%08x, queue size %d",
                        state, n));
            }
        }
        this.log = rec;
        this.resubmitting = rec != InflightLog.NONE;
        this.availIdx = state & INDEX_MASK;
        this.availWrap = (state & WRAP_BIT) != 0;
        this.usedIdx = (state >>> 16) & INDEX_MASK;
        this.usedWrap = ((state >>> 16) & WRAP_BIT) != 0;
        this.usedCount = 0;
        this.signalledUsedValid = false;
        this.inFlight = 0;
        this.kicksOff = false;
        this.started = true;
        return true;
    }

    @Override
    public void stop() {
        started = false;
        resubmitting = false;
        log = InflightLog.NONE;
        memory = null;
        dirty = null;
        buffers.detach();
        ring = null;
        driverEvent = null;
        deviceEvent = null;
    }

    @Override
    public boolean started() {
        return started;
    }

    @Override
    public int size() {
        return size;
    }

    @Override
    public int nextAvailIdx() {
        int avail = availIdx | (availWrap ? WRAP_BIT : 0);
        int used = usedIdx | (usedWrap ? WRAP_BIT : 0);
        return avail | used << 16;
    }

    /** The next slot the device writes a used descriptor to, with the device wrap counter in bit 15. */
    public int usedState() {
        return usedIdx | (usedWrap ? WRAP_BIT : 0);
    }

    @Override
    public int inFlight() {
        return inFlight;
    }

    @Override
    public boolean broken() {
        return violation != null;
    }

    @Override
    public QueueViolation violation() {
        return violation;
    }

    @Override
    public String brokenReason() {
        if (violation == null) {
            return null;
        }
        return "queue " + name + ": " + violation + " (virtio 1.2 " + violation.packedSection() + "): "
                + violation.description() + (violationDetail == null ? "" : ": " + violationDetail);
    }

    /**
     * 2.8.2: the device polls one location, the next descriptor after the last one it read. Reads
     * its flags, then an acquire fence: the rest of the chain is read after (pairs with the
     * driver's write barrier before it stores the first descriptor's flags, 2.8.6: "The driver
     * always makes the first descriptor in the list available after the rest of the list has been
     * written out").
     */
    @Override
    public boolean hasAvailable() {
        if (!started || violation != null) {
            return false;
        }
        if (resubmitting) {
            return true;
        }
        boolean avail = isAvail(flags(ring, availIdx), availWrap);
        VarHandle.acquireFence();
        return avail;
    }

    @Override
    public int availableSeen() {
        return 0; // a packed ring has no index to count from; reading ahead costs a scan
    }

    @Override
    public boolean pop(DescriptorChain chain) {
        if (!started || violation != null) {
            return false;
        }
        if (resubmitting) {
            // Buffers a previous device took and never used go first, oldest first
            // (vhost-user.rst: "Resubmit inflight DescStatePacked entries in order of their counter value").
            int e = log.nextResubmit();
            if (e >= 0) {
                return resubmit(chain, e);
            }
            resubmitting = false;
        }
        if (!hasAvailable()) {
            return false;
        }
        chain.reset(memory, -1, dirty);
        int idx = availIdx;
        boolean wrap = availWrap;
        int descs = 0;
        long tail;
        while (true) {
            // 2.8.5: "If not limited, the maximum number of descriptors in a list is the virt
            // queue size"; counting bounds the walk however the flags are set.
            if (++descs > size) {
                return fail(QueueViolation.CHAIN_LOOP, "chain at " + availIdx + " runs over more than " + size
                        + " descriptors");
            }
            // Two 8-byte loads per descriptor, each read once: the values checked are the values used.
            long addr = PackedRingLayout.addr(ring, 0, idx);
            tail = PackedRingLayout.tail(ring, 0, idx);
            int at = idx;
            if (++idx == size) {
                idx = 0;
                wrap = !wrap; // 2.8.1: the chain continues at the ring's start, one wrap further
            }
            int step = take(chain, at, addr, tail, descs);
            if (step < 0) {
                return false;
            }
            if (step > 0) {
                break; // 2.8.6: "Buffer ID is included in the last descriptor in the list"
            }
        }
        if (!accept(chain, idOf(tail), descs)) {
            return false;
        }
        int first = availIdx;
        availIdx = idx;
        availWrap = wrap;
        // Recorded before the request can have any effect; a stop before this leaves the buffer
        // unrecorded and the recovery resumes at it (used index + descriptors recorded in flight).
        if (!log.poppedPacked(idOf(tail), ring, first, descs)) {
            return fail(QueueViolation.INFLIGHT_RECORD_INVALID, "no free entry to record buffer " + idOf(tail));
        }
        inFlight++;
        return true;
    }

    /** Pops record entry {@code e}'s chain again, from the record's copy of its descriptors. */
    private boolean resubmit(DescriptorChain chain, int e) {
        chain.reset(memory, -1, dirty);
        int n = log.entryDescs(e);
        if (n < 1) {
            return fail(QueueViolation.INFLIGHT_RECORD_INVALID, "entry " + e + " has no descriptors");
        }
        int x = e;
        long tail = 0;
        for (int k = 1; k <= n; k++) {
            if (x < 0 || x >= size) {
                return fail(QueueViolation.INFLIGHT_RECORD_INVALID, "entry " + e + " links to " + x);
            }
            tail = log.entryTail(x);
            int step = take(chain, x, log.entryAddr(x), tail, k);
            if (step < 0) {
                return false;
            }
            if ((step > 0) != (k == n)) {
                return fail(QueueViolation.INFLIGHT_RECORD_INVALID, "entry " + e + ": a chain of " + n
                        + " descriptors ends at " + k);
            }
            x = log.entryNext(x);
        }
        if (!accept(chain, idOf(tail), n)) {
            return false;
        }
        inFlight++;
        return true;
    }

    /**
     * One descriptor of a chain: 1 when it ends the chain, 0 when the chain goes on, -1 when it
     * breaks a rule (the queue is broken).
     */
    private int take(DescriptorChain chain, int at, long addr, long tail, int descs) {
        long len = lenOf(tail);
        int flags = flagsOf(tail);
        if ((flags & F_INDIRECT) != 0) {
            if (!indirect) {
                return refuse(QueueViolation.INDIRECT_NOT_NEGOTIATED, "descriptor " + at);
            }
            // 2.8.5: "each list only contains descriptors of a given type".
            if ((flags & F_NEXT) != 0 || descs > 1) {
                return refuse(QueueViolation.INDIRECT_WITH_NEXT, "descriptor " + at);
            }
            return walkIndirect(chain, at, addr, len) ? 1 : -1;
        }
        boolean writable = (flags & F_WRITE) != 0;
        if (!writable && chain.writableSegments() > 0) {
            return refuse(QueueViolation.READABLE_AFTER_WRITABLE, "descriptor " + at);
        }
        if (len > 0 && !map(chain, at, addr, len, writable)) {
            return -1;
        }
        return (flags & F_NEXT) == 0 ? 1 : 0;
    }

    /** Takes buffer {@code id} of {@code descs} descriptors in flight. */
    private boolean accept(DescriptorChain chain, int id, int descs) {
        if (id >= size) {
            return fail(QueueViolation.HEAD_OUT_OF_RANGE, "buffer id " + id + ", queue size " + size);
        }
        if (descsOfId[id] != 0) {
            return fail(QueueViolation.BUFFER_ID_IN_USE, "buffer id " + id);
        }
        descsOfId[id] = descs;
        chain.setHead(id);
        inOrder.popped(id);
        return true;
    }

    /** 2.8.7: the table holds len / 16 descriptors, read in order; WRITE is their only flag. */
    private boolean walkIndirect(DescriptorChain chain, int at, long addr, long len) {
        if (len == 0 || len % DESC_BYTES != 0 || len / DESC_BYTES > MAX_SIZE) {
            return fail(QueueViolation.BAD_INDIRECT_LENGTH, "descriptor " + at + " length " + len);
        }
        int r = memory.regionIndex(addr, len);
        if (r < 0) {
            return fail(QueueViolation.ADDRESS_OUT_OF_RANGE, String.format("descriptor %d indirect table [0x%x, +%d)",
                    at, addr, len));
        }
        MemoryRegion region = memory.region(r);
        MemorySegment table = region.host();
        long base = addr - region.gpa();
        int n = (int) (len / DESC_BYTES);
        for (int i = 0; i < n; i++) {
            long a = PackedRingLayout.addr(table, base, i);
            long t = PackedRingLayout.tail(table, base, i);
            long l = lenOf(t);
            // "The VIRTQ_DESC_F_WRITE flags bit is the only valid flag for descriptors in the
            // indirect table. Others are reserved and are ignored by the device."
            boolean writable = (flagsOf(t) & F_WRITE) != 0;
            if (!writable && chain.writableSegments() > 0) {
                return fail(QueueViolation.READABLE_AFTER_WRITABLE, "descriptor " + at + " indirect entry " + i);
            }
            if (l > 0 && !map(chain, at, a, l, writable)) {
                return false;
            }
        }
        return true;
    }

    /**
     * Writes the used descriptor for buffer {@code id} at the next used slot and skips forward by
     * the buffer's descriptor count (2.8.6). The id and length go first, then a release fence,
     * then the flags that make it used: pairs with the driver's read barrier after it sees the
     * flags and before it reads id and len (Linux virtqueue_get_buf_ctx_packed's virtio_rmb).
     */
    @Override
    public void push(int id, long len) {
        if (descsOfId[id] == 0) {
            throw new IllegalStateException("queue " + name + ": buffer id " + id + " is not in flight");
        }
        if (inOrder.on()) {
            // Used in the order made available: this one waits for every buffer popped before it.
            inOrder.completed(id, len);
            for (int b = inOrder.nextReady(); b >= 0; b = inOrder.nextReady()) {
                publish(b, inOrder.len(b));
            }
            return;
        }
        publish(id, len);
    }

    private void publish(int id, long len) {
        int descs = descsOfId[id];
        descsOfId[id] = 0;
        int slot = usedIdx;
        writeUsed(ring, slot, id, len);
        boolean w = usedWrap;
        usedIdx += descs;
        if (usedIdx >= size) {
            usedIdx -= size;
            usedWrap = !usedWrap;
        }
        usedCount += descs;
        // Inflight protocol: the entry freed and the used state recorded before the flags publish
        // the buffer, the entry cleared after (InflightLog; a stop anywhere is undone or completed
        // by recoverPacked, which reads these flags).
        log.publishingPacked(id, usedState());
        VarHandle.releaseFence();
        // 2.8.3: WRITE in a used descriptor says whether the device wrote into the buffer.
        ring.set(U16, PackedRingLayout.offset(slot) + FLAGS, (short) (usedFlags(w) | (len > 0 ? F_WRITE : 0)));
        if (dirty != null) {
            dirty.markHost(ring.address() + PackedRingLayout.offset(slot), PackedRingLayout.offset(1));
        }
        log.publishedPacked(id);
        inFlight--;
    }

    /**
     * 2.8.10: the driver's event suppression structure decides. Full fence first: the used flags
     * stored by {@link #push} must be visible before the driver's structure is read (store-load;
     * QEMU's smp_mb in virtio_packed_should_notify). Pairs with the full fence in the driver's
     * enable-interrupts between writing its structure and re-reading the next used descriptor.
     */
    @Override
    public boolean needsNotify() {
        if (!started) {
            return false;
        }
        VarHandle.fullFence();
        int flags = Short.toUnsignedInt(driverEvent.get(U16, EVENT_FLAGS)) & EVENT_FLAGS_MASK;
        long old = signalledUsed;
        boolean valid = signalledUsedValid;
        signalledUsed = usedCount;
        signalledUsedValid = true;
        if (flags == EVENT_DISABLE) {
            return false;
        }
        if (flags != EVENT_DESC || !eventIdx) {
            return true; // ENABLE (or the reserved value 3): "MUST send" as the split ring's flags 0
        }
        // flags before off_wrap: pairs with the store-store fence between the driver's stores of
        // off_wrap and flags (GuestPackedVring.enableInterrupts; Linux virtqueue_enable_cb_prepare_packed).
        VarHandle.loadLoadFence();
        int offWrap = Short.toUnsignedInt(driverEvent.get(U16, EVENT_OFF_WRAP));
        return !valid || PackedRingLayout.needEvent(offWrap, old, usedCount, usedIdx, usedWrap, size);
    }

    /**
     * 2.8.10: RING_EVENT_FLAGS_DISABLE in the device's structure. No fence: a driver that still
     * sees the old state only sends a kick the device does not need.
     */
    @Override
    public void disableNotification() {
        if (!started) {
            return;
        }
        if (!kicksOff) {
            deviceEvent.set(U16, EVENT_FLAGS, (short) EVENT_DISABLE);
            logDeviceEvent();
        }
        kicksOff = true;
    }

    @Override
    public boolean notificationsDisabled() {
        return kicksOff;
    }

    /**
     * Kicks back on — with EVENT_IDX for the next descriptor the device reads (off_wrap = its read
     * position and wrap counter, flags DESC), otherwise ENABLE — then a full fence and a second
     * look at the ring. Pairs with the driver's full fence between storing a descriptor's flags
     * and reading this structure (Linux virtqueue_kick_prepare_packed's virtio_mb): without both,
     * the driver could see "disabled" while the device misses its new descriptor.
     */
    @Override
    public boolean enableNotification() {
        if (!started || violation != null) {
            return false;
        }
        kicksOff = false;
        if (eventIdx) {
            deviceEvent.set(U16, EVENT_OFF_WRAP, (short) (availIdx | (availWrap ? WRAP_BIT : 0)));
            // off_wrap before the flags that make the driver read it: pairs with the load-load
            // fence between the driver's reads of flags and off_wrap (GuestPackedVring.kickNeeded).
            VarHandle.storeStoreFence();
            deviceEvent.set(U16, EVENT_FLAGS, (short) EVENT_DESC);
        } else {
            deviceEvent.set(U16, EVENT_FLAGS, (short) EVENT_ENABLE);
        }
        logDeviceEvent();
        VarHandle.fullFence();
        return hasAvailable();
    }

    private void logDeviceEvent() {
        if (dirty != null) {
            dirty.markHost(deviceEvent.address(), EVENT_BYTES);
        }
    }

    /** Maps one buffer into the chain ({@link BufferMap}); breaks the queue on what it refuses. */
    private boolean map(DescriptorChain chain, int at, long addr, long len, boolean writable) {
        QueueViolation v = buffers.map(chain, addr, len, writable);
        return v == null || fail(v, BufferMap.detail(v, "descriptor " + at, addr, len));
    }

    private int refuse(QueueViolation v, String detail) {
        fail(v, detail);
        return -1;
    }

    private boolean fail(QueueViolation v, String detail) {
        if (violation == null) {
            violation = v;
            violationDetail = detail;
        }
        return false;
    }

    @Override
    public String toString() {
        return "PackedQueue[" + name + " size=" + size + " avail=" + availIdx + (availWrap ? "w1" : "w0") + " used="
                + usedIdx + (usedWrap ? "w1" : "w0") + " inFlight=" + inFlight
                + (violation != null ? " " + violation : "") + "]";
    }
}
