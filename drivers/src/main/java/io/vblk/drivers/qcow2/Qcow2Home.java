package io.vblk.drivers.qcow2;

import io.vblk.aio.AioContext;
import io.vblk.aio.Bh;
import io.vblk.aio.DeferCall;
import io.vblk.drivers.BlockChannel;
import io.vblk.drivers.BlockIo;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * Home thread: the owning IoThread of {@link #ctx}. No locking.
 *
 * <p>What serving one qcow2 image on one context needs, shared by every {@link Qcow2Channel} opened
 * there: the child's (and backing's) channel on that context, the L2 and refcount-block caches, the
 * pool of {@link Qcow2Req}s, the copy-on-write buffer, and the one metadata turn. Metadata changes
 * (allocating a cluster, zeroing or discarding one) take the turn, so they run one at a time and
 * their writes reach the child in the crash-safe order (see {@link Qcow2Driver}); reads and writes
 * to allocated clusters do not take it and run in parallel. There is no lock: every user lives on
 * this one thread, and a request that must wait is queued and resumed from a bottom half.
 */
final class Qcow2Home {
    static final ValueLayout.OfLong U64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.BIG_ENDIAN);
    static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.BIG_ENDIAN);
    static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.BIG_ENDIAN);
    /** L2 tables cached: 64 tables map 32 GiB of a 64 KiB-cluster image (QEMU's default maps 32 GiB too). */
    static final int L2_CACHE_TABLES = 64;
    static final int REFBLOCK_CACHE_TABLES = 8;
    /** Metadata writes cover the 512-byte sector holding the changed entry. */
    static final int META_CHUNK = 512;
    /** The image file grows in steps of this much past what an allocation needs (one ftruncate per step). */
    static final long GROW_STEP = 8L << 20;

    final Qcow2Driver d;
    final AioContext ctx;
    final BlockChannel child;
    final BlockChannel backing;
    final long backingLength;
    final Arena arena = Arena.ofShared();
    final TableCache l2;
    final TableCache refblocks;
    /** Cluster-sized buffer for the old contents of a cluster being copied on write (metadata turn holder only). */
    final MemorySegment cow;
    int channels;
    private Qcow2Req free;
    private Qcow2Req turnOwner;
    private Qcow2Req turnHead;
    private Qcow2Req turnTail;
    private Qcow2Req granted;
    private final Bh grantBh;
    private long allocations;
    private long cowCopies;

    Qcow2Home(Qcow2Driver d, AioContext ctx) {
        this.d = d;
        this.ctx = ctx;
        this.child = d.file.openChannel(ctx);
        this.backing = d.backing == null ? null : d.backing.openChannel(ctx);
        this.backingLength = d.backing == null ? 0 : d.backing.length();
        this.l2 = new TableCache("L2 table", this, arena, L2_CACHE_TABLES, d.clusterSize);
        this.refblocks = new TableCache("refcount block", this, arena, REFBLOCK_CACHE_TABLES, d.clusterSize);
        this.cow = arena.allocate(d.clusterSize, 4096);
        this.grantBh = ctx.bh("qcow2-turn", this::grant);
    }

    Qcow2Req take(Qcow2Channel ch, BlockIo outer) {
        Qcow2Req r = free;
        if (r == null) {
            r = new Qcow2Req(this, arena); // only while the pool grows to the queue depth
        } else {
            free = r.nextFree;
            r.nextFree = null;
        }
        r.begin(ch, outer);
        return r;
    }

    void recycle(Qcow2Req r) {
        r.nextFree = free;
        free = r;
    }

    /** Resumes a request that waited for a table (called from a completion: no recursion into its submit). */
    void resume(Qcow2Req r) {
        r.run();
    }

    // ---------------------------------------------------------------- the metadata turn

    /** True when {@code r} now holds the turn; otherwise it is queued and resumed when its turn comes. */
    boolean acquire(Qcow2Req r) {
        if (turnOwner == null) {
            turnOwner = r;
            return true;
        }
        r.nextTurn = null;
        if (turnTail == null) {
            turnHead = r;
        } else {
            turnTail.nextTurn = r;
        }
        turnTail = r;
        return false;
    }

    /** {@code r} gives the turn back; the next queued request gets it from a bottom half (bounded stack). */
    void release(Qcow2Req r) {
        if (turnOwner != r) {
            throw new IllegalStateException("qcow2: metadata turn released by a request that does not hold it");
        }
        Qcow2Req next = turnHead;
        if (next == null) {
            turnOwner = null;
            return;
        }
        turnHead = next.nextTurn;
        if (turnHead == null) {
            turnTail = null;
        }
        next.nextTurn = null;
        turnOwner = next;
        granted = next;
        grantBh.schedule();
    }

    private void grant() {
        Qcow2Req r = granted;
        granted = null;
        if (r != null) {
            // A bottom half runs outside any defer-call section: without one, what the request submits
            // would wait in the engine for the next section to end, and with the guest idle that never
            // comes (a lost request). The section's end submits it.
            DeferCall dc = ctx.deferCall();
            dc.begin();
            try {
                r.holdsTurn = true;
                r.run();
            } finally {
                dc.end();
            }
        }
    }

    // ---------------------------------------------------------------- refcounts

    long refcount(MemorySegment block, long index) {
        return switch (d.header.refcountOrder()) {
            case 3 -> Byte.toUnsignedLong(block.get(ValueLayout.JAVA_BYTE, index));
            case 4 -> Short.toUnsignedLong(block.get(U16, index * 2));
            case 5 -> Integer.toUnsignedLong(block.get(U32, index * 4));
            default -> block.get(U64, index * 8);
        };
    }

    void setRefcount(MemorySegment block, long index, long value) {
        switch (d.header.refcountOrder()) {
            case 3 -> block.set(ValueLayout.JAVA_BYTE, index, (byte) value);
            case 4 -> block.set(U16, index * 2, (short) value);
            case 5 -> block.set(U32, index * 4, (int) value);
            default -> block.set(U64, index * 8, value);
        }
    }

    /** Byte offset, inside its block, of refcount entry {@code index}. */
    long refcountByte(long index) {
        return (index << d.header.refcountOrder()) >>> 3;
    }

    long maxRefcount() {
        int bits = d.header.refcountBits();
        return bits == 64 ? Long.MAX_VALUE : (1L << bits) - 1;
    }

    /**
     * Makes the image file at least {@code end} bytes long, growing it by {@link #GROW_STEP} at a
     * time: one ftruncate per step, not per allocation (a write past the end is refused by the child,
     * unlike QEMU's file-posix which extends the file by writing). False if the file cannot grow.
     */
    boolean growFile(long end) {
        long len = d.file.length();
        if (end <= len) {
            return true;
        }
        long target = (end + GROW_STEP - 1) / GROW_STEP * GROW_STEP;
        try {
            return d.file.resize(target) >= end;
        } catch (RuntimeException e) {
            System.getLogger(Qcow2Home.class.getName()).log(System.Logger.Level.ERROR,
                    "qcow2: cannot grow the image file to " + target + " bytes: " + e.getMessage());
            return false;
        }
    }

    void countAllocation() {
        allocations++;
    }

    void countCow() {
        cowCopies++;
    }

    long allocations() {
        return allocations;
    }

    long cowCopies() {
        return cowCopies;
    }

    /** Last channel closed: nothing is in flight (every request is counted by its channel until done). */
    void close() {
        grantBh.delete();
        child.close();
        if (backing != null) {
            backing.close();
        }
        arena.close();
    }
}
