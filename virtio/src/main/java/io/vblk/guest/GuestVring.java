package io.vblk.guest;

import io.vblk.virtio.queue.QueueLayout;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;

import static io.vblk.guest.VringLayout.*;

/**
 * Home thread: the guest vCPU thread that drives this queue (set-up runs before that thread
 * starts, which publishes it). No locking. Nothing here allocates after construction.
 *
 * <p>The driver side of one split virtqueue (virtio 1.x section 2.7): builds descriptor chains
 * (direct and indirect), publishes them in the available ring, decides whether the device needs a
 * kick, and reaps the used ring. Descriptor bookkeeping (free list, chain lengths, which head
 * belongs to which request) lives in Java arrays, as a real driver keeps it: the guest never trusts
 * the device to leave the descriptor table alone, and frees chains from its own records.
 */
public final class GuestVring implements GuestRing {
    // Plain accesses use the unaligned layouts: every offset here is naturally aligned by
    // construction (2.7's part alignments), and skipping the per-access alignment check is
    // measurably cheaper on the request path. Ordered accesses need the aligned layout.
    static final ValueLayout.OfShort LE16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfInt LE32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfLong LE64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    /** avail->idx store with release semantics; coordinates (segment, offset). */
    private static final VarHandle IDX16 = ValueLayout.JAVA_SHORT.withOrder(ByteOrder.LITTLE_ENDIAN).varHandle();

    private final GuestRam ram;
    private final int size;
    private final int mask;
    private final long descGpa;
    private final long availGpa;
    private final long usedGpa;
    private final MemorySegment desc;
    private final MemorySegment avail;
    private final MemorySegment used;
    private final long availEventOff;
    private final long usedEventOff;

    /** Free-list link for free descriptors, chain link for descriptors in a direct chain. */
    private final int[] next;
    /** Descriptors in the chain whose head is the index (1 for an indirect chain). */
    private final int[] chainLen;
    /** The token given at commit for an in-flight head, -1 when the head is not in flight. */
    private final int[] tokenOfHead;
    private int freeHead;
    private int numFree;
    private int inFlight;

    private boolean eventIdx;
    /** The avail idx the driver writes next (free-running, kept modulo 2^16). */
    private int availShadow;
    /** Chains made available since the last {@link #kickNeeded()}. */
    private int numAdded;
    /** The used idx the driver reads next. */
    private int lastUsed;
    private boolean interruptsOff;

    // The chain under construction.
    private boolean building;
    private boolean chainIndirect;
    private int chainHead;
    private int chainPrev;
    private int chainCount;
    private long tableGpa;
    private MemorySegment table;
    private int tableCapacity;

    private long chainsAdded;
    private long usedReaped;

    private GuestVring(GuestRam ram, int size, long descGpa, long availGpa, long usedGpa, MemorySegment desc,
                       MemorySegment avail, MemorySegment used) {
        this.ram = ram;
        this.size = size;
        this.mask = size - 1;
        this.descGpa = descGpa;
        this.availGpa = availGpa;
        this.usedGpa = usedGpa;
        this.desc = desc;
        this.avail = avail;
        this.used = used;
        this.availEventOff = availEventOffset(size);
        this.usedEventOff = usedEventOffset(size);
        this.next = new int[size];
        this.chainLen = new int[size];
        this.tokenOfHead = new int[size];
        reset();
    }

    /**
     * Lays out a queue of {@code size} entries in {@code ram} with the alignments of 2.7
     * (descriptor table 16, driver area 2, device area 4) and zeroes all three parts.
     */
    public static GuestVring allocate(GuestRam ram, int size) {
        if (!validSize(size)) {
            // 2.7: "Queue Size value is always a power of 2. The maximum Queue Size value is 32768."
            throw new IllegalArgumentException("queue size must be a power of two in 1..32768, got " + size);
        }
        long d = ram.allocate(descTableBytes(size), DESC_ALIGN);
        long a = ram.allocate(availBytes(size), AVAIL_ALIGN);
        long u = ram.allocate(usedBytes(size), USED_ALIGN);
        GuestVring v = new GuestVring(ram, size, d, a, u, ram.segment(d, descTableBytes(size)),
                ram.segment(a, availBytes(size)), ram.segment(u, usedBytes(size)));
        v.desc.fill((byte) 0);
        v.avail.fill((byte) 0);
        v.used.fill((byte) 0);
        return v;
    }

    /**
     * Forgets every chain and index, as after a device reset: all descriptors free, indices 0.
     * The rings themselves are not touched (call before the queue is (re)started).
     */
    public void reset() {
        for (int i = 0; i < size; i++) {
            next[i] = i + 1;
            chainLen[i] = 0;
            tokenOfHead[i] = -1;
        }
        freeHead = 0;
        numFree = size;
        inFlight = 0;
        availShadow = 0;
        numAdded = 0;
        lastUsed = 0;
        building = false;
        interruptsOff = false;
    }

    /** Whether VIRTIO_F_EVENT_IDX was negotiated: used_event/avail_event replace the flags. */
    public void setEventIdx(boolean on) {
        this.eventIdx = on;
    }

    public boolean eventIdx() {
        return eventIdx;
    }

    /** Where this queue lives, for the transport's configure-queue call (first avail idx 0). */
    public QueueLayout layout() {
        return new QueueLayout(size, descGpa, availGpa, usedGpa, 0);
    }

    public int size() {
        return size;
    }

    public long descGpa() {
        return descGpa;
    }

    public long availGpa() {
        return availGpa;
    }

    public long usedGpa() {
        return usedGpa;
    }

    public int freeDescriptors() {
        return numFree;
    }

    /** Chains committed and not yet returned through the used ring. */
    public int inFlight() {
        return inFlight;
    }

    public int availIdx() {
        return availShadow;
    }

    public int lastUsedIdx() {
        return lastUsed;
    }

    public long chainsAdded() {
        return chainsAdded;
    }

    public long usedReaped() {
        return usedReaped;
    }

    // ---------------------------------------------------------------- building chains

    /** Starts a chain of descriptors taken from the queue's own table. */
    public void beginChain() {
        checkNotBuilding();
        building = true;
        chainIndirect = false;
        chainHead = -1;
        chainPrev = -1;
        chainCount = 0;
    }

    /**
     * Starts a chain that lives in an indirect table at {@code tableGpa} (host view {@code table},
     * room for {@code capacity} descriptors, 16-byte aligned); only one descriptor of the queue's
     * table is used (2.7.5.3). Requires VIRTIO_F_INDIRECT_DESC.
     */
    public void beginIndirectChain(long tableGpa, MemorySegment table, int capacity) {
        checkNotBuilding();
        building = true;
        chainIndirect = true;
        chainCount = 0;
        this.tableGpa = tableGpa;
        this.table = table;
        this.tableCapacity = capacity;
    }

    /**
     * Appends a buffer to the chain under construction. {@code deviceWritable} sets
     * VIRTQ_DESC_F_WRITE. 2.7.4.2: a driver puts every device-readable buffer before every
     * device-writable one; this method leaves that to the caller so tests can break the rule.
     */
    public void addBuffer(long gpa, int len, boolean deviceWritable) {
        if (!building) {
            throw new IllegalStateException("addBuffer outside a chain");
        }
        short flags = deviceWritable ? VIRTQ_DESC_F_WRITE : 0;
        if (chainIndirect) {
            if (chainCount == tableCapacity) {
                throw new IllegalStateException("indirect table full at " + tableCapacity + " descriptors");
            }
            long off = descOffset(chainCount);
            writeDesc(table, off, gpa, len, flags, (short) 0);
            if (chainCount > 0) {
                // 2.7.5.3.1: inside an indirect table, next is an index into that table.
                linkPrev(table, descOffset(chainCount - 1), chainCount);
            }
            chainCount++;
            return;
        }
        if (numFree == 0) {
            throw new IllegalStateException("no free descriptor (queue size " + size + ", " + inFlight
                    + " chains in flight)");
        }
        int d = freeHead;
        freeHead = next[d];
        numFree--;
        writeDesc(desc, descOffset(d), gpa, len, flags, (short) 0);
        if (chainPrev >= 0) {
            linkPrev(desc, descOffset(chainPrev), d);
            next[chainPrev] = d;
        } else {
            chainHead = d;
        }
        chainPrev = d;
        chainCount++;
    }

    /**
     * Puts the chain in the next slot of the available ring (not yet visible to the device: see
     * {@link #publish()}) and returns its head descriptor index. {@code token} comes back from
     * {@link #reap} when the device returns the chain.
     */
    public int commitChain(int token) {
        if (!building || chainCount == 0) {
            throw new IllegalStateException("commit of an empty chain");
        }
        if (token < 0) {
            throw new IllegalArgumentException("token must be >= 0");
        }
        int head;
        if (chainIndirect) {
            if (numFree == 0) {
                throw new IllegalStateException("no free descriptor for an indirect chain");
            }
            head = freeHead;
            freeHead = next[head];
            numFree--;
            // 2.7.5.3.1: "The driver MUST NOT set the VIRTQ_DESC_F_WRITE flag" on the descriptor
            // pointing to the table, nor NEXT together with INDIRECT.
            writeDesc(desc, descOffset(head), tableGpa, chainCount * DESC_BYTES, VIRTQ_DESC_F_INDIRECT, (short) 0);
            chainLen[head] = 1;
        } else {
            head = chainHead;
            chainLen[head] = chainCount;
        }
        building = false;
        tokenOfHead[head] = token;
        inFlight++;
        chainsAdded++;
        putAvail(head);
        return head;
    }

    /** Abandons the chain under construction, returning its descriptors to the free list. */
    public void abortChain() {
        if (!building) {
            return;
        }
        if (!chainIndirect && chainCount > 0) {
            freeChain(chainHead, chainCount);
        }
        building = false;
    }

    // ---------------------------------------------------------------- publishing and kicking

    /**
     * Makes every committed chain visible: stores avail->idx with release semantics, so the
     * descriptors and ring entries written before are visible first (2.7.13.3: "The driver
     * performs a suitable memory barrier to ensure the device sees the updated descriptor table
     * and available ring before the next step"). Pairs with the device's acquire load of
     * avail->idx when it pops.
     */
    public void publish() {
        IDX16.setRelease(avail, (long) AVAIL_IDX, (short) availShadow);
    }

    /**
     * After {@link #publish()}: whether the device wants a notification for the chains added
     * since the last call (2.7.13.4). With EVENT_IDX, the device's avail_event decides; without
     * it, VIRTQ_USED_F_NO_NOTIFY. Resets the added count either way.
     */
    public boolean kickNeeded() {
        int added = numAdded;
        numAdded = 0;
        if (added == 0) {
            return false;
        }
        // Full fence: the avail idx store must be globally visible before we read avail_event or
        // the used flags, or we could skip a kick while the device goes to sleep having read the
        // old idx (Linux virtqueue_kick_prepare's virtio_mb). Pairs with the device's fence
        // between publishing avail_event (or clearing NO_NOTIFY) and re-reading avail->idx.
        VarHandle.fullFence();
        if (eventIdx) {
            int event = Short.toUnsignedInt(used.get(LE16, availEventOff));
            int newIdx = availShadow;
            int oldIdx = (availShadow - added) & 0xffff;
            return needEvent(event, newIdx, oldIdx);
        }
        return (used.get(LE16, USED_FLAGS) & VIRTQ_USED_F_NO_NOTIFY) == 0;
    }

    // ---------------------------------------------------------------- used ring

    /** Who hears about each returned chain (2.7.8: len is what the device wrote). */
    @FunctionalInterface
    public interface UsedConsumer extends GuestRing.UsedConsumer {
    }

    @Override
    public boolean packed() {
        return false;
    }

    /**
     * Reads used->idx with acquire semantics (pairs with the device's release store of used->idx
     * after writing the element, 2.7.8.2), so the element and everything the device wrote into
     * the buffers are visible.
     */
    public int usedIdx() {
        return Short.toUnsignedInt((short) IDX16.getAcquire(used, (long) USED_IDX));
    }

    public boolean hasUsed() {
        return usedIdx() != lastUsed;
    }

    /**
     * Returns every chain the device has put in the used ring to the free list and hands its
     * token to {@code consumer} (after freeing, so the consumer may post again). Returns how many.
     * A used element that names no in-flight head, or a used idx that runs ahead of what is in
     * flight, is a device bug: {@link GuestRingException}.
     */
    public int reap(GuestRing.UsedConsumer consumer) {
        int end = usedIdx();
        int pending = (end - lastUsed) & 0xffff;
        if (pending > inFlight) {
            throw new GuestRingException("used idx " + end + " is " + pending + " entries past the driver's "
                    + lastUsed + " but only " + inFlight + " chains are in flight");
        }
        int n = 0;
        while (lastUsed != end) {
            long off = usedElemOffset(size, lastUsed);
            int id = used.get(LE32, off + USED_ELEM_ID);
            int len = used.get(LE32, off + USED_ELEM_LEN);
            if (id < 0 || id >= size || tokenOfHead[id] < 0) {
                throw new GuestRingException("used ring entry " + lastUsed + " names descriptor " + id
                        + ", which is not the head of an in-flight chain");
            }
            int token = tokenOfHead[id];
            tokenOfHead[id] = -1;
            freeChain(id, chainLen[id]);
            inFlight--;
            lastUsed = (lastUsed + 1) & 0xffff;
            usedReaped++;
            n++;
            consumer.used(token, len);
        }
        if (interruptsOff && eventIdx) {
            // Keep used_event trailing so the device keeps seeing "no interrupt wanted".
            avail.set(LE16, usedEventOff, (short) (lastUsed - 1));
        }
        return n;
    }

    /**
     * Asks for an interrupt at the next used entry and tells whether the ring is still empty
     * afterwards (Linux virtqueue_enable_cb_prepare + virtqueue_poll). With EVENT_IDX:
     * used_event = last used idx (2.7.10: the device notifies when it writes the entry at
     * used_event); without it: clear VIRTQ_AVAIL_F_NO_INTERRUPT. Returns false when entries
     * arrived meanwhile: reap again instead of sleeping.
     */
    public boolean enableInterrupts() {
        interruptsOff = false;
        if (eventIdx) {
            avail.set(LE16, usedEventOff, (short) lastUsed);
        } else {
            avail.set(LE16, AVAIL_FLAGS, (short) 0);
        }
        // Full fence: the used_event (flags) store must be visible before we re-read used->idx;
        // otherwise the device could write an entry, read the old used_event, skip the
        // interrupt, and we would sleep on a non-empty ring. Pairs with the device's fence between
        // its used->idx store and its read of used_event (2.7.10).
        VarHandle.fullFence();
        return !hasUsed();
    }

    /**
     * Tells the device that no interrupts are wanted (a guest that polls the used ring). 2.7.10:
     * with EVENT_IDX the flags must stay 0 and used_event is parked one behind the last used idx
     * (the device would notify only after 2^16 more entries); without it, set NO_INTERRUPT.
     */
    public void disableInterrupts() {
        interruptsOff = true;
        if (eventIdx) {
            avail.set(LE16, usedEventOff, (short) (lastUsed - 1));
        } else {
            avail.set(LE16, AVAIL_FLAGS, VIRTQ_AVAIL_F_NO_INTERRUPT);
        }
    }

    /** Writes used_event directly (tests of EVENT_IDX suppression). */
    public void setUsedEvent(int idx) {
        avail.set(LE16, usedEventOff, (short) idx);
    }

    /** The device's avail_event (2.7.10), as last written. */
    public int availEvent() {
        return Short.toUnsignedInt(used.get(LE16, availEventOff));
    }

    public int usedFlags() {
        return Short.toUnsignedInt(used.get(LE16, USED_FLAGS));
    }

    // ---------------------------------------------------------------- crafted input for tests

    /*
     * What a well-behaved driver never writes, for the conformance tests of the device's queue:
     * loops, addresses outside guest memory, over-long chains, indirect tables with bad flags,
     * indexes out of range, an avail index that jumps. None of these touch the driver's
     * bookkeeping (free list, tokens): a test that forges owns the ring's contents.
     */

    /**
     * Writes descriptor {@code index} of the queue's table exactly as given (any flags, any next);
     * {@code len} goes in as its low 32 bits, as the le32 field holds it.
     */
    public void forgeDescriptor(int index, long addr, long len, int flags, int nextIndex) {
        writeDesc(desc, descOffset(index), addr, (int) len, (short) flags, (short) nextIndex);
    }

    /**
     * Writes entry {@code index} of an indirect table at guest-physical {@code tableGpa} exactly
     * as given (2.7.5.3: inside a table, {@code next} indexes the table).
     */
    public void forgeIndirect(long tableGpa, int index, long addr, long len, int flags, int nextIndex) {
        writeDesc(ram.segment(tableGpa + descOffset(index), DESC_BYTES), 0, addr, (int) len, (short) flags,
                (short) nextIndex);
    }

    /** Puts {@code head} (any value) in the next slot of the available ring without publishing it. */
    public void forgeAvailEntry(int head) {
        putAvail(head);
    }

    /** {@link #forgeAvailEntry} and {@link #publish()}: the device may take {@code head} at once. */
    public void forgeAvail(int head) {
        forgeAvailEntry(head);
        publish();
    }

    /**
     * Sets the available index to {@code idx} and publishes it, whatever the ring holds: an index
     * that jumps more than the queue size, or moves back (2.7.6.1 forbids both), or a resume point.
     */
    public void forgeAvailIdx(int idx) {
        availShadow = idx & 0xffff;
        publish();
    }

    /** Writes the available ring's flags (VIRTQ_AVAIL_F_NO_INTERRUPT = 1), whatever was negotiated. */
    public void setAvailFlags(int flags) {
        avail.set(LE16, AVAIL_FLAGS, (short) flags);
    }

    /** The head in available ring entry {@code n} (taken modulo the size): what a chain was posted as. */
    public int availEntry(int n) {
        return Short.toUnsignedInt(avail.get(LE16, availRingOffset(size, n)));
    }

    /** The descriptor id of used ring entry {@code n} (taken modulo the size), as the device wrote it. */
    public int usedElemId(int n) {
        return used.get(LE32, usedElemOffset(size, n) + USED_ELEM_ID);
    }

    /** The length of used ring entry {@code n} (taken modulo the size), as the device wrote it. */
    public int usedElemLen(int n) {
        return used.get(LE32, usedElemOffset(size, n) + USED_ELEM_LEN);
    }

    // ---------------------------------------------------------------- internals

    /** 2.7.13.2: places {@code head} in ring[idx % size]; idx itself is written by {@link #publish()}. */
    private void putAvail(int head) {
        avail.set(LE16, availRingOffset(size, availShadow), (short) head);
        availShadow = (availShadow + 1) & 0xffff;
        numAdded++;
    }

    private void freeChain(int head, int len) {
        int tail = head;
        for (int i = 1; i < len; i++) {
            tail = next[tail];
        }
        next[tail] = freeHead;
        freeHead = head;
        numFree += len;
    }

    private void checkNotBuilding() {
        if (building) {
            throw new IllegalStateException("a chain is already under construction");
        }
    }

    private static void writeDesc(MemorySegment seg, long off, long addr, int len, short flags, short nextIdx) {
        seg.set(LE64, off + DESC_ADDR, addr);
        seg.set(LE32, off + DESC_LEN, len);
        seg.set(LE16, off + DESC_FLAGS, flags);
        seg.set(LE16, off + DESC_NEXT, nextIdx);
    }

    private static void linkPrev(MemorySegment seg, long prevOff, int nextIdx) {
        short f = seg.get(LE16, prevOff + DESC_FLAGS);
        seg.set(LE16, prevOff + DESC_FLAGS, (short) (f | VIRTQ_DESC_F_NEXT));
        seg.set(LE16, prevOff + DESC_NEXT, (short) nextIdx);
    }

    @Override
    public String toString() {
        return "GuestVring[size=" + size + " avail=" + availShadow + " lastUsed=" + lastUsed + " used=" + usedIdx()
                + " inFlight=" + inFlight + " free=" + numFree + " eventIdx=" + eventIdx + "]";
    }
}
