package io.vblk.drivers.qcow2;

import io.vblk.aio.sys.Errno;
import io.vblk.drivers.BlockChannel;
import io.vblk.drivers.BlockIo;
import io.vblk.drivers.IoCompletion;
import io.vblk.drivers.IoVec;
import io.vblk.drivers.NativeMemory;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

import static io.vblk.drivers.qcow2.Qcow2Driver.OFFSET_MASK;
import static io.vblk.drivers.qcow2.Qcow2Driver.OFLAG_COMPRESSED;
import static io.vblk.drivers.qcow2.Qcow2Driver.OFLAG_COPIED;
import static io.vblk.drivers.qcow2.Qcow2Home.META_CHUNK;
import static io.vblk.drivers.qcow2.Qcow2Home.U64;

/**
 * Home thread: the owning IoThread of its {@link Qcow2Home}. No locking.
 *
 * <p>One guest request on a qcow2 image, walked one guest cluster (or one run of host-contiguous
 * clusters) at a time as a state machine: each state either moves on at once or starts one child
 * request, a table load or a wait for the metadata turn and returns; the completion re-enters
 * {@link #run}. A child request that completes inside its submit is noticed and the loop goes on
 * without recursing (seed 000's cycle, bounded here by construction). Pooled: nothing is allocated
 * per request.
 *
 * <p>An allocating write, in order (see {@link Qcow2Driver} for why): take the metadata turn;
 * if the L2 table is missing, allocate its cluster (refcount written), write it zeroed, point the
 * L1 entry at it; allocate the data cluster (refcount written; a new refcount block first when
 * none covers it, written before the refcount table points at it); read what the write does not
 * cover from the old cluster, the backing image or zeroes; write the whole cluster; point the L2
 * entry at it; lower the old cluster's refcount if there was one.
 */
final class Qcow2Req implements IoCompletion {
    static final int RUN = 0;
    private static final int ADVANCE = 1;
    private static final int BACKING_DONE = 2;
    static final int ALLOC = 3;
    static final int REFBLOCK_WRITTEN = 4;
    private static final int REFTABLE_WRITTEN = 5;
    static final int REFCOUNT_WRITTEN = 6;
    private static final int L2NEW_GOT = 7;
    private static final int L2NEW_WRITTEN = 8;
    private static final int L1_WRITTEN = 9;
    private static final int DATA_GOT = 10;
    private static final int COW_READ_DONE = 11;
    private static final int DATA_WRITTEN = 12;
    private static final int SET_L2 = 13;
    private static final int L2_WRITTEN = 14;
    private static final int DECREF = 15;
    static final int DECREF_WRITTEN = 16;
    private static final int FLUSH_DONE = 17;
    static final int FLUSH_START = 18;
    static final int GROW_RB_WRITTEN = 19;
    static final int GROW_TABLE_WRITTEN = 20;
    static final int GROW_HEADER_WRITTEN = 21;
    static final int GROW_FREE = 22;
    /** IOV_MAX (Linux UIO_MAXIOV). */
    private static final int IoVec_MAX = 1024;

    private static final System.Logger LOG = System.getLogger(Qcow2Req.class.getName());

    final Qcow2Home h;
    final Qcow2Driver d;
    final BlockIo sub;
    private Qcow2Channel ch;
    private BlockIo outer;
    private int op;
    long pos;
    private long end;
    int state;
    private boolean waiting;
    private boolean inSubmit;
    long subResult;
    private boolean running;
    private boolean again;
    boolean holdsTurn;
    Qcow2Req nextWait;
    Qcow2Req nextTurn;
    Qcow2Req nextFree;
    // the piece under way
    long pieceLen;
    private long backingPart;
    private int l1i;
    private long l2Off;
    private int l2i;
    long oldEntry;
    private long newEntry;
    private int inCluster;
    long allocated;
    int allocNext;
    long newRefblock;
    long newRefblockIndex;
    private long newHost;
    /** Refcount table growth under way: the new table, the old one's place and size, the next old cluster to free. */
    MemorySegment growTable;
    long growOldOffset;
    int growOldClusters;
    int growFreed;
    /** The L2 table at {@link #l2Off} is pinned by this request. */
    private boolean pinned;

    Qcow2Req(Qcow2Home h, Arena arena) {
        this.h = h;
        this.d = h.d;
        this.sub = new BlockIo(arena, IoVec_MAX); // IOV_MAX: a guest iovec plus the COW head and tail
    }

    void begin(Qcow2Channel ch, BlockIo outer) {
        this.ch = ch;
        this.outer = outer;
        this.op = outer.op;
        this.pos = outer.offset;
        this.end = outer.offset + outer.byteLength();
        this.state = RUN;
        this.holdsTurn = false;
        this.waiting = false;
        if (op == BlockIo.FLUSH) {
            state = FLUSH_START; // every write completed before it has its metadata written: flush the child
            run();
            return;
        }
        if (op != BlockIo.READ && d.broken) {
            LOG.log(System.Logger.Level.ERROR, "qcow2: refusing " + BlockIo.opName(op)
                    + ": an earlier metadata write failed, the image must be checked (qemu-img check)");
            finish(-Errno.EIO);
            return;
        }
        run();
    }

    @Override
    public void ioCompleted(BlockIo io, long result) {
        subResult = result;
        waiting = false;
        if (!inSubmit) {
            run();
        }
    }

    /** Starts {@link #sub} on {@code target}; true when it already completed (the loop goes on). */
    boolean submitTo(BlockChannel target) {
        waiting = true;
        inSubmit = true;
        target.submit(sub);
        inSubmit = false;
        return !waiting;
    }

    /** Runs states until one waits. Re-entry (a completion inside a submit) only asks for another round. */
    void run() {
        if (running) {
            again = true;
            return;
        }
        running = true;
        try {
            boolean go = true;
            while (go) {
                again = false;
                go = step() || again;
            }
        } finally {
            running = false;
        }
    }

    private void pinL2() {
        h.l2.pin(l2Off);
        pinned = true;
    }

    private void unpinL2() {
        if (pinned) {
            pinned = false;
            h.l2.unpin(l2Off);
        }
    }

    /** The request's one end: gives back the turn and the pin, recycles, completes. Also for a table that could not be read. */
    void finish(long result) {
        unpinL2();
        if (holdsTurn) {
            holdsTurn = false;
            h.release(this);
        }
        BlockIo o = outer;
        Qcow2Channel c = ch;
        outer = null;
        ch = null;
        state = -1;
        h.recycle(this);
        long r = result < 0 ? result : (op == BlockIo.READ || op == BlockIo.WRITE ? o.iov.totalLength() : 0);
        c.done(o, r);
    }

    /** A child request's result; false (request failed) for an error, marking the image broken for metadata. */
    /** A metadata write's result: false (the request failed, the image marked broken) on error. */
    boolean metaOk() {
        return ok(true);
    }

    private boolean ok(boolean metadata) {
        if (subResult >= 0) {
            return true;
        }
        if (metadata) {
            d.broken = true;
            LOG.log(System.Logger.Level.ERROR, "qcow2: metadata write failed: " + Errno.name((int) subResult)
                    + "; writes to this image are refused until it is reopened");
        }
        finish(subResult);
        return false;
    }

    boolean corrupt(String what) {
        LOG.log(System.Logger.Level.ERROR, "qcow2: corrupt image: " + what);
        finish(-Errno.EIO);
        return false;
    }

    private boolean step() {
        return switch (state) {
            case RUN -> piece();
            case ADVANCE -> {
                if (!ok(false)) {
                    yield false;
                }
                pos += pieceLen;
                state = RUN;
                yield true;
            }
            case BACKING_DONE -> {
                if (!ok(false)) {
                    yield false;
                }
                if (backingPart < pieceLen) {
                    zeroSlice(pos + backingPart, pieceLen - backingPart);
                }
                pos += pieceLen;
                state = RUN;
                yield true;
            }
            case ALLOC -> RefcountSteps.alloc(this);
            case REFBLOCK_WRITTEN -> {
                if (!ok(true)) {
                    yield false;
                }
                d.reftable.set(U64, newRefblockIndex * 8, newRefblock);
                state = REFTABLE_WRITTEN;
                yield metaWrite(d.reftableOffset, d.reftable, newRefblockIndex * 8, d.reftable.byteSize());
            }
            case REFTABLE_WRITTEN -> {
                if (!ok(true)) {
                    yield false;
                }
                state = ALLOC;
                yield true;
            }
            case REFCOUNT_WRITTEN -> {
                if (!ok(true)) {
                    yield false;
                }
                h.countAllocation();
                state = allocNext;
                yield true;
            }
            case L2NEW_GOT -> {
                MemorySegment t = h.l2.insertZeroed(allocated); // pinned when cached
                MemorySegment src = t != null ? t : zeroCow();
                l2Off = allocated;
                pinned = t != null;
                state = L2NEW_WRITTEN;
                sub.rw(BlockIo.WRITE, allocated, this);
                sub.iov.add(src.address(), d.clusterSize);
                yield submitTo(h.child);
            }
            case L2NEW_WRITTEN -> {
                unpinL2();
                if (!ok(true)) {
                    yield false;
                }
                d.l1.set(U64, (long) l1i * 8, l2Off | OFLAG_COPIED);
                state = L1_WRITTEN;
                yield metaWrite(d.header.l1TableOffset(), d.l1, (long) l1i * 8, Integer.toUnsignedLong(d.header.l1Size()) * 8);
            }
            case L1_WRITTEN -> {
                if (!ok(true)) {
                    yield false;
                }
                state = RUN;
                yield true;
            }
            case DATA_GOT -> dataGot();
            case COW_READ_DONE -> cowReadDone();
            case DATA_WRITTEN -> {
                if (!ok(false)) {
                    unpinL2();
                    yield false;
                }
                newEntry = newHost | OFLAG_COPIED;
                state = SET_L2;
                yield true;
            }
            case SET_L2 -> {
                MemorySegment t = h.l2.get(l2Off); // pinned since the piece began
                t.set(U64, (long) l2i * 8, newEntry);
                state = L2_WRITTEN;
                yield metaWrite(l2Off, t, (long) l2i * 8, d.clusterSize);
            }
            case L2_WRITTEN -> {
                unpinL2();
                if (!ok(true)) {
                    yield false;
                }
                long old = oldEntry & OFFSET_MASK;
                if (old != 0 && old != (newEntry & OFFSET_MASK)) {
                    state = DECREF;
                } else {
                    pos += pieceLen;
                    state = RUN;
                }
                yield true;
            }
            case DECREF -> RefcountSteps.decref(this);
            case GROW_RB_WRITTEN, GROW_TABLE_WRITTEN, GROW_HEADER_WRITTEN, GROW_FREE -> RefcountSteps.grow(this);
            case DECREF_WRITTEN -> {
                if (!ok(true)) {
                    yield false;
                }
                pos += pieceLen;
                state = RUN;
                yield true;
            }
            case FLUSH_START -> {
                state = FLUSH_DONE;
                sub.range(BlockIo.FLUSH, 0, 0, 0, this);
                yield submitTo(h.child);
            }
            case FLUSH_DONE -> {
                finish(subResult < 0 ? subResult : 0);
                yield false;
            }
            default -> throw new IllegalStateException("qcow2 request in state " + state);
        };
    }

    /** RUN: looks up the cluster at {@link #pos} and serves it, or starts what it needs. */
    private boolean piece() {
        if (pos >= end) {
            if (op != BlockIo.READ && (outer.flags & BlockIo.FLAG_FUA) != 0) {
                state = FLUSH_DONE; // forced unit access: durable (data and metadata) before it completes
                sub.range(BlockIo.FLUSH, 0, 0, 0, this);
                return submitTo(h.child);
            }
            finish(0);
            return false;
        }
        int cb = d.clusterBits;
        long cs = d.clusterSize;
        int l1Index = (int) (pos >>> (cb + d.l2Bits));
        int l2Index = (int) ((pos >>> cb) & ((1L << d.l2Bits) - 1));
        int inC = (int) (pos & (cs - 1));
        long n = Math.min(end - pos, cs - inC);
        long l2o = d.l1.get(U64, (long) l1Index * 8) & OFFSET_MASK;
        MemorySegment t = null;
        long e = 0;
        if (l2o != 0) {
            if ((l2o & (cs - 1)) != 0) {
                return corrupt("L1 entry " + l1Index + " points at unaligned offset " + l2o);
            }
            t = h.l2.get(l2o);
            if (t == null) {
                h.l2.load(l2o, this);
                return false;
            }
            e = t.get(U64, (long) l2Index * 8);
        }
        if ((e & OFLAG_COMPRESSED) != 0) {
            return corrupt("compressed cluster at guest offset " + pos + " (compression is not supported)");
        }
        long host = e & OFFSET_MASK;
        boolean zero = (e & d.zeroMask) != 0;
        if ((host & (cs - 1)) != 0 || (host != 0 && !zero && host > d.file.length() - cs)) {
            return corrupt("L2 entry for guest offset " + pos + " points at " + host + ", which is "
                    + ((host & (cs - 1)) != 0 ? "not cluster-aligned" : "past the end of the file"));
        }
        boolean full = inC == 0 && n == cs;
        switch (op) {
            case BlockIo.READ -> {
                if (host != 0 && !zero) {
                    pieceLen = run(t, l2Index, host, n, false);
                    state = ADVANCE;
                    sub.rw(BlockIo.READ, host + inC, this);
                    return slice(pos, pieceLen) && submitTo(h.child);
                }
                if (!zero && h.backing != null && pos < h.backingLength) {
                    pieceLen = n;
                    backingPart = Math.min(n, h.backingLength - pos);
                    state = BACKING_DONE;
                    sub.rw(BlockIo.READ, pos, this);
                    return slice(pos, backingPart) && submitTo(h.backing);
                }
                zeroSlice(pos, n);
                pos += n;
                return true;
            }
            case BlockIo.WRITE, BlockIo.WRITE_ZEROES -> {
                boolean readsZero = zero || (host == 0 && (h.backing == null || pos >= h.backingLength));
                if (op == BlockIo.WRITE_ZEROES && readsZero) {
                    pos += n;
                    return true;
                }
                boolean zeroFlag = op == BlockIo.WRITE_ZEROES && full && d.zeroMask != 0;
                if (host != 0 && !zero && (e & OFLAG_COPIED) != 0 && !zeroFlag) {
                    pieceLen = op == BlockIo.WRITE ? run(t, l2Index, host, n, true) : n;
                    state = ADVANCE;
                    sub.rw(BlockIo.WRITE, host + inC, this);
                    return source(pos, pieceLen) && submitTo(h.child);
                }
            }
            case BlockIo.DISCARD -> {
                // A hint: partial clusters are left as they are, and so are clusters that already read
                // as zeroes; an unallocated cluster over a backing file gets the zero flag, so the
                // backing's bytes do not show through (as QEMU's qcow2 discard does).
                if (!full || (host == 0 && (zero || h.backing == null || pos >= h.backingLength))) {
                    pos += n;
                    return true;
                }
            }
            default -> {
                return corrupt("operation " + op);
            }
        }
        // Metadata changes from here on: under the turn.
        if (!holdsTurn) {
            if (!h.acquire(this)) {
                return false;
            }
            holdsTurn = true;
        }
        if (l2o == 0) {
            l1i = l1Index;
            allocNext = L2NEW_GOT;
            state = ALLOC;
            return true;
        }
        l2Off = l2o;
        l2i = l2Index;
        oldEntry = e;
        inCluster = inC;
        pieceLen = n;
        l2Off = l2o;
        pinL2();
        if (op == BlockIo.DISCARD || (op == BlockIo.WRITE_ZEROES && full && d.zeroMask != 0)) {
            newEntry = op == BlockIo.WRITE_ZEROES || h.backing != null ? Qcow2Driver.OFLAG_ZERO : 0;
            state = SET_L2;
            return true;
        }
        allocNext = DATA_GOT;
        state = ALLOC;
        return true;
    }

    /** Bytes from {@code pos} served by host-contiguous clusters of the same L2 table, up to {@link #end}. */
    private long run(MemorySegment t, int l2Index, long host, long n, boolean needCopied) {
        long cs = d.clusterSize;
        long entries = 1L << d.l2Bits;
        long expect = host + cs;
        for (long i = l2Index + 1; i < entries && pos + n < end; i++) {
            long e = t.get(U64, i * 8);
            if ((e & (OFLAG_COMPRESSED | d.zeroMask)) != 0 || (e & OFFSET_MASK) != expect
                    || (needCopied && (e & OFLAG_COPIED) == 0)) {
                break;
            }
            n += Math.min(cs, end - pos - n);
            expect += cs;
        }
        return n;
    }

    /** DATA_GOT: the data cluster is allocated; write it whole, reading the uncovered part first if needed. */
    private boolean dataGot() {
        newHost = allocated;
        long cs = d.clusterSize;
        if (inCluster == 0 && pieceLen == cs) {
            state = DATA_WRITTEN;
            sub.rw(BlockIo.WRITE, newHost, this);
            return source(pos, pieceLen) && submitTo(h.child);
        }
        h.countCow();
        long oldHost = oldEntry & OFFSET_MASK;
        boolean oldZero = (oldEntry & d.zeroMask) != 0;
        long gc = pos - inCluster;
        state = COW_READ_DONE;
        backingPart = cs;
        if (oldHost != 0 && !oldZero) {
            sub.rw(BlockIo.READ, oldHost, this);
            sub.iov.add(h.cow.address(), cs);
            return submitTo(h.child);
        }
        if (!oldZero && h.backing != null && gc < h.backingLength) {
            backingPart = Math.min(cs, h.backingLength - gc);
            sub.rw(BlockIo.READ, gc, this);
            sub.iov.add(h.cow.address(), backingPart);
            return submitTo(h.backing);
        }
        h.cow.fill((byte) 0);
        subResult = 0;
        return true;
    }

    private boolean cowReadDone() {
        if (!ok(false)) {
            unpinL2();
            return false;
        }
        long cs = d.clusterSize;
        if (backingPart < cs) {
            h.cow.asSlice(backingPart).fill((byte) 0);
        }
        long a = h.cow.address();
        long tail = inCluster + pieceLen;
        state = DATA_WRITTEN;
        sub.rw(BlockIo.WRITE, newHost, this);
        if (inCluster > 0) {
            sub.iov.add(a, inCluster);
        }
        if (!appendSource(pos, pieceLen)) {
            // The guest's iovec and the head and tail do not fit one request: assemble the cluster here.
            sub.rw(BlockIo.WRITE, newHost, this);
            copySource(a + inCluster);
            sub.iov.add(a, cs);
            return submitTo(h.child);
        }
        if (tail < cs) {
            if (!sub.iov.add(a + tail, cs - tail)) {
                sub.rw(BlockIo.WRITE, newHost, this);
                copySource(a + inCluster);
                sub.iov.add(a, cs);
            }
        }
        return submitTo(h.child);
    }

    /** Writes the {@link Qcow2Home#META_CHUNK}-byte piece of table {@code t} (at {@code tableOff}) that holds byte {@code at}. */
    boolean metaWrite(long tableOff, MemorySegment t, long at, long tableBytes) {
        long from = at & ~(long) (META_CHUNK - 1);
        long len = Math.min(META_CHUNK, tableBytes - from);
        sub.rw(BlockIo.WRITE, tableOff + from, this);
        sub.iov.add(t.address() + from, len);
        return submitTo(h.child);
    }

    private MemorySegment zeroCow() {
        h.cow.fill((byte) 0);
        return h.cow;
    }

    // ---------------------------------------------------------------- guest buffers

    /** Fills {@link #sub}'s iovec with the guest bytes at device offset {@code at}, {@code len} long. */
    private boolean slice(long at, long len) {
        if (IoVecs.slice(outer.iov, at - outer.offset, len, sub.iov)) {
            return true;
        }
        return corrupt("guest request of " + outer.iov.count() + " segments does not fit one child request");
    }

    /** The data to write at {@code at}: the guest's bytes, or zeroes for WRITE_ZEROES. */
    private boolean source(long at, long len) {
        sub.iov.clear();
        if (appendSource(at, len)) {
            return true;
        }
        return corrupt("guest request of " + outer.iov.count() + " segments does not fit one child request");
    }

    private boolean appendSource(long at, long len) {
        if (op == BlockIo.WRITE_ZEROES) {
            return IoVecs.zeroes(len, sub.iov);
        }
        return IoVecs.slice(outer.iov, at - outer.offset, len, sub.iov);
    }

    private void copySource(long dst) {
        if (op == BlockIo.WRITE_ZEROES) {
            NativeMemory.zero(dst, pieceLen);
        } else {
            IoVecs.gather(outer.iov, pos - outer.offset, pieceLen, dst);
        }
    }

    private void zeroSlice(long at, long len) {
        IoVecs.zero(outer.iov, at - outer.offset, len);
    }
}
