package io.vblk.virtio.blk;

import io.vblk.aio.AioContext;
import io.vblk.aio.Bh;
import io.vblk.aio.DeferCall;
import io.vblk.aio.sys.Errno;
import io.vblk.drivers.BlockChannel;
import io.vblk.drivers.BlockDriver;
import io.vblk.drivers.BlockIo;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

/**
 * Any thread for the accessors; channels: the home thread of their context.
 *
 * <p>A RAM-backed block driver for device tests: it really moves the bytes (so data can be verified)
 * and can complete synchronously inside submit, asynchronously from a bottom half (one defer-call
 * section per batch, like a real completion handler; in submission order or newest first, as Linux
 * AIO may), or hold completions until released on a later pass. It can also fail requests with a
 * chosen errno or transfer short.
 */
final class MemDriver implements BlockDriver {
    /** When a submitted request completes. */
    enum Mode {
        /** Inside {@code submit}. */
        SYNC,
        /** From a bottom half on the next loop iteration, in submission order. */
        ASYNC,
        /** From a bottom half on the next loop iteration, newest first (out of order). */
        ASYNC_REVERSED,
        /** When the test calls {@link Channel#releaseHeld()}. */
        HOLD
    }

    /** One submitted request as the driver saw it. */
    record Op(int op, long offset, long length, int flags, int iovCount, String thread) {
    }

    /** All of native memory, to copy to and from iovec addresses without a segment per buffer. */
    private static final MemorySegment ALL = MemorySegment.NULL.reinterpret(Long.MAX_VALUE);

    private final Arena arena = Arena.ofShared();
    final MemorySegment disk;
    private final boolean readOnly;
    private final boolean discard;
    private final boolean writeZeroes;
    private final int alignment;
    volatile Mode mode = Mode.SYNC;
    /** Fail every request with this -errno (0: none). */
    volatile int failWith;
    /** Report this many bytes fewer than asked for READ/WRITE. */
    volatile int shortBy;
    final List<Op> ops = java.util.Collections.synchronizedList(new ArrayList<>());
    /** Called on the channel's context at every submission, before it completes (null: none). */
    volatile Consumer<BlockIo> onSubmit;
    /** Record every submission in {@link #ops} (off for allocation measurements). */
    volatile boolean recordOps = true;
    final List<Channel> channels = java.util.Collections.synchronizedList(new ArrayList<>());

    MemDriver(long length, boolean readOnly, boolean discard, boolean writeZeroes, int alignment) {
        this.disk = arena.allocate(length, 4096);
        this.readOnly = readOnly;
        this.discard = discard;
        this.writeZeroes = writeZeroes;
        this.alignment = alignment;
    }

    MemDriver(long length) {
        this(length, false, true, true, 1);
    }

    @Override
    public String kind() {
        return "mem";
    }

    /** The test disk is one fixed allocation. */
    @Override
    public long resize(long newLength) {
        throw new UnsupportedOperationException("mem: the test disk cannot be resized");
    }

    @Override
    public long length() {
        return disk.byteSize();
    }

    @Override
    public int alignment() {
        return alignment;
    }

    @Override
    public boolean readOnly() {
        return readOnly;
    }

    @Override
    public io.vblk.drivers.DeviceLifetime lifetime() {
        return lifetime;
    }

    /** What {@link #lifetime()} reports (tests of GET_LIFETIME). */
    io.vblk.drivers.DeviceLifetime lifetime = io.vblk.drivers.DeviceLifetime.UNDEFINED;

    @Override
    public boolean supportsDiscard() {
        return discard;
    }

    @Override
    public boolean supportsWriteZeroes() {
        return writeZeroes;
    }

    /** Serves SECURE_ERASE (zeroes the range); set before the device is made, as the offer is fixed then. */
    boolean secureErase;

    @Override
    public boolean supportsSecureErase() {
        return secureErase && !readOnly;
    }

    @Override
    public BlockChannel openChannel(AioContext ctx) {
        ctx.assertHome();
        Channel c = new Channel(ctx);
        channels.add(c);
        return c;
    }

    @Override
    public void close() {
        arena.close();
    }

    final class Channel implements BlockChannel {
        private final AioContext ctx;
        private final ArrayDeque<BlockIo> pending = new ArrayDeque<>();
        private final Bh completeBh;
        private int inFlight;
        /** Waiters of drain(), run when the last in-flight request completes. */
        private final java.util.List<Runnable> idleWaiters = new java.util.ArrayList<>();
        boolean closed;

        Channel(AioContext ctx) {
            this.ctx = ctx;
            this.completeBh = ctx.bh("mem.complete", this::completeAll);
        }

        @Override
        public AioContext context() {
            return ctx;
        }

        @Override
        public void submit(BlockIo io) {
            ctx.assertHome();
            if (recordOps) {
                ops.add(new Op(io.op, io.offset, io.byteLength(), io.flags, io.iov.count(),
                        Thread.currentThread().getName()));
            }
            Consumer<BlockIo> hook = onSubmit;
            if (hook != null) {
                hook.accept(io);
            }
            inFlight++;
            switch (mode) {
                case SYNC -> complete(io);
                case ASYNC, ASYNC_REVERSED -> {
                    pending.add(io);
                    completeBh.schedule();
                }
                case HOLD -> pending.add(io);
            }
        }

        /** Completes everything held, in one defer-call section (as a completion handler does). */
        void releaseHeld() {
            ctx.assertHome();
            completeAll();
        }

        int held() {
            return pending.size();
        }

        private void completeAll() {
            DeferCall dc = ctx.deferCall();
            dc.begin();
            try {
                boolean reversed = mode == Mode.ASYNC_REVERSED;
                BlockIo io;
                while ((io = reversed ? pending.pollLast() : pending.poll()) != null) {
                    complete(io);
                }
            } finally {
                dc.end();
            }
        }

        private void complete(BlockIo io) {
            long r = execute(io);
            inFlight--;
            io.completion.ioCompleted(io, r);
            if (inFlight == 0 && !idleWaiters.isEmpty()) {
                java.util.List<Runnable> run = new java.util.ArrayList<>(idleWaiters);
                idleWaiters.clear();
                run.forEach(Runnable::run);
            }
        }

        @Override
        public int inFlight() {
            return inFlight;
        }

        @Override
        public void drain(Runnable whenIdle) {
            ctx.assertHome();
            if (inFlight == 0) {
                whenIdle.run();
            } else {
                idleWaiters.add(whenIdle);
            }
        }

        @Override
        public void close() {
            ctx.assertHome();
            closed = true;
            completeBh.delete();
        }
    }

    private long execute(BlockIo io) {
        if (failWith != 0) {
            return failWith;
        }
        switch (io.op) {
            case BlockIo.READ, BlockIo.WRITE -> {
                long off = io.offset;
                for (int i = 0; i < io.iov.count(); i++) {
                    long base = io.iov.base(i);
                    long len = io.iov.length(i);
                    if (io.op == BlockIo.READ) {
                        MemorySegment.copy(disk, off, ALL, base, len);
                    } else {
                        if (readOnly) {
                            return -Errno.EROFS;
                        }
                        MemorySegment.copy(ALL, base, disk, off, len);
                    }
                    off += len;
                }
                return io.iov.totalLength() - shortBy;
            }
            case BlockIo.FLUSH -> {
                return 0;
            }
            case BlockIo.DISCARD, BlockIo.WRITE_ZEROES, BlockIo.SECURE_ERASE -> {
                if ((io.op == BlockIo.DISCARD && !discard) || (io.op == BlockIo.WRITE_ZEROES && !writeZeroes)
                        || (io.op == BlockIo.SECURE_ERASE && !secureErase)) {
                    return -Errno.EOPNOTSUPP;
                }
                disk.asSlice(io.offset, io.length).fill((byte) 0);
                return 0;
            }
            default -> {
                return -Errno.EINVAL;
            }
        }
    }
}
