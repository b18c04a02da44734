package io.vblk.drivers.qcow2;

import io.vblk.aio.AioContext;
import io.vblk.aio.engine.AioMode;
import io.vblk.aio.sys.Errno;
import io.vblk.drivers.BlockChannel;
import io.vblk.drivers.BlockDriver;
import io.vblk.drivers.BlockIo;
import io.vblk.drivers.file.FileDriver;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletionException;
import java.util.function.Supplier;

/**
 * Home thread: the opening context's (a helper with no state of its own).
 *
 * <p>Opens a qcow2 chain as QEMU's {@code bdrv_open} does: the header, the L1 table and the
 * refcount table are read through a channel of the child on the opening context, each read waited
 * for in a nested {@link AioContext#waitWhile} (QEMU's {@code AIO_WAIT_WHILE} around a coroutine);
 * a backing file the image names is opened the same way, recursively. Every wait is bounded, so a
 * child that never answers (seed 004's setting: a backing node served by this very process) is an
 * open error naming the bound, never a hang.
 */
final class Qcow2Open {
    /** Bound on each metadata read at open. */
    static final Duration READ_BOUND = Duration.ofSeconds(30);
    /** Longest backing chain followed (QEMU has no fixed limit; a loop must end). */
    static final int MAX_CHAIN = 16;

    private Qcow2Open() {
    }

    static Qcow2Driver open(BlockDriver file, BlockDriver backing, boolean imageBacking, boolean readOnly,
                            AioContext ctx) {
        return open(file, backing, null, imageBacking, readOnly, ctx);
    }

    /** {@code backingOpener}, if not null, opens the backing node inside the open (on {@code ctx}). */
    static Qcow2Driver open(BlockDriver file, BlockDriver backing, Supplier<BlockDriver> backingOpener,
                            boolean imageBacking, boolean readOnly, AioContext ctx) {
        if (ctx.inHomeThread()) {
            return openHere(file, backing, backingOpener, imageBacking, readOnly, ctx, 0);
        }
        try {
            return AioContext.await(ctx.callOn(() -> openHere(file, backing, backingOpener, imageBacking, readOnly,
                            ctx, 0)),
                    READ_BOUND.multipliedBy(4));
        } catch (CompletionException e) {
            Throwable c = e.getCause() != null ? e.getCause() : e;
            if (c instanceof RuntimeException r) {
                throw r;
            }
            throw new IllegalArgumentException("qcow2: open failed: " + c, c);
        }
    }

    private static Qcow2Driver openHere(BlockDriver file, BlockDriver backing, Supplier<BlockDriver> backingOpener,
                                        boolean imageBacking, boolean readOnly, AioContext ctx, int depth) {
        if (depth > MAX_CHAIN) {
            throw Qcow2Header.bad("backing chain longer than " + MAX_CHAIN + " images (a loop?)");
        }
        Arena tmp = Arena.ofConfined();
        BlockChannel ch = file.openChannel(ctx);
        List<BlockDriver> owned = new ArrayList<>();
        boolean stuck = false;
        try {
            long fileLength = file.length();
            int probe = (int) Math.min(Qcow2Header.PROBE_BYTES, fileLength);
            MemorySegment buf = tmp.allocate(Qcow2Header.PROBE_BYTES, 4096);
            read(ctx, ch, tmp, 0, buf, probe, "the header");
            Qcow2Header h = Qcow2Header.parse(buf, probe, fileLength);
            boolean ro = readOnly || file.readOnly() || h.version() < 3;

            long l1Bytes = Integer.toUnsignedLong(h.l1Size()) * 8;
            long rtBytes = Integer.toUnsignedLong(h.refcountTableClusters()) << h.clusterBits();
            MemorySegment l1 = tmp.allocate(Math.max(512, (l1Bytes + 511) & ~511L), 4096);
            MemorySegment rt = tmp.allocate(rtBytes, 4096);
            if (l1Bytes > 0) {
                read(ctx, ch, tmp, h.l1TableOffset(), l1, l1Bytes, "the L1 table");
            }
            read(ctx, ch, tmp, h.refcountTableOffset(), rt, rtBytes, "the refcount table");
            checkOffsets(l1, l1Bytes / 8, Qcow2Driver.OFFSET_MASK, h, fileLength, "L1");
            checkOffsets(rt, rtBytes / 8, Qcow2Driver.REFTABLE_MASK, h, fileLength, "refcount table");

            if (!ro && h.autoclear() != 0) {
                // qcow2.txt: a writer that does not know the autoclear bits clears them (persistent
                // bitmaps are then known stale to QEMU).
                MemorySegment zero = tmp.allocate(8, 8);
                write(ctx, ch, tmp, 88, zero, 8, "the autoclear bits");
                buf.asSlice(88, 8).fill((byte) 0);
            }

            BlockDriver back = backing;
            if (back == null && backingOpener != null) {
                try {
                    back = backingOpener.get(); // inside the open, on ctx: a nested wait of its own if it waits
                } catch (RuntimeException e) {
                    throw Qcow2Header.bad("cannot open the backing node: " + e.getMessage());
                }
                owned.add(back);
            } else if (back == null && imageBacking && h.backingFile() != null) {
                back = openBacking(file, h, ctx, depth, owned);
            }
            Qcow2Driver d = new Qcow2Driver(h, file, back, owned, ro, copy(l1), copy(rt), copy(buf.asSlice(0, 512)), fileLength);
            return d;
        } catch (RuntimeException e) {
            stuck = e instanceof StuckIo;
            for (BlockDriver o : owned) {
                o.close();
            }
            throw e;
        } finally {
            if (!stuck) { // a request still in flight keeps its channel and buffer: leaked, never freed under it
                ch.close();
                tmp.close();
            }
        }
    }

    /** The L1 or L2 copy lives with the driver (its arena is shared: the serving context may change). */
    private static MemorySegment copy(MemorySegment s) {
        MemorySegment c = Arena.ofAuto().allocate(s.byteSize(), 4096);
        c.copyFrom(s);
        return c;
    }

    /** Every non-zero offset in a table cluster-aligned and inside the file. */
    private static void checkOffsets(MemorySegment t, long n, long mask, Qcow2Header h, long fileLength, String what) {
        long cs = h.clusterSize();
        for (long i = 0; i < n; i++) {
            long off = t.get(Qcow2Header.U64, i * 8) & mask;
            if (off == 0) {
                continue;
            }
            if ((off & (cs - 1)) != 0 || off > fileLength - cs) {
                throw Qcow2Header.bad(what + " entry " + i + " points at " + off + ", which is "
                        + ((off & (cs - 1)) != 0 ? "not cluster-aligned" : "past the end of the file (" + fileLength + " bytes)"));
            }
        }
    }

    private static BlockDriver openBacking(BlockDriver file, Qcow2Header h, AioContext ctx, int depth,
                                           List<BlockDriver> owned) {
        String name = h.backingFile();
        if (name.startsWith("json:") || name.contains("://")) {
            throw Qcow2Header.bad("backing file '" + name + "' is not a plain file name; give backing=NODE");
        }
        Path p = Path.of(name);
        if (!p.isAbsolute()) {
            if (!(file instanceof FileDriver fd)) {
                throw Qcow2Header.bad("relative backing file '" + name + "' needs the image's directory; give backing=NODE");
            }
            Path parent = Path.of(fd.path()).toAbsolutePath().getParent();
            p = parent == null ? p : parent.resolve(p);
        }
        String fmt = h.backingFormat();
        if (fmt != null && !fmt.equals("raw") && !fmt.equals("qcow2")) {
            throw Qcow2Header.bad("backing format '" + fmt + "' of '" + name + "' is not supported; accepts raw or qcow2");
        }
        FileDriver bf;
        try {
            bf = FileDriver.open(p.toString(), AioMode.THREADS, FileDriver.Cache.WRITEBACK, true);
        } catch (IllegalArgumentException e) {
            throw Qcow2Header.bad("cannot open backing file '" + name + "': " + e.getMessage());
        }
        owned.add(bf);
        boolean qcow2 = fmt != null ? fmt.equals("qcow2") : looksLikeQcow2(bf, ctx);
        if (!qcow2) {
            return bf;
        }
        try {
            Qcow2Driver q = openHere(bf, null, null, true, true, ctx, depth + 1);
            owned.add(0, q); // closed before the file under it
            return q;
        } catch (IllegalArgumentException e) {
            throw Qcow2Header.bad("backing file '" + name + "': " + e.getMessage());
        }
    }

    /** Format probing, as QEMU's (which warns about it): the qcow2 magic at offset 0. */
    private static boolean looksLikeQcow2(BlockDriver f, AioContext ctx) {
        if (f.length() < 4) {
            return false;
        }
        try (Arena a = Arena.ofConfined()) {
            BlockChannel ch = f.openChannel(ctx);
            try {
                MemorySegment b = a.allocate(512, 4096);
                read(ctx, ch, a, 0, b, Math.min(512, f.length()), "the backing file's magic");
                return b.get(Qcow2Header.U32, 0) == Qcow2Header.MAGIC;
            } finally {
                ch.close();
            }
        }
    }

    static void read(AioContext ctx, BlockChannel ch, Arena a, long off, MemorySegment buf, long len, String what) {
        io(ctx, ch, a, BlockIo.READ, off, buf, len, what);
    }

    static void write(AioContext ctx, BlockChannel ch, Arena a, long off, MemorySegment buf, long len, String what) {
        io(ctx, ch, a, BlockIo.WRITE, off, buf, len, what);
    }

    /** One request, waited for in a bounded nested wait of {@code ctx} (QEMU: bdrv_pread in a coroutine). */
    private static void io(AioContext ctx, BlockChannel ch, Arena a, int op, long off, MemorySegment buf, long len,
                           String what) {
        long[] result = {Long.MIN_VALUE};
        BlockIo io = new BlockIo(a, 1); // control plane: open only
        io.rw(op, off, (r, res) -> result[0] = res);
        io.iov.add(buf.address(), len);
        ch.submit(io);
        if (!ctx.waitWhile(() -> result[0] == Long.MIN_VALUE, READ_BOUND)) {
            throw new StuckIo("qcow2: reading " + what + " did not complete within " + READ_BOUND.toSeconds()
                    + " s (nested wait on " + ctx.name() + ")");
        }
        if (result[0] < 0) {
            throw Qcow2Header.bad((op == BlockIo.READ ? "reading " : "writing ") + what + " at " + off + " failed: "
                    + Errno.name((int) result[0]));
        }
    }

    /** A metadata read that did not complete within its bound; the request is still in flight. Any thread. */
    static final class StuckIo extends IllegalArgumentException {
        StuckIo(String msg) {
            super(msg);
        }
    }
}
