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
            LOG.log(System.Logger.Level.ERROR, "qcow2: the refcount table is full (" + r.d.reftableEntries
                    + " blocks); vblk does not grow it");
            r.finish(-Errno.ENOSPC);
            return false;
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
}
