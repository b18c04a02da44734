package io.vblk.drivers.qcow2;

import io.vblk.aio.sys.Errno;
import io.vblk.drivers.BlockIo;
import io.vblk.drivers.IoCompletion;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * Home thread: the serving context's ({@link Qcow2Home}). No locking.
 *
 * <p>A fixed number of cluster-sized metadata tables (L2 tables, or refcount blocks) kept in memory,
 * big-endian as on disk. Write-through: every change is written by its caller right away, so an
 * entry is never dirty and any unpinned slot can be reused (least recently used first). A table not
 * in the cache is loaded with one read of the child; requests that need it meanwhile wait on the
 * slot and are resumed, in order, when the read completes. Slots, buffers and the load requests are
 * allocated once.
 */
final class TableCache {
    private static final int EMPTY = 0;
    private static final int LOADING = 1;
    private static final int VALID = 2;

    /** One table's buffer and state. */
    private final class Slot implements IoCompletion {
        long offset = -1;
        int state = EMPTY;
        int pins;
        long lastUse;
        final MemorySegment seg;
        final BlockIo load;
        Qcow2Req waiters;
        Qcow2Req waitersTail;

        Slot(Arena arena) {
            seg = arena.allocate(clusterSize, 4096);
            load = new BlockIo(arena, 1);
        }

        @Override
        public void ioCompleted(BlockIo io, long result) {
            loaded(this, result);
        }
    }

    private final String what;
    private final Qcow2Home home;
    private final long clusterSize;
    private final Slot[] slots;
    private long clock;
    /** Requests that found every slot busy loading or pinned: retried after the next load. */
    private Qcow2Req starved;
    private long loads;

    TableCache(String what, Qcow2Home home, Arena arena, int count, long clusterSize) {
        this.what = what;
        this.home = home;
        this.clusterSize = clusterSize;
        this.slots = new Slot[count];
        for (int i = 0; i < count; i++) {
            slots[i] = new Slot(arena);
        }
    }

    private Slot find(long offset) {
        for (Slot s : slots) {
            if (s.offset == offset && s.state != EMPTY) {
                return s;
            }
        }
        return null;
    }

    /** The table at {@code offset} if cached, else null. */
    MemorySegment get(long offset) {
        Slot s = find(offset);
        if (s == null || s.state != VALID) {
            return null;
        }
        s.lastUse = ++clock;
        return s.seg;
    }

    /** Starts loading {@code offset} (or joins the load under way); {@code r} is resumed when it is in. */
    void load(long offset, Qcow2Req r) {
        Slot s = find(offset);
        if (s == null) {
            s = victim();
            if (s == null) {
                r.nextWait = starved;
                starved = r;
                return;
            }
            s.offset = offset;
            s.state = LOADING;
            s.load.rw(BlockIo.READ, offset, s);
            s.load.iov.add(s.seg.address(), clusterSize);
            loads++;
            enqueue(s, r);
            home.child.submit(s.load);
            return;
        }
        if (s.state == VALID) { // loaded meanwhile
            home.resume(r);
            return;
        }
        enqueue(s, r);
    }

    private static void enqueue(Slot s, Qcow2Req r) {
        r.nextWait = null;
        if (s.waitersTail == null) {
            s.waiters = r;
        } else {
            s.waitersTail.nextWait = r;
        }
        s.waitersTail = r;
    }

    private void loaded(Slot s, long result) {
        Qcow2Req w = s.waiters;
        s.waiters = s.waitersTail = null;
        boolean ok = result == clusterSize;
        if (ok) {
            s.state = VALID;
            s.lastUse = ++clock;
        } else {
            s.state = EMPTY;
            s.offset = -1;
            System.getLogger(TableCache.class.getName()).log(System.Logger.Level.ERROR, "qcow2: reading the " + what
                    + " at " + s.load.offset + " failed: " + (result < 0 ? Errno.name((int) result) : "short read " + result));
        }
        while (w != null) {
            Qcow2Req next = w.nextWait;
            w.nextWait = null;
            if (ok) {
                home.resume(w);
            } else {
                w.finish(-Errno.EIO);
            }
            w = next;
        }
        Qcow2Req st = starved;
        starved = null;
        while (st != null) {
            Qcow2Req next = st.nextWait;
            st.nextWait = null;
            home.resume(st);
            st = next;
        }
    }

    /** A slot to reuse: empty first, else the least recently used valid unpinned one; null if none. */
    private Slot victim() {
        Slot best = null;
        for (Slot s : slots) {
            if (s.state == EMPTY) {
                return s;
            }
            if (s.state == VALID && s.pins == 0 && (best == null || s.lastUse < best.lastUse)) {
                best = s;
            }
        }
        return best;
    }

    /**
     * A new table at {@code offset} that is all zeroes (just allocated), pinned; null when no slot is
     * free (the caller writes from its own zero buffer then).
     */
    MemorySegment insertZeroed(long offset) {
        Slot s = find(offset);
        if (s != null && s.state == LOADING) {
            return null;
        }
        if (s == null) {
            s = victim();
            if (s == null) {
                return null;
            }
        }
        s.seg.fill((byte) 0);
        s.offset = offset;
        s.state = VALID;
        s.lastUse = ++clock;
        s.pins++;
        return s.seg;
    }

    /** Keeps the cached table at {@code offset} (present: the caller just got it) from reuse. */
    void pin(long offset) {
        find(offset).pins++;
    }

    void unpin(long offset) {
        Slot s = find(offset);
        if (s != null && s.pins > 0) {
            s.pins--;
        }
    }

    /** Tables read from the image so far. */
    long loads() {
        return loads;
    }
}
