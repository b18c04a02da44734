package io.vblk.guest;

import io.vblk.virtio.queue.QueueLayout;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;

/**
 * Home thread: the guest vCPU thread that drives this queue (set-up runs before that thread
 * starts, which publishes it). No locking. Nothing here allocates after construction.
 *
 * <p>The driver side of one packed virtqueue (virtio 1.2 section 2.8), written from the spec
 * independently of the device's {@code PackedQueue}: descriptors go into the ring in order with the
 * driver wrap counter in their AVAIL/USED bits; a chain's head flags are stored last, at
 * {@link #publish()}; used descriptors are read in order and the driver skips forward by the
 * returned buffer's descriptor count (2.8.6). Buffer ids come from a free list below the queue
 * size; the descriptor count and token of each id live in Java arrays, as a real driver keeps them.
 *
 * <pre>
 * ring: size x { le64 addr; le32 len; le16 id; le16 flags }   16-byte aligned
 *   flags: NEXT 1, WRITE 2, INDIRECT 4, AVAIL 1&lt;&lt;7, USED 1&lt;&lt;15
 * driver event suppression (written here), device event suppression (read here), 4-byte aligned:
 *   { le16 off_wrap (offset | wrap &lt;&lt; 15); le16 flags (0 ENABLE, 1 DISABLE, 2 DESC) }
 * </pre>
 */
public final class GuestPackedVring implements GuestRing {
    static final ValueLayout.OfShort LE16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfInt LE32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfLong LE64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    public static final int DESC_BYTES = 16;
    static final int D_ADDR = 0;
    static final int D_LEN = 8;
    static final int D_ID = 12;
    static final int D_FLAGS = 14;
    public static final int F_NEXT = 1;
    public static final int F_WRITE = 2;
    public static final int F_INDIRECT = 4;
    public static final int F_AVAIL = 1 << 7;
    public static final int F_USED = 1 << 15;
    static final int E_OFF_WRAP = 0;
    static final int E_FLAGS = 2;
    public static final int EVENT_ENABLE = 0;
    public static final int EVENT_DISABLE = 1;
    public static final int EVENT_DESC = 2;
    static final int WRAP = 1 << 15;

    private final int size;
    private final long ringGpa;
    private final long driverEventGpa;
    private final long deviceEventGpa;
    private final MemorySegment ring;
    private final MemorySegment driverEvent;
    private final MemorySegment deviceEvent;

    private final int[] freeIds;
    private int freeIdCount;
    private final int[] descsOfId;
    private final int[] tokenOfId;
    /** Committed heads not yet published: slot and the flags that make each available. */
    private final int[] pendingSlot;
    private final short[] pendingFlags;
    private int pendingCount;
    private int numFree;
    private int inFlight;
    private boolean eventIdx;

    // Driver cursors: next slot to fill (driver wrap counter), next slot to read used (its wrap).
    private int nextAvail;
    private boolean availWrap;
    private int lastUsed;
    private boolean usedWrap;
    /** Descriptors made available since reset (free-running), and the count at the last kick decision. */
    private long availCount;
    private long availCountAtKick;

    // The chain under construction.
    private boolean building;
    private boolean chainIndirect;
    private int chainId;
    private int chainStart;
    private boolean chainStartWrap;
    private int chainCount;
    private int headFlags;
    private int prevSlot;
    private long tableGpa;
    private MemorySegment table;
    private int tableCapacity;

    private GuestPackedVring(int size, long ringGpa, long drv, long dev, MemorySegment ring, MemorySegment drvSeg,
                             MemorySegment devSeg) {
        this.size = size;
        this.ringGpa = ringGpa;
        this.driverEventGpa = drv;
        this.deviceEventGpa = dev;
        this.ring = ring;
        this.driverEvent = drvSeg;
        this.deviceEvent = devSeg;
        this.freeIds = new int[size];
        this.descsOfId = new int[size];
        this.tokenOfId = new int[size];
        this.pendingSlot = new int[size];
        this.pendingFlags = new short[size];
        reset();
    }

    /**
     * Lays out a packed ring of {@code size} entries (2.8: up to 2^15, not necessarily a power of
     * two) with 2.8.10.1's alignments: ring 16, both event suppression structures 4.
     */
    public static GuestPackedVring allocate(GuestRam ram, int size) {
        if (size < 1 || size > 32768) {
            throw new IllegalArgumentException("packed queue size must be 1..32768, got " + size);
        }
        long r = ram.allocate((long) size * DESC_BYTES, 16);
        long drv = ram.allocate(4, 4);
        long dev = ram.allocate(4, 4);
        return new GuestPackedVring(size, r, drv, dev, ram.segment(r, (long) size * DESC_BYTES), ram.segment(drv, 4),
                ram.segment(dev, 4));
    }

    /** A fresh ring: every descriptor zero (neither available nor used), wrap counters 1 (2.8.1). */
    @Override
    public void reset() {
        ring.fill((byte) 0);
        driverEvent.fill((byte) 0);
        deviceEvent.fill((byte) 0);
        for (int i = 0; i < size; i++) {
            freeIds[i] = size - 1 - i;
            descsOfId[i] = 0;
            tokenOfId[i] = -1;
        }
        freeIdCount = size;
        numFree = size;
        inFlight = 0;
        pendingCount = 0;
        nextAvail = 0;
        availWrap = true;
        lastUsed = 0;
        usedWrap = true;
        availCount = 0;
        availCountAtKick = 0;
        building = false;
    }

    @Override
    public void setEventIdx(boolean on) {
        eventIdx = on;
    }

    /** Both halves of the resume point are slot 0 with wrap counter 1 (vhost-user.rst, packed). */
    @Override
    public QueueLayout layout() {
        return new QueueLayout(size, ringGpa, driverEventGpa, deviceEventGpa, WRAP | WRAP << 16);
    }

    @Override
    public int size() {
        return size;
    }

    @Override
    public boolean packed() {
        return true;
    }

    @Override
    public int inFlight() {
        return inFlight;
    }

    @Override
    public int freeDescriptors() {
        return numFree;
    }

    /** The next slot the driver fills, with its wrap counter in bit 15. */
    public int availState() {
        return nextAvail | (availWrap ? WRAP : 0);
    }

    /** The next slot the driver reads a used descriptor from, with its wrap counter in bit 15. */
    public int usedState() {
        return lastUsed | (usedWrap ? WRAP : 0);
    }

    // ---------------------------------------------------------------- building chains

    @Override
    public void beginChain() {
        begin(false);
    }

    @Override
    public void beginIndirectChain(long tableGpa, MemorySegment table, int capacity) {
        begin(true);
        this.tableGpa = tableGpa;
        this.table = table;
        this.tableCapacity = capacity;
    }

    private void begin(boolean indirect) {
        if (building) {
            throw new IllegalStateException("a chain is already under construction");
        }
        if (freeIdCount == 0) {
            throw new IllegalStateException("no free buffer id (queue size " + size + ", " + inFlight + " in flight)");
        }
        building = true;
        chainIndirect = indirect;
        chainId = freeIds[--freeIdCount];
        chainStart = nextAvail;
        chainStartWrap = availWrap;
        chainCount = 0;
        prevSlot = -1;
    }

    /**
     * Appends a buffer. A direct chain's descriptors go straight into the ring after the ones
     * before (wrapping at the end, 2.8.6); the head's flags are held back until {@link #publish()}.
     * Inside an indirect table only WRITE is set (2.8.7).
     */
    @Override
    public void addBuffer(long gpa, int len, boolean deviceWritable) {
        if (!building) {
            throw new IllegalStateException("addBuffer outside a chain");
        }
        int w = deviceWritable ? F_WRITE : 0;
        if (chainIndirect) {
            if (chainCount == tableCapacity) {
                throw new IllegalStateException("indirect table full at " + tableCapacity + " descriptors");
            }
            writeDesc(table, (long) chainCount * DESC_BYTES, gpa, len, 0, w);
            chainCount++;
            return;
        }
        if (chainCount == numFree) {
            throw new IllegalStateException("no free descriptor (queue size " + size + ", " + inFlight
                    + " chains in flight)");
        }
        int slot = (chainStart + chainCount) % size;
        boolean wrap = chainStartWrap ^ (chainStart + chainCount >= size);
        int flags = w | availBits(wrap);
        if (prevSlot >= 0) {
            setNext(prevSlot);
        }
        // The head waits for publish() with bits that read as neither available nor used in any
        // lap (AVAIL != wrap, USED == wrap); zero flags would read as "used" on a wrap-0 lap.
        writeDesc(ring, (long) slot * DESC_BYTES, gpa, len, chainId, chainCount == 0 ? heldBits(wrap) : flags);
        if (chainCount == 0) {
            headFlags = flags;
        }
        prevSlot = slot;
        chainCount++;
    }

    @Override
    public int commitChain(int token) {
        if (!building || chainCount == 0) {
            throw new IllegalStateException("commit of an empty chain");
        }
        if (token < 0) {
            throw new IllegalArgumentException("token must be >= 0");
        }
        int ringDescs;
        if (chainIndirect) {
            if (numFree == 0) {
                throw new IllegalStateException("no free descriptor for an indirect chain");
            }
            // 2.8.7: one ring descriptor names the table; len is the table's byte length.
            writeDesc(ring, (long) chainStart * DESC_BYTES, tableGpa, chainCount * DESC_BYTES, chainId,
                    heldBits(chainStartWrap));
            headFlags = F_INDIRECT | availBits(chainStartWrap);
            ringDescs = 1;
        } else {
            ringDescs = chainCount;
        }
        building = false;
        pendingSlot[pendingCount] = chainStart;
        pendingFlags[pendingCount] = (short) headFlags;
        pendingCount++;
        descsOfId[chainId] = ringDescs;
        tokenOfId[chainId] = token;
        numFree -= ringDescs;
        advanceAvail(ringDescs);
        inFlight++;
        return chainId;
    }

    @Override
    public void abortChain() {
        if (!building) {
            return;
        }
        building = false;
        freeIds[freeIdCount++] = chainId;
    }

    // ---------------------------------------------------------------- publishing and kicking

    /**
     * Stores the head flags of every committed chain, in ring order, after one release fence: each
     * chain's other descriptors (and the request buffers) are visible before its head turns
     * available. Pairs with the device's acquire after it reads a head's flags (2.8.6).
     */
    @Override
    public void publish() {
        if (pendingCount == 0) {
            return;
        }
        VarHandle.releaseFence();
        for (int i = 0; i < pendingCount; i++) {
            ring.set(LE16, (long) pendingSlot[i] * DESC_BYTES + D_FLAGS, pendingFlags[i]);
        }
        pendingCount = 0;
    }

    /**
     * 2.8.10: the device's event suppression structure decides. Full fence first: the flags stored
     * by {@link #publish()} must be visible before the structure is read (Linux
     * virtqueue_kick_prepare_packed's virtio_mb). Pairs with the device's full fence between
     * writing its structure and re-reading the ring.
     */
    @Override
    public boolean kickNeeded() {
        long old = availCountAtKick;
        long now = availCount;
        availCountAtKick = now;
        if (old == now) {
            return false;
        }
        VarHandle.fullFence();
        int flags = Short.toUnsignedInt(deviceEvent.get(LE16, E_FLAGS)) & 3;
        if (flags == EVENT_DISABLE) {
            return false;
        }
        if (flags != EVENT_DESC || !eventIdx) {
            return true;
        }
        VarHandle.loadLoadFence(); // flags, then off_wrap: pairs with PackedQueue.enableNotification's store-store fence
        int offWrap = Short.toUnsignedInt(deviceEvent.get(LE16, E_OFF_WRAP));
        return crossed(offWrap, old, now, nextAvail, availWrap);
    }

    // ---------------------------------------------------------------- used descriptors

    /** The next used descriptor is there (flags read with acquire: its id and len after). */
    @Override
    public boolean hasUsed() {
        int f = Short.toUnsignedInt(ring.get(LE16, (long) lastUsed * DESC_BYTES + D_FLAGS));
        VarHandle.acquireFence();
        return isUsed(f, usedWrap);
    }

    /**
     * Reads used descriptors in ring order until one is not used. A used descriptor naming an id
     * that is not in flight is a device bug: {@link GuestRingException}.
     */
    @Override
    public int reap(GuestRing.UsedConsumer consumer) {
        int n = 0;
        while (hasUsed()) {
            long off = (long) lastUsed * DESC_BYTES;
            int id = Short.toUnsignedInt(ring.get(LE16, off + D_ID));
            int len = ring.get(LE32, off + D_LEN);
            if (id >= size || tokenOfId[id] < 0) {
                throw new GuestRingException("used descriptor at slot " + lastUsed + " names buffer id " + id
                        + ", which is not in flight");
            }
            int token = tokenOfId[id];
            int descs = descsOfId[id];
            tokenOfId[id] = -1;
            descsOfId[id] = 0;
            freeIds[freeIdCount++] = id;
            numFree += descs;
            inFlight--;
            // 2.8.6: skip forward by the buffer's descriptor count.
            lastUsed += descs;
            if (lastUsed >= size) {
                lastUsed -= size;
                usedWrap = !usedWrap;
            }
            n++;
            consumer.used(token, len);
        }
        return n;
    }

    /**
     * 2.8.10: with EVENT_IDX, a notification when the next used descriptor is written (off_wrap =
     * the slot read next and its wrap counter, flags DESC); otherwise ENABLE. Then a full fence and
     * a second look: pairs with the device's full fence between storing used flags and reading
     * this structure. Returns false when used descriptors arrived meanwhile.
     */
    @Override
    public boolean enableInterrupts() {
        if (eventIdx) {
            driverEvent.set(LE16, E_OFF_WRAP, (short) usedState());
            VarHandle.storeStoreFence(); // off_wrap before flags: pairs with PackedQueue.needsNotify's load-load fence
            driverEvent.set(LE16, E_FLAGS, (short) EVENT_DESC);
        } else {
            driverEvent.set(LE16, E_FLAGS, (short) EVENT_ENABLE);
        }
        VarHandle.fullFence();
        return !hasUsed();
    }

    @Override
    public void disableInterrupts() {
        driverEvent.set(LE16, E_FLAGS, (short) EVENT_DISABLE);
    }

    /** Writes the driver event suppression structure as given (tests of 2.8.10). */
    public void setDriverEvent(int offWrap, int flags) {
        driverEvent.set(LE16, E_OFF_WRAP, (short) offWrap);
        driverEvent.set(LE16, E_FLAGS, (short) flags);
    }

    /** The device event suppression structure: off_wrap in the low 16 bits, flags in the high 16. */
    public int deviceEvent() {
        return Short.toUnsignedInt(deviceEvent.get(LE16, E_OFF_WRAP))
                | Short.toUnsignedInt(deviceEvent.get(LE16, E_FLAGS)) << 16;
    }

    // ---------------------------------------------------------------- crafted input for tests

    /** Writes ring slot {@code slot} exactly as given, flags included: the device may take it at once. */
    public void forgeDescriptor(int slot, long addr, int len, int id, int flags) {
        VarHandle.releaseFence();
        writeDesc(ring, (long) slot * DESC_BYTES, addr, len, id, flags);
    }

    /** The AVAIL/USED bits that make a descriptor available under driver wrap counter {@code wrap}. */
    public static int availBits(boolean wrap) {
        return wrap ? F_AVAIL : F_USED;
    }

    /** Flags of ring slot {@code slot} as they are now. */
    public int flagsAt(int slot) {
        return Short.toUnsignedInt(ring.get(LE16, (long) slot * DESC_BYTES + D_FLAGS));
    }

    public int idAt(int slot) {
        return Short.toUnsignedInt(ring.get(LE16, (long) slot * DESC_BYTES + D_ID));
    }

    public int lenAt(int slot) {
        return ring.get(LE32, (long) slot * DESC_BYTES + D_LEN);
    }

    // ---------------------------------------------------------------- internals

    /** AVAIL/USED bits of a descriptor written but not yet made available in a lap of wrap {@code wrap}. */
    private static int heldBits(boolean wrap) {
        return wrap ? F_USED : F_AVAIL;
    }

    private static boolean isUsed(int flags, boolean wrap) {
        return ((flags & F_AVAIL) != 0) == wrap && ((flags & F_USED) != 0) == wrap;
    }

    private void advanceAvail(int n) {
        nextAvail += n;
        if (nextAvail >= size) {
            nextAvail -= size;
            availWrap = !availWrap; // 2.8.1: flips after the last descriptor in the ring
        }
        availCount += n;
    }

    private void setNext(int slot) {
        long o = (long) slot * DESC_BYTES + D_FLAGS;
        if (slot == chainStart) {
            headFlags |= F_NEXT;
        } else {
            ring.set(LE16, o, (short) (ring.get(LE16, o) | F_NEXT));
        }
    }

    /**
     * Whether the event ({@code offWrap}) lies among the free-running positions {@code [old, now)};
     * {@code nowIdx}/{@code nowWrap} is the slot and wrap counter at {@code now}. The event is
     * placed at the position nearest {@code now} within one ring length either way.
     */
    static boolean crossed(int offWrap, long old, long now, int nowIdx, boolean nowWrap, int size) {
        long cycle = 2L * size;
        long ev = (offWrap & (WRAP - 1)) + ((offWrap & WRAP) != 0 ? 0 : size);
        long cur = nowIdx + (nowWrap ? 0 : size);
        long d = Math.floorMod(ev - cur, cycle);
        if (d > size) {
            d -= cycle;
        }
        long event = now + d;
        return event >= old && event < now;
    }

    private boolean crossed(int offWrap, long old, long now, int nowIdx, boolean nowWrap) {
        return crossed(offWrap, old, now, nowIdx, nowWrap, size);
    }

    private static void writeDesc(MemorySegment seg, long off, long addr, int len, int id, int flags) {
        seg.set(LE64, off + D_ADDR, addr);
        seg.set(LE32, off + D_LEN, len);
        seg.set(LE16, off + D_ID, (short) id);
        seg.set(LE16, off + D_FLAGS, (short) flags);
    }

    @Override
    public String toString() {
        return "GuestPackedVring[size=" + size + " avail=" + nextAvail + (availWrap ? "w1" : "w0") + " lastUsed="
                + lastUsed + (usedWrap ? "w1" : "w0") + " inFlight=" + inFlight + " free=" + numFree + " eventIdx="
                + eventIdx + "]";
    }
}
