package io.vblk.virtio.queue;

import io.vblk.virtio.memory.DirtyLog;
import io.vblk.virtio.memory.GuestMemory;
import io.vblk.virtio.memory.MemoryRegion;

import java.lang.foreign.MemorySegment;
import java.lang.invoke.VarHandle;

import static io.vblk.virtio.queue.LittleEndian.U16;
import static io.vblk.virtio.queue.LittleEndian.U32;

/**
 * Home thread: the owning IoThread of the device queue. No locking.
 *
 * <p>The device side of one split virtqueue (virtio 1.2 section 2.7): pops descriptor chains the
 * driver made available, pushes used elements back, and decides when the driver wants a used
 * buffer notification and when the device wants a kick. It knows nothing of the device type.
 *
 * <p>The rings are translated once, at {@link #start}, into segments of the guest memory
 * mapping; every later access is an offset into them, so the request path allocates nothing. A
 * driver that breaks a ring rule makes {@link #pop} return false and leaves the queue
 * {@link #broken() broken} with a named {@link QueueViolation}: the owner puts its device into
 * NEEDS_RESET and stops taking requests from this queue.
 *
 * <p>While the front-end migrates the guest, the layout carries a {@link DirtyLog}: every write to
 * the used ring is marked there after it is made, and {@link DescriptorChain}'s writes too (the
 * one hook; without a log it costs one null check).
 *
 * <p>Shared-memory ordering with the driver (another CPU in the guest) uses explicit fences;
 * each one names the driver-side barrier it pairs with.
 */
public final class SplitQueue implements VirtQueue {
    /** Largest queue size vblk accepts (QEMU's VIRTQUEUE_MAX_SIZE; 2.6 allows up to 32768). */
    public static final int MAX_SIZE = 1024;

    private final String name;

    // Set at start, fixed while started.
    private GuestMemory memory;
    private MemorySegment descTable;
    private MemorySegment avail;
    private MemorySegment used;
    private int size;
    private int mask;
    private long availEventOffset;
    private long usedEventOffset;
    /** Buffer translation into the guest's regions (fixed while started). */
    private final BufferMap buffers = new BufferMap();
    /** VIRTIO_F_IN_ORDER: completions held until every earlier chain completed. */
    private final InOrder inOrder = new InOrder();
    private boolean eventIdx;
    private boolean indirect;
    private boolean notifyOnEmpty;
    private boolean started;
    /** The migration dirty log (used-ring writes and chain writes are marked), or null. */
    private DirtyLog dirty;

    // Ring cursors (16-bit arithmetic, kept in ints masked with 0xffff).
    private int lastAvailIdx;
    private int shadowAvailIdx;
    private int usedIdx;
    private int signalledUsed;
    private boolean signalledUsedValid;
    private int inFlight;
    /** Where popped heads are recorded (vhost-user INFLIGHT_SHMFD); {@link InflightLog#NONE} without one. */
    private InflightLog log = InflightLog.NONE;
    /** Heads of a previous run may still wait in {@link #log} to be executed again, before any new pop. */
    private boolean resubmitting;
    /** Kicks are switched off (NO_NOTIFY set, or avail_event parked behind the driver's window). */
    private boolean kicksOff;
    /** The avail_event value last written while kicks are off (EVENT_IDX only). */
    private int parkedAvailEvent;

    private QueueViolation violation;
    private String violationDetail;

    public SplitQueue(String name) {
        this.name = name;
    }

    public String name() {
        return name;
    }

    /**
     * Attaches the rings described by {@code layout} in {@code memory} and resumes at
     * {@code layout.nextAvailIdx()}. The used index is taken from the ring (a fresh ring holds 0;
     * a reconnecting frontend's ring holds where the last backend stopped). Returns false, with
     * {@link #violation()} set, when the layout breaks a rule of section 2.7.
     *
     * @param features the negotiated feature bits (INDIRECT_DESC, EVENT_IDX, NOTIFY_ON_EMPTY matter here)
     * @param maxSize  the device's largest queue size (at most {@link #MAX_SIZE})
     */
    public boolean start(QueueLayout layout, GuestMemory memory, long features, int maxSize) {
        if (started) {
            throw new IllegalStateException("queue " + name + " already started");
        }
        this.violation = null;
        this.violationDetail = null;
        int n = layout.size();
        // 2.6: "Queue Size value is always a power of 2"; vblk takes at most maxSize (<= 1024).
        if (n <= 0 || Integer.bitCount(n) != 1 || n > Math.min(maxSize, MAX_SIZE)) {
            return fail(QueueViolation.BAD_QUEUE_SIZE, "size " + n + ", maximum " + Math.min(maxSize, MAX_SIZE));
        }
        // 2.7 alignment table: descriptor table 16, driver area 2, device area 4.
        if ((layout.descAddr() & (DescriptorLayout.TABLE_ALIGN - 1)) != 0
                || (layout.availAddr() & (AvailRingLayout.ALIGN - 1)) != 0
                || (layout.usedAddr() & (UsedRingLayout.ALIGN - 1)) != 0) {
            return fail(QueueViolation.RING_MISALIGNED, String.format("desc 0x%x avail 0x%x used 0x%x",
                    layout.descAddr(), layout.availAddr(), layout.usedAddr()));
        }
        MemorySegment d = memory.translate(layout.descAddr(), DescriptorLayout.tableBytes(n));
        MemorySegment a = memory.translate(layout.availAddr(), AvailRingLayout.bytes(n));
        MemorySegment u = memory.translate(layout.usedAddr(), UsedRingLayout.bytes(n));
        if (d == null || a == null || u == null) {
            return fail(QueueViolation.RING_OUTSIDE_MEMORY, String.format("desc 0x%x avail 0x%x used 0x%x size %d",
                    layout.descAddr(), layout.availAddr(), layout.usedAddr(), n));
        }
        this.memory = memory;
        buffers.attach(memory);
        this.descTable = d;
        this.avail = a;
        this.used = u;
        this.size = n;
        this.mask = n - 1;
        this.availEventOffset = UsedRingLayout.availEventOffset(n);
        this.usedEventOffset = AvailRingLayout.usedEventOffset(n);
        this.eventIdx = VirtioFeatures.has(features, VirtioFeatures.RING_EVENT_IDX);
        this.indirect = VirtioFeatures.has(features, VirtioFeatures.RING_INDIRECT_DESC);
        inOrder.reset(VirtioFeatures.has(features, VirtioFeatures.IN_ORDER), n);
        this.notifyOnEmpty = VirtioFeatures.has(features, VirtioFeatures.NOTIFY_ON_EMPTY);
        this.lastAvailIdx = layout.nextAvailIdx() & 0xffff;
        this.shadowAvailIdx = lastAvailIdx;
        this.usedIdx = UsedRingLayout.idx(used);
        this.signalledUsedValid = false;
        this.inFlight = 0;
        this.log = layout.inflight();
        if (log.packedLayout()) {
            log = InflightLog.NONE;
            return fail(QueueViolation.INFLIGHT_RECORD_INVALID, "the inflight record is laid out for packed rings");
        }
        int next = log.recover(usedIdx, lastAvailIdx);
        if (next < 0 || (log != InflightLog.NONE && next != lastAvailIdx && ((next - usedIdx) & 0xffff) > n)) {
            return fail(QueueViolation.INFLIGHT_RECORD_INVALID, "used idx " + usedIdx + ", recovered avail idx " + next
                    + ", queue size " + n);
        }
        this.lastAvailIdx = next;
        this.shadowAvailIdx = next;
        this.resubmitting = log != InflightLog.NONE;
        this.kicksOff = false;
        this.dirty = layout.dirty();
        this.started = true;
        return true;
    }

    /** Detaches from the rings; the next avail index stays readable for the transport. */
    public void stop() {
        started = false;
        resubmitting = false;
        log = InflightLog.NONE;
        dirty = null;
        memory = null;
        buffers.detach();
        descTable = null;
        avail = null;
        used = null;
    }

    public boolean started() {
        return started;
    }

    public int size() {
        return size;
    }

    /** The avail index the device processes next (vhost-user GET_VRING_BASE). */
    public int nextAvailIdx() {
        return lastAvailIdx;
    }

    /** The device's used index (the next used slot to fill, 16-bit). */
    public int usedIdx() {
        return usedIdx;
    }

    /** Chains popped and not yet pushed back. */
    public int inFlight() {
        return inFlight;
    }

    public boolean broken() {
        return violation != null;
    }

    public QueueViolation violation() {
        return violation;
    }

    /** "queue q0: CHAIN_LOOP (virtio 1.2 2.7.5.2): descriptor chain loops ...: head 3", or null. */
    public String brokenReason() {
        if (violation == null) {
            return null;
        }
        return "queue " + name + ": " + violation + " (virtio 1.2 " + violation.section() + "): "
                + violation.description() + (violationDetail == null ? "" : ": " + violationDetail);
    }

    /**
     * Reads the driver's avail index; true when a chain is waiting. Pairs with the driver's write
     * barrier before it publishes avail idx (2.7.13.3: "The driver MUST perform a suitable memory
     * barrier before the idx update").
     */
    public boolean hasAvailable() {
        if (!started || violation != null) {
            return false;
        }
        if (shadowAvailIdx != lastAvailIdx || resubmitting) {
            return true;
        }
        return refreshAvailIdx() && shadowAvailIdx != lastAvailIdx;
    }

    /**
     * Chains known to be waiting as of the last read of the avail index (no new read): after a
     * pop, what the pass still has before it. For the queue-depth meter.
     */
    public int availableSeen() {
        return (shadowAvailIdx - lastAvailIdx) & 0xffff;
    }

    /**
     * Pops the next available chain into {@code chain}. Returns false when none is waiting or when
     * the driver broke a rule ({@link #broken()} tells which).
     */
    public boolean pop(DescriptorChain chain) {
        if (!started || violation != null) {
            return false;
        }
        if (resubmitting) {
            // Requests a previous run took and never completed go first, oldest first
            // (vhost-user.rst: "resubmit inflight I/Os" in the order they were fetched).
            int head = log.nextResubmit();
            if (head >= 0) {
                if (!walk(chain, head)) {
                    return false;
                }
                inOrder.popped(head);
                inFlight++;
                return true;
            }
            resubmitting = false;
        }
        if (shadowAvailIdx == lastAvailIdx) {
            if (!refreshAvailIdx() || shadowAvailIdx == lastAvailIdx) {
                return false;
            }
        }
        // Ring entries are read after the acquire in refreshAvailIdx (pairs with the driver's
        // barrier between writing ring[] and idx, 2.7.13.3).
        int head = AvailRingLayout.ring(avail, lastAvailIdx & mask);
        lastAvailIdx = (lastAvailIdx + 1) & 0xffff;
        if (head >= size) {
            // 2.7.6: ring[] holds the head of a descriptor chain in the table.
            return fail(QueueViolation.HEAD_OUT_OF_RANGE, "head " + head + ", queue size " + size);
        }
        if (!walk(chain, head)) {
            return false;
        }
        // Recorded before the request can have any effect. A stop between the index increment
        // above and this store leaves the head unrecorded; the recovery then resumes one entry
        // earlier (used idx + heads recorded) and pops it again.
        log.popped(head);
        inOrder.popped(head);
        inFlight++;
        return true;
    }

    /**
     * Returns chain {@code head} to the driver with {@code len} bytes written into it, and
     * publishes the new used index. 2.7.8.2: "The device MUST set len prior to updating the used
     * idx".
     */
    public void push(int head, long len) {
        if (inOrder.on()) {
            // Used in the order made available: this one waits for every chain popped before it.
            inOrder.completed(head, len);
            for (int h = inOrder.nextReady(); h >= 0; h = inOrder.nextReady()) {
                publish(h, inOrder.len(h));
            }
            return;
        }
        publish(head, len);
    }

    private void publish(int head, long len) {
        // Inflight protocol: last_batch_head first, then the element and the index, then the
        // record cleared (InflightLog's order; a stop at any point is recovered by recover()).
        log.publishing(head);
        int slot = usedIdx & mask;
        used.set(U32, UsedRingLayout.elemOffset(slot) + UsedRingLayout.ELEM_ID, head);
        used.set(U32, UsedRingLayout.elemOffset(slot) + UsedRingLayout.ELEM_LEN, (int) len);
        usedIdx = (usedIdx + 1) & 0xffff;
        // Release: the element, the status byte and the data written into the chain become visible
        // before the index. Pairs with the driver's read barrier after it reads used idx and before
        // it reads the element (2.7.14; Linux virtqueue_get_buf's virtio_rmb).
        VarHandle.releaseFence();
        used.set(U16, UsedRingLayout.IDX, (short) usedIdx);
        if (dirty != null) {
            // vhost-user.rst "Live migration": used-ring writes are logged (after the write).
            dirty.markUsed(UsedRingLayout.elemOffset(slot), UsedRingLayout.ELEM_BYTES);
            dirty.markUsed(UsedRingLayout.IDX, 2);
        }
        log.published(head, usedIdx);
        inFlight--;
    }

    /**
     * Decides whether the driver wants a used buffer notification now (2.7.7.2), and with
     * EVENT_IDX remembers the used index it was decided for. Call once per batch of pushes.
     */
    public boolean needsNotify() {
        if (!started) {
            return false;
        }
        // Full fence: our used idx store must be visible before we read the driver's suppression
        // state (store-load order; QEMU's smp_mb in virtio_split_should_notify). Pairs with the
        // full fence in GuestVring.enableInterrupts (Linux virtqueue_enable_cb_prepare +
        // virtqueue_poll) between writing used_event (or clearing VIRTQ_AVAIL_F_NO_INTERRUPT) and
        // re-reading used idx; without both fences each side could miss the other's update.
        VarHandle.fullFence();
        // 6.3 NOTIFY_ON_EMPTY: "the device MUST issue a used buffer notification if the device runs
        // out of available descriptors ... even though notifications are suppressed".
        if (notifyOnEmpty && inFlight == 0 && AvailRingLayout.idx(avail) == lastAvailIdx) {
            signalledUsed = usedIdx;
            signalledUsedValid = true;
            return true;
        }
        if (!eventIdx) {
            // 2.7.7.2: without EVENT_IDX, flags 1 means "SHOULD NOT send", 0 "MUST send".
            return (AvailRingLayout.flags(avail) & AvailRingLayout.F_NO_INTERRUPT) == 0;
        }
        // 2.7.7.2 with EVENT_IDX: notify when the used index passed used_event since the last
        // notification. The first decision after start always notifies (the old index is unknown).
        int old = signalledUsed;
        boolean valid = signalledUsedValid;
        signalledUsed = usedIdx;
        signalledUsedValid = true;
        return !valid || needEvent(Short.toUnsignedInt(avail.get(U16, usedEventOffset)), usedIdx, old);
    }

    /**
     * Asks the driver not to kick while the device is processing or polling anyway (2.7.10;
     * QEMU's {@code virtio_queue_set_notification(vq, 0)}). Without EVENT_IDX sets
     * VIRTQ_USED_F_NO_NOTIFY. With EVENT_IDX parks avail_event one behind the next avail index
     * the device reads: the driver's window {@code [old, new)} always starts at or after that
     * index (it never moves back, 2.7.6.1) and spans at most the queue size, so
     * {@link #needEvent} is false for every kick it prepares until {@link #enableNotification}.
     * The parked value is rewritten once the device has moved a quarter of the index space past it,
     * so a long polling phase does not let the 16-bit window wrap onto it.
     *
     * <p>No fence: a driver that still sees the old state only sends a kick the device does not
     * need. Repeated calls while kicks are already off store nothing (the used ring's first cache
     * line and avail_event are read by the driver on every kick it prepares).
     */
    public void disableNotification() {
        if (!started) {
            return;
        }
        if (eventIdx) {
            if (!kicksOff || ((lastAvailIdx - parkedAvailEvent) & 0xffff) > 0x4000) {
                parkedAvailEvent = (lastAvailIdx - 1) & 0xffff;
                used.set(U16, availEventOffset, (short) parkedAvailEvent);
                logUsed(availEventOffset);
            }
        } else if (!kicksOff) {
            used.set(U16, UsedRingLayout.FLAGS, (short) UsedRingLayout.F_NO_NOTIFY);
            logUsed(UsedRingLayout.FLAGS);
        }
        kicksOff = true;
    }

    /** True between {@link #disableNotification} and the next {@link #enableNotification}. */
    public boolean notificationsDisabled() {
        return kicksOff;
    }

    /**
     * Asks the driver to kick for the next buffer, then re-reads the avail index (QEMU's
     * {@code virtio_queue_set_notification(vq, 1)} then {@code virtio_queue_empty}). Returns true
     * when buffers arrived meanwhile: the caller must process them (the driver may have decided not
     * to kick just before seeing the re-enabled state).
     */
    public boolean enableNotification() {
        if (!started || violation != null) {
            return false;
        }
        kicksOff = false;
        if (eventIdx) {
            // 2.7.10: with EVENT_IDX the driver kicks when avail idx passes avail_event.
            used.set(U16, availEventOffset, (short) lastAvailIdx);
            logUsed(availEventOffset);
        } else {
            used.set(U16, UsedRingLayout.FLAGS, (short) 0);
            logUsed(UsedRingLayout.FLAGS);
        }
        // Full fence, then a second read of avail idx: our store of avail_event / flags must be
        // visible before we look again (a store-load order, which only a full fence gives; QEMU's
        // smp_mb in virtio_queue_split_set_notification). Pairs with the full fence in
        // GuestVring.kickNeeded (Linux virtqueue_kick_prepare's virtio_mb) between the driver's
        // store of avail idx and its read of avail_event / used flags (2.7.13.4). Without either,
        // the driver could see the old "don't kick" state while we miss its new buffer.
        VarHandle.fullFence();
        return hasAvailable();
    }

    /**
     * vring_need_event (2.7.7.2 / 2.7.10): true when {@code eventIdx} lies in the window of
     * indexes {@code [old, newIdx)} the device just moved past, all modulo 2^16.
     */
    public static boolean needEvent(int eventIdx, int newIdx, int old) {
        return ((newIdx - eventIdx - 1) & 0xffff) < ((newIdx - old) & 0xffff);
    }

    // ---- internals ----

    /** A 16-bit field of the used ring was written: mark it while migrating. */
    private void logUsed(long offset) {
        if (dirty != null) {
            dirty.markUsed(offset, 2);
        }
    }

    /** Reads avail idx with acquire; false (and broken) when it jumped more than size ahead. */
    private boolean refreshAvailIdx() {
        int idx = AvailRingLayout.idx(avail);
        // Acquire: ring[] and descriptor reads that follow see what the driver wrote before idx.
        // Pairs with the driver's write barrier before publishing idx (2.7.13.3).
        VarHandle.acquireFence();
        int pending = (idx - lastAvailIdx) & 0xffff;
        if (pending > size) {
            // 2.7.6.1: idx never moves back, and the driver cannot expose more than size buffers.
            fail(QueueViolation.AVAIL_INDEX_JUMP, "from " + lastAvailIdx + " to " + idx + ", queue size " + size);
            return false;
        }
        shadowAvailIdx = idx;
        return true;
    }

    /** Follows the chain at {@code head}, direct then at most one indirect table. */
    private boolean walk(DescriptorChain chain, int head) {
        chain.reset(memory, head, dirty);
        MemorySegment table = descTable;
        long base = 0;
        int tableSize = size;
        boolean inIndirect = false;
        int idx = head;
        int visited = 0;
        while (true) {
            // 2.7.5.2 forbids loops; 2.7.5.3.1 chains longer than the queue (direct part) or than
            // the table (indirect part). Counting visits bounds the walk either way.
            if (++visited > tableSize) {
                return fail(QueueViolation.CHAIN_LOOP, "head " + head + (inIndirect ? " (indirect table of "
                        + tableSize + ")" : "") + " visited more than " + tableSize + " descriptors");
            }
            // Two 8-byte loads per descriptor (addr; len|flags|next), each read exactly once:
            // the values checked are the values used, whatever the driver writes meanwhile.
            long addr = DescriptorLayout.addr(table, base, idx);
            long tail = DescriptorLayout.tail(table, base, idx);
            long len = DescriptorLayout.lenOf(tail);
            int flags = DescriptorLayout.flagsOf(tail);
            int next = DescriptorLayout.nextOf(tail);
            if ((flags & DescriptorLayout.F_INDIRECT) != 0) {
                if (!indirect) {
                    return fail(QueueViolation.INDIRECT_NOT_NEGOTIATED, "head " + head + " descriptor " + idx);
                }
                if (inIndirect) {
                    return fail(QueueViolation.NESTED_INDIRECT, "head " + head + " indirect entry " + idx);
                }
                if ((flags & DescriptorLayout.F_NEXT) != 0) {
                    return fail(QueueViolation.INDIRECT_WITH_NEXT, "head " + head + " descriptor " + idx);
                }
                // 2.7.5.3: the table is len / 16 descriptors; vblk reads at most MAX_SIZE of them
                // (as QEMU and libvhost-user, which bound indirect tables by VIRTQUEUE_MAX_SIZE).
                if (len == 0 || len % DescriptorLayout.BYTES != 0 || len / DescriptorLayout.BYTES > MAX_SIZE) {
                    return fail(QueueViolation.BAD_INDIRECT_LENGTH, "head " + head + " length " + len);
                }
                int r = memory.regionIndex(addr, len);
                if (r < 0) {
                    return fail(QueueViolation.ADDRESS_OUT_OF_RANGE, String.format(
                            "head %d indirect table [0x%x, +%d)", head, addr, len));
                }
                MemoryRegion region = memory.region(r);
                // 2.7.5.3.2: "The device MUST ignore the write-only flag" of this descriptor.
                table = region.host();
                base = addr - region.gpa();
                tableSize = (int) (len / DescriptorLayout.BYTES);
                inIndirect = true;
                idx = 0;
                visited = 0;
                continue;
            }
            boolean writable = (flags & DescriptorLayout.F_WRITE) != 0;
            if (!writable && chain.writableSegments() > 0) {
                // 2.7.4.2: "The driver MUST place any device-writable descriptor elements after
                // any device-readable descriptor elements."
                return fail(QueueViolation.READABLE_AFTER_WRITABLE, "head " + head + " descriptor " + idx);
            }
            if (len > 0 && !map(chain, head, addr, len, writable)) {
                return false;
            }
            if ((flags & DescriptorLayout.F_NEXT) == 0) {
                return true;
            }
            if (next >= tableSize) {
                return fail(QueueViolation.NEXT_OUT_OF_RANGE, "head " + head + " descriptor " + idx + " next "
                        + next + ", table of " + tableSize);
            }
            idx = next;
        }
    }

    /** Maps one buffer into the chain ({@link BufferMap}); breaks the queue on what it refuses. */
    private boolean map(DescriptorChain chain, int head, long addr, long len, boolean writable) {
        QueueViolation v = buffers.map(chain, addr, len, writable);
        return v == null || fail(v, BufferMap.detail(v, "head " + head, addr, len));
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
        return "SplitQueue[" + name + " size=" + size + " lastAvail=" + lastAvailIdx + " used=" + usedIdx
                + " inFlight=" + inFlight + (violation != null ? " " + violation : "") + "]";
    }
}
