package io.vblk.drivers.qcow2;

import io.vblk.aio.sys.Errno;
import io.vblk.drivers.BlockIo;

import java.lang.foreign.MemorySegment;

import static io.vblk.drivers.qcow2.Qcow2Driver.OFFSET_MASK;
import static io.vblk.drivers.qcow2.Qcow2Driver.REFTABLE_MASK;
import static io.vblk.drivers.qcow2.Qcow2Home.U64;

/**
 * Home thread: the owning IoThread of the request's {@link Qcow2Home}. No state of its own.
 *
 * <p>The refcount side of {@link Qcow2Req}'s state machine, run by the holder of the metadata turn:
 * taking a free cluster (its refcount written before anything refers to it; a refcount block that
 * is missing is allocated in the range it covers, counting itself, and written before the refcount
 * table points at it) and lowering the refcount of a cluster no entry refers to any more.
 */
final class RefcountSteps {
    private static final System.Logger LOG = System.getLogger(RefcountSteps.class.getName());

    private RefcountSteps() {
    }

    /** ALLOC: takes the next free cluster into {@link Qcow2Req#allocated} (refcount 1, written), then goes to {@link Qcow2Req#allocNext}. */
    static boolean alloc(Qcow2Req r) {
        long cs = r.d.clusterSize;
        long c = r.d.nextFree;
        long rbi = c / r.d.refsPerBlock;
        if (rbi >= r.d.reftableEntries) {
            return growStart(r, c, rbi);
        }
        if (!r.h.growFile((c + 1) * cs)) {
            r.finish(-Errno.ENOSPC);
            return false;
        }
        long rbo = r.d.reftable.get(U64, rbi * 8) & REFTABLE_MASK;
        if (rbo == 0) {
            // A new refcount block at cluster c: it lies in the range it covers and counts itself.
            MemorySegment b = r.h.refblocks.insertZeroed(c * cs);
            if (b == null) {
                return r.corrupt("no free refcount block cache slot");
            }
            r.h.setRefcount(b, c % r.d.refsPerBlock, 1);
            r.h.refblocks.unpin(c * cs);
            r.d.nextFree = c + 1;
            r.newRefblock = c * cs;
            r.newRefblockIndex = rbi;
            r.state = Qcow2Req.REFBLOCK_WRITTEN;
            r.sub.rw(BlockIo.WRITE, c * cs, r);
            r.sub.iov.add(b.address(), cs);
            return r.submitTo(r.h.child);
        }
        if ((rbo & (cs - 1)) != 0) {
            return r.corrupt("refcount table entry " + rbi + " points at unaligned offset " + rbo);
        }
        MemorySegment b = r.h.refblocks.get(rbo);
        if (b == null) {
            r.h.refblocks.load(rbo, r);
            return false;
        }
        long idx = c % r.d.refsPerBlock;
        r.d.nextFree = c + 1;
        if (r.h.refcount(b, idx) != 0) {
            return true; // in use (past the end the image was opened with): try the next one
        }
        r.h.setRefcount(b, idx, 1);
        r.allocated = c * cs;
        r.state = Qcow2Req.REFCOUNT_WRITTEN;
        return r.metaWrite(rbo, b, r.h.refcountByte(idx), cs);
    }

    /** DECREF: lowers the refcount of the cluster the old entry pointed at. */
    static boolean decref(Qcow2Req r) {
        long cs = r.d.clusterSize;
        long c = (r.oldEntry & OFFSET_MASK) / cs;
        long rbi = c / r.d.refsPerBlock;
        long rbo = rbi < r.d.reftableEntries ? r.d.reftable.get(U64, rbi * 8) & REFTABLE_MASK : 0;
        if (rbo == 0 || (rbo & (cs - 1)) != 0) {
            LOG.log(System.Logger.Level.WARNING, "qcow2: cluster " + c + " has no refcount block; left as is");
            r.pos += r.pieceLen;
            r.state = Qcow2Req.RUN;
            return true;
        }
        MemorySegment b = r.h.refblocks.get(rbo);
        if (b == null) {
            r.h.refblocks.load(rbo, r);
            return false;
        }
        long idx = c % r.d.refsPerBlock;
        long rc = r.h.refcount(b, idx);
        if (rc == 0) {
            LOG.log(System.Logger.Level.WARNING, "qcow2: cluster " + c + " was referenced with refcount 0; left as is");
            r.pos += r.pieceLen;
            r.state = Qcow2Req.RUN;
            return true;
        }
        r.h.setRefcount(b, idx, rc - 1);
        r.state = Qcow2Req.DECREF_WRITTEN;
        return r.metaWrite(rbo, b, r.h.refcountByte(idx), cs);
    }

    /**
     * The refcount table has no entry for cluster {@code c}: a table twice the size is built at the
     * end of the image, after a new refcount block {@code c} that counts itself and the new table;
     * block and table are written, then the header's two fields are switched in one sector write,
     * then the old table's clusters are freed. A crash before the header write leaks the new
     * clusters; after it, the old table's.
     */
    private static boolean growStart(Qcow2Req r, long c, long rbi) {
        Qcow2Driver d = r.d;
        long cs = d.clusterSize;
        long k = Math.max(2L * d.reftableClusters, ((rbi + 1) * 8 + cs - 1) / cs);
        if (k * cs > Qcow2Header.MAX_REFTABLE_BYTES || k + 1 > d.refsPerBlock) {
            LOG.log(System.Logger.Level.ERROR, "qcow2: the refcount table cannot grow to " + k + " clusters");
            r.finish(-Errno.ENOSPC);
            return false;
        }
        if (c % d.refsPerBlock + 1 + k > d.refsPerBlock) {
            d.nextFree = (rbi + 1) * d.refsPerBlock; // block and table must lie in the range the block covers
            return true;
        }
        if (!r.h.growFile((c + 1 + k) * cs)) {
            r.finish(-Errno.ENOSPC);
            return false;
        }
        MemorySegment b = r.h.refblocks.insertZeroed(c * cs);
        if (b == null) {
            return r.corrupt("no free refcount block cache slot");
        }
        r.h.refblocks.unpin(c * cs);
        for (long i = 0; i <= k; i++) {
            r.h.setRefcount(b, (c + i) % d.refsPerBlock, 1);
        }
        d.nextFree = c + 1 + k;
        MemorySegment t = java.lang.foreign.Arena.ofAuto().allocate(k * cs, 4096); // once per growth
        MemorySegment.copy(d.reftable, 0, t, 0, d.reftable.byteSize());
        t.set(U64, rbi * 8, c * cs);
        r.growTable = t;
        r.newRefblock = c * cs;
        r.state = Qcow2Req.GROW_RB_WRITTEN;
        r.sub.rw(BlockIo.WRITE, c * cs, r);
        r.sub.iov.add(b.address(), cs);
        return r.submitTo(r.h.child);
    }

    /** The growth's later steps, one per state. */
    static boolean grow(Qcow2Req r) {
        Qcow2Driver d = r.d;
        long cs = d.clusterSize;
        switch (r.state) {
            case Qcow2Req.GROW_RB_WRITTEN -> {
                if (!r.metaOk()) {
                    return false;
                }
                r.state = Qcow2Req.GROW_TABLE_WRITTEN;
                r.sub.rw(BlockIo.WRITE, r.newRefblock + cs, r);
                r.sub.iov.add(r.growTable.address(), r.growTable.byteSize());
                return r.submitTo(r.h.child);
            }
            case Qcow2Req.GROW_TABLE_WRITTEN -> {
                if (!r.metaOk()) {
                    return false;
                }
                MemorySegment hs = d.headerSector;
                hs.set(U64, 48, r.newRefblock + cs); // refcount_table_offset
                hs.set(Qcow2Home.U32, 56, (int) (r.growTable.byteSize() / cs)); // refcount_table_clusters
                r.state = Qcow2Req.GROW_HEADER_WRITTEN;
                r.sub.rw(BlockIo.WRITE, 0, r);
                r.sub.iov.add(hs.address(), hs.byteSize());
                return r.submitTo(r.h.child);
            }
            case Qcow2Req.GROW_HEADER_WRITTEN -> {
                if (!r.metaOk()) {
                    return false;
                }
                r.growOldOffset = d.reftableOffset;
                r.growOldClusters = d.reftableClusters;
                r.growFreed = 0;
                d.reftable = r.growTable;
                d.reftableEntries = r.growTable.byteSize() / 8;
                d.reftableOffset = r.newRefblock + cs;
                d.reftableClusters = (int) (r.growTable.byteSize() / cs);
                r.growTable = null;
                r.state = Qcow2Req.GROW_FREE;
                return true;
            }
            default -> { // GROW_FREE: lower the old table's clusters one by one, then allocate again
                if (r.growFreed > 0 && !r.metaOk()) {
                    return false;
                }
                if (r.growFreed == r.growOldClusters) {
                    r.state = Qcow2Req.ALLOC;
                    return true;
                }
                long c = r.growOldOffset / cs + r.growFreed;
                long rbo = d.reftable.get(U64, c / d.refsPerBlock * 8) & REFTABLE_MASK;
                MemorySegment b = rbo == 0 ? null : r.h.refblocks.get(rbo);
                if (rbo != 0 && b == null) {
                    r.h.refblocks.load(rbo, r);
                    return false;
                }
                r.growFreed++;
                long idx = c % d.refsPerBlock;
                if (b == null || r.h.refcount(b, idx) == 0) {
                    r.subResult = 0;
                    return true;
                }
                r.h.setRefcount(b, idx, r.h.refcount(b, idx) - 1);
                return r.metaWrite(rbo, b, r.h.refcountByte(idx), cs);
            }
        }
    }
}
