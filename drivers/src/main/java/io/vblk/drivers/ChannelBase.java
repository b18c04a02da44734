package io.vblk.drivers;

import io.vblk.aio.AioContext;
import io.vblk.aio.engine.IoEngine;
import io.vblk.aio.sys.Errno;

import java.util.ArrayList;
import java.util.List;

/**
 * Home thread: the owning IoThread of {@link #context()}. No locking.
 *
 * <p>What every driver channel does the same way: the home-thread check, request validation against
 * the driver's facts (size, read-only, discard and secure-erase support), the in-flight count, drain waiters, and
 * the one completion path ({@link #complete}) through which every accepted request finishes
 * exactly once (STYLE rule 11), a refused one included.
 */
public abstract class ChannelBase implements BlockChannel {
    protected final AioContext ctx;
    protected final BlockDriver driver;
    private int inFlight;
    private List<Runnable> drainWaiters;
    private boolean closed;
    private long completedCount;
    /** The node's dirty tracking, or null; told of each write-like completion before its submitter. */
    private WriteObserver writeObserver;
    /** The node's write filter (a backup's copy-before-write), or null; asked before each write-like request starts. */
    private WriteGate writeGate;

    protected ChannelBase(AioContext ctx, BlockDriver driver) {
        ctx.assertHome();
        this.ctx = ctx;
        this.driver = driver;
    }

    @Override
    public final AioContext context() {
        return ctx;
    }

    /**
     * Validates and starts {@code io}. A request the driver refuses (bad range: -EINVAL; write to a
     * read-only image: -EROFS; unknown or unsupported operation: -EOPNOTSUPP) completes here,
     * before this returns. Home thread.
     */
    @Override
    public final void submit(BlockIo io) {
        ctx.assertHome();
        if (closed) {
            throw new IllegalStateException(driver.kind() + " channel on " + ctx.name() + " is closed");
        }
        if (io.completion == null) {
            throw new IllegalArgumentException("request without completion: " + io);
        }
        inFlight++;
        int err = check(io);
        if (err != 0) {
            complete(io, err);
            return;
        }
        if (writeGate != null && io.op != BlockIo.READ && io.op != BlockIo.FLUSH && !writeGate.admit(this, io)) {
            return; // kept: the gate calls startGated once the old data is safe
        }
        start(io);
    }

    @Override
    public final void startGated(BlockIo io) {
        ctx.assertHome();
        start(io);
    }

    @Override
    public final boolean gateWrites(WriteGate g) {
        ctx.assertHome();
        writeGate = g;
        return true;
    }

    /** 0, or the -errno the request is refused with. */
    protected int check(BlockIo io) {
        long len;
        switch (io.op) {
            case BlockIo.READ, BlockIo.WRITE -> len = io.iov.totalLength();
            case BlockIo.FLUSH -> {
                return 0;
            }
            case BlockIo.DISCARD -> {
                if (!driver.supportsDiscard()) {
                    return -Errno.EOPNOTSUPP;
                }
                len = io.length;
            }
            case BlockIo.WRITE_ZEROES -> {
                if (!driver.supportsWriteZeroes()) {
                    return -Errno.EOPNOTSUPP;
                }
                len = io.length;
            }
            case BlockIo.SECURE_ERASE -> {
                if (!driver.supportsSecureErase()) {
                    return -Errno.EOPNOTSUPP;
                }
                len = io.length;
            }
            default -> {
                return -Errno.EOPNOTSUPP;
            }
        }
        if (io.op != BlockIo.READ && driver.readOnly()) {
            return -Errno.EROFS;
        }
        if (io.offset < 0 || len < 0 || io.offset > driver.length() - len) {
            return -Errno.EINVAL;
        }
        return 0;
    }

    /** Starts a validated request; it must end in exactly one {@link #complete} call. */
    protected abstract void start(BlockIo io);

    /** The one completion path. Home thread. */
    protected final void complete(BlockIo io, long result) {
        inFlight--;
        completedCount++;
        if (writeObserver != null && io.op != BlockIo.READ && io.op != BlockIo.FLUSH) {
            // Also on failure: a failed write may have changed part of its range.
            writeObserver.written(io.offset, io.byteLength());
        }
        io.completion.ioCompleted(io, result);
        if (inFlight == 0 && drainWaiters != null && !drainWaiters.isEmpty()) {
            List<Runnable> run = drainWaiters;
            drainWaiters = null;
            for (Runnable r : run) {
                r.run();
            }
        }
    }

    @Override
    public final boolean observeWrites(WriteObserver o) {
        ctx.assertHome();
        writeObserver = o;
        return true;
    }

    @Override
    public final int inFlight() {
        return inFlight;
    }

    /** Requests completed through this channel. */
    public final long completedCount() {
        return completedCount;
    }

    @Override
    public final void drain(Runnable whenIdle) {
        ctx.assertHome();
        if (inFlight == 0) {
            whenIdle.run();
            return;
        }
        if (drainWaiters == null) {
            drainWaiters = new ArrayList<>(2); // control plane: allocation is fine here
        }
        drainWaiters.add(whenIdle);
    }

    @Override
    public final void close() {
        ctx.assertHome();
        if (closed) {
            return;
        }
        if (inFlight > 0) {
            throw new IllegalStateException(driver.kind() + " channel on " + ctx.name() + " closed with "
                    + inFlight + " requests in flight; drain it first");
        }
        closed = true;
        release();
    }

    /** Frees what the channel holds (engine references, buffers). Called once, idle. */
    protected abstract void release();

    public final boolean isClosed() {
        return closed;
    }

    /** The I/O engine this channel submits to, or null when it uses none (for metrics). */
    public IoEngine engine() {
        return null;
    }
}
