package io.vblk.drivers.file;

import io.vblk.aio.AioContext;
import io.vblk.aio.engine.IoEngine;
import io.vblk.aio.engine.IoRequest;
import io.vblk.aio.sys.Errno;
import io.vblk.aio.sys.FileIo;
import io.vblk.drivers.BlockIo;
import io.vblk.drivers.ChannelBase;
import io.vblk.drivers.IoVec;
import io.vblk.drivers.NativeMemory;

import java.lang.foreign.Arena;

/**
 * Home thread: the owning IoThread. No locking.
 *
 * <p>A {@link FileDriver}'s submission path on one context: turns each {@link BlockIo} into one or
 * more steps of a pooled {@link FileRequest} (the engine request itself), submitted to the
 * context's engine for the driver's aio mode ({@link EngineChoice}), and finishes it exactly once.
 */
final class FileBlockChannel extends ChannelBase {
    private final FileDriver d;
    private final int fd;
    private final boolean direct;
    private final int memAlign;
    private final int offAlign;
    private final int maxBatch;
    private final IoEngine engine;
    private final Arena arena = Arena.ofShared();
    private final IoRequest.Completion aioDone = this::aioDone;
    private FileRequest free;
    private int allocated;

    // Exclusive (read-modify-write) writes run alone; see admit().
    private int writesInFlight;
    private boolean exclusiveActive;
    private FileRequest waitHead;
    private FileRequest waitTail;

    FileBlockChannel(AioContext ctx, FileDriver d) {
        super(ctx, d);
        this.d = d;
        this.fd = d.fd();
        this.direct = d.cache() == FileDriver.Cache.NONE;
        this.memAlign = d.memoryAlignment();
        this.offAlign = d.alignment();
        this.maxBatch = d.maxBatch();
        this.engine = EngineChoice.open(ctx, d.aio());
    }

    private FileRequest take() {
        FileRequest fr = free;
        if (fr == null) {
            allocated++;
            return new FileRequest(arena); // only while the pool grows to the workload
        }
        free = fr.nextInChannel;
        fr.nextInChannel = null;
        return fr;
    }

    private void submitAio(IoRequest r) {
        engine.submit(r, maxBatch);
    }

    @Override
    protected void start(BlockIo io) {
        FileRequest fr = take();
        fr.io = io;
        fr.exclusive = false;
        fr.writeClass = false;
        switch (io.op) {
            case BlockIo.READ -> startRead(fr);
            case BlockIo.FLUSH -> {
                fr.phase = FileRequest.FLUSH;
                fr.expect = 0;
                submitAio(fr.fdsync(fd, aioDone));
            }
            default -> { // WRITE, DISCARD, WRITE_ZEROES, SECURE_ERASE
                fr.writeClass = true;
                long len = io.byteLength();
                fr.exclusive = direct && io.op != BlockIo.DISCARD && !(aligned(io.offset) && aligned(len));
                admit(fr);
            }
        }
    }

    private boolean aligned(long v) {
        return (v & (offAlign - 1)) == 0;
    }

    /** Every segment meets O_DIRECT's rules: address to the memory alignment, length to the block size. */
    private boolean memAligned(IoVec iov) {
        for (int i = 0, n = iov.count(); i < n; i++) {
            if ((iov.base(i) & (memAlign - 1)) != 0 || !aligned(iov.length(i))) {
                return false;
            }
        }
        return true;
    }

    // ---------------------------------------------------------------- reads

    private void startRead(FileRequest fr) {
        BlockIo io = fr.io;
        long len = io.iov.totalLength();
        if (len == 0) {
            finish(fr, 0);
            return;
        }
        if (!direct || (aligned(io.offset) && aligned(len) && memAligned(io.iov))) {
            fr.phase = FileRequest.READ;
            fr.expect = len;
            submitAio(fr.readv(fd, io.iov.address(), io.iov.count(), io.offset, aioDone));
            return;
        }
        fr.winStart = io.offset & -offAlign;
        fr.winLen = alignUp(io.offset + len) - fr.winStart;
        fr.bounce(fr.winLen, memAlign);
        fr.phase = FileRequest.READ_BOUNCE;
        fr.expect = fr.winLen;
        submitAio(fr.readv(fd, fr.bounceIov(fr.winLen), 1, fr.winStart, aioDone));
    }

    private long alignUp(long v) {
        return (v + offAlign - 1) & -offAlign;
    }

    // ---------------------------------------------------------------- writes

    /**
     * Starts a write-class request unless it must wait: an exclusive one (a read-modify-write)
     * waits until no other write is in flight, and every write waits while an exclusive one runs
     * or others are already waiting (order is kept). With cache=writeback nothing is exclusive
     * and this is two comparisons.
     */
    private void admit(FileRequest fr) {
        if (waitHead != null || (fr.exclusive ? writesInFlight > 0 : exclusiveActive)) {
            if (waitTail == null) {
                waitHead = fr;
            } else {
                waitTail.nextInChannel = fr;
            }
            waitTail = fr;
            return;
        }
        run(fr);
    }

    private void run(FileRequest fr) {
        writesInFlight++;
        if (fr.exclusive) {
            exclusiveActive = true;
        }
        BlockIo io = fr.io;
        switch (io.op) {
            case BlockIo.WRITE -> {
                if (io.iov.totalLength() == 0) {
                    finish(fr, 0);
                    return;
                }
                writeData(fr, io.iov, io.offset, io.iov.totalLength());
            }
            case BlockIo.DISCARD -> {
                fr.phase = FileRequest.DISCARD;
                fr.expect = 0;
                submitAio(fr.fallocate(fd, FileIo.FALLOC_FL_PUNCH_HOLE | FileIo.FALLOC_FL_KEEP_SIZE, io.offset,
                        io.length, aioDone));
            }
            case BlockIo.SECURE_ERASE -> {
                if (io.length == 0) {
                    finish(fr, 0);
                } else if (d.secureDiscard()) {
                    fr.phase = FileRequest.SECURE_DISCARD;
                    fr.expect = 0;
                    submitAio(fr.secureDiscard(fd, io.offset, io.length, aioDone));
                } else {
                    // A regular file: overwrite with zeroes, then fdatasync (ERASE_SYNC) before completing.
                    fr.zeroDone = 0;
                    nextZeroChunk(fr);
                }
            }
            default -> { // WRITE_ZEROES
                if (io.length == 0) {
                    finish(fr, 0);
                } else if (d.zeroRangeUnsupported()) {
                    fr.zeroDone = 0;
                    nextZeroChunk(fr);
                } else {
                    fr.phase = FileRequest.ZERO_RANGE;
                    fr.expect = 0;
                    int mode = (io.flags & BlockIo.FLAG_MAY_UNMAP) != 0
                            ? FileIo.FALLOC_FL_PUNCH_HOLE | FileIo.FALLOC_FL_KEEP_SIZE
                            : FileIo.FALLOC_FL_ZERO_RANGE | FileIo.FALLOC_FL_KEEP_SIZE;
                    submitAio(fr.fallocate(fd, mode, io.offset, io.length, aioDone));
                }
            }
        }
    }

    /** Writes {@code len} bytes of {@code src} at {@code off}: straight, through the bounce buffer, or read-modify-write. */
    private void writeData(FileRequest fr, IoVec src, long off, long len) {
        fr.src = src;
        fr.wOff = off;
        fr.wLen = len;
        fr.phase = FileRequest.WRITE;
        if (!direct || (aligned(off) && aligned(len) && memAligned(src))) {
            fr.expect = len;
            submitAio(fr.writev(fd, src.address(), src.count(), off, aioDone));
        } else if (aligned(off) && aligned(len)) {
            NativeMemory.gather(src, fr.bounce(len, memAlign));
            fr.expect = len;
            submitAio(fr.writev(fd, fr.bounceIov(len), 1, off, aioDone));
        } else {
            // Misaligned range: read the covering blocks, patch, write back (admitted exclusive).
            fr.winStart = off & -offAlign;
            fr.winLen = alignUp(off + len) - fr.winStart;
            fr.bounce(fr.winLen, memAlign);
            fr.phase = FileRequest.RMW_READ;
            fr.expect = fr.winLen;
            submitAio(fr.readv(fd, fr.bounceIov(fr.winLen), 1, fr.winStart, aioDone));
        }
    }

    private void nextZeroChunk(FileRequest fr) {
        BlockIo io = fr.io;
        if (fr.zeroIov == null) {
            fr.zeroIov = new IoVec(arena, FileRequest.ZERO_SEGMENTS);
        }
        long left = io.length - fr.zeroDone;
        long block = NativeMemory.zeroBlock().byteSize();
        IoVec z = fr.zeroIov;
        z.clear();
        while (left > 0 && z.count() < FileRequest.ZERO_SEGMENTS) {
            long n = Math.min(left, block);
            z.add(NativeMemory.zeroBlock().address(), n);
            left -= n;
        }
        writeData(fr, z, io.offset + fr.zeroDone, z.totalLength());
    }

    // ---------------------------------------------------------------- completions

    private void aioDone(IoRequest r, long res) {
        FileRequest fr = (FileRequest) r;
        BlockIo io = fr.io;
        switch (fr.phase) {
            case FileRequest.READ -> {
                if (res < 0) {
                    finish(fr, res);
                } else {
                    if (res < fr.expect) {
                        NativeMemory.zeroFrom(io.iov, res); // past the end of a shrunk file
                    }
                    finish(fr, fr.expect);
                }
            }
            case FileRequest.READ_BOUNCE -> {
                if (res < 0) {
                    finish(fr, res);
                    return;
                }
                long delta = io.offset - fr.winStart;
                long len = io.iov.totalLength();
                long avail = Math.max(0, Math.min(len, res - delta));
                NativeMemory.scatter(fr.bounce.address() + delta, io.iov, avail);
                if (avail < len) {
                    NativeMemory.zeroFrom(io.iov, avail);
                }
                finish(fr, len);
            }
            case FileRequest.RMW_READ -> {
                if (res < 0) {
                    finish(fr, res);
                    return;
                }
                if (res < fr.winLen) {
                    NativeMemory.zero(fr.bounce.address() + res, fr.winLen - res);
                }
                NativeMemory.gather(fr.src, fr.bounce.address() + (fr.wOff - fr.winStart));
                fr.phase = FileRequest.WRITE;
                fr.expect = fr.winLen;
                submitAio(fr.writev(fd, fr.bounceIov(fr.winLen), 1, fr.winStart, aioDone));
            }
            case FileRequest.WRITE -> {
                if (res != fr.expect) {
                    finish(fr, res < 0 ? res : -Errno.ENOSPC);
                } else if (io.op == BlockIo.WRITE_ZEROES || io.op == BlockIo.SECURE_ERASE) {
                    fr.zeroDone += fr.wLen;
                    if (fr.zeroDone < io.length) {
                        nextZeroChunk(fr);
                    } else if (io.op == BlockIo.SECURE_ERASE) {
                        fr.phase = FileRequest.ERASE_SYNC;
                        submitAio(fr.fdsync(fd, aioDone));
                    } else {
                        finish(fr, 0);
                    }
                } else if ((io.flags & BlockIo.FLAG_FUA) != 0) {
                    fr.phase = FileRequest.FUA_SYNC;
                    submitAio(fr.fdsync(fd, aioDone));
                } else {
                    finish(fr, fr.wLen);
                }
            }
            case FileRequest.FUA_SYNC -> finish(fr, res < 0 ? res : fr.wLen);
            case FileRequest.ERASE_SYNC, FileRequest.SECURE_DISCARD -> finish(fr, res < 0 ? res : 0);
            case FileRequest.DISCARD -> finish(fr, res == -Errno.EOPNOTSUPP ? 0 : res); // discard is a hint
            case FileRequest.ZERO_RANGE -> {
                if (res == -Errno.EOPNOTSUPP) {
                    d.markZeroRangeUnsupported();
                    fr.zeroDone = 0;
                    nextZeroChunk(fr);
                } else {
                    finish(fr, res);
                }
            }
            default -> finish(fr, res); // FLUSH
        }
    }

    /** Recycles {@code fr}, lets waiting writes go, and completes the request. */
    private void finish(FileRequest fr, long res) {
        BlockIo io = fr.io;
        boolean wasWrite = fr.writeClass;
        boolean wasExclusive = fr.exclusive;
        fr.io = null;
        fr.src = null;
        fr.nextInChannel = free;
        free = fr;
        if (wasWrite) {
            writesInFlight--;
            if (wasExclusive) {
                exclusiveActive = false;
            }
            while (waitHead != null) {
                FileRequest w = waitHead;
                if (w.exclusive ? writesInFlight > 0 : exclusiveActive) {
                    break;
                }
                waitHead = w.nextInChannel;
                if (waitHead == null) {
                    waitTail = null;
                }
                w.nextInChannel = null;
                run(w);
            }
        }
        complete(io, res);
    }

    /** Request states made so far (the pool's high-water mark). */
    int allocatedRequests() {
        return allocated;
    }

    @Override
    protected void release() {
        for (FileRequest fr = free; fr != null; fr = fr.nextInChannel) {
            fr.freeBounce();
        }
        free = null;
        engine.release();
        arena.close();
    }

    /** The context's engine this channel submits to (shared with the context's other file channels). */
    @Override
    public IoEngine engine() {
        return engine;
    }
}
