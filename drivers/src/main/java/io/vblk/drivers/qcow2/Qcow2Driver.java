package io.vblk.drivers.qcow2;

import io.vblk.aio.AioContext;
import io.vblk.drivers.BlockChannel;
import io.vblk.drivers.BlockDriver;

import java.lang.foreign.MemorySegment;
import java.util.List;

/**
 * Any thread for the accessors; {@link #openChannel} on the context's home thread, and the image
 * metadata (L1 table, refcount table, allocation cursor) only on the home thread of the one context
 * the driver serves at a time (see {@link Qcow2Home}).
 *
 * <p>A qcow2 image (QEMU docs/interop/qcow2.txt) layered on a child driver holding the image bytes
 * (the {@code file} driver, usually), with an optional backing driver for clusters the image does
 * not allocate. Version 3 images are read and written; version 2 images are served read-only.
 * Opened by {@link Qcow2Open}, inside a nested wait of the opening context as QEMU's
 * {@code bdrv_open} is. The child is the caller's (another node owns it) and is not closed here;
 * backing drivers this driver opened itself (the image's backing file name) are.
 *
 * <p>What is written keeps the on-disk image consistent at every point a process can die: a new
 * cluster's refcount is written before the data, the data before the L2 entry, a new L2 table
 * before the L1 entry that points to it, and a cluster's refcount is lowered only after the entry
 * that referenced it is gone. A crash can leak clusters (qemu-img check reports leaks), never leave
 * a reference to a cluster whose refcount is 0. {@code lazy_refcounts} is never used; the dirty bit
 * is never set.
 */
public final class Qcow2Driver implements BlockDriver {
    /** L1 and L2 entry bits (qcow2.txt "Cluster mapping"). */
    static final long OFLAG_COPIED = 1L << 63;
    static final long OFLAG_COMPRESSED = 1L << 62;
    static final long OFLAG_ZERO = 1L;
    /** Bits 9-55: the host offset. */
    static final long OFFSET_MASK = 0x00ff_ffff_ffff_fe00L;
    /** Refcount table entries: bits 9-63 are the refblock offset. */
    static final long REFTABLE_MASK = 0xffff_ffff_ffff_fe00L;

    final Qcow2Header header;
    final BlockDriver file;
    final BlockDriver backing;
    /** Backing drivers this driver opened (closed with it), innermost last. */
    private final List<BlockDriver> owned;
    private final boolean readOnly;
    final int clusterBits;
    final long clusterSize;
    /** L2 entries per table: cluster_size / 8. */
    final int l2Bits;
    /** Refcount entries per refcount block. */
    final long refsPerBlock;
    final long zeroMask;
    /** The L1 table, big-endian as on disk; home thread of the serving context. */
    final MemorySegment l1;
    /** The refcount table, where it is and how many clusters it spans: replaced when it grows. */
    MemorySegment reftable;
    long reftableEntries;
    long reftableOffset;
    int reftableClusters;
    /** The image's first 512 bytes as last written (the refcount table fields change when it grows). */
    final MemorySegment headerSector;
    /** First cluster index the allocator tries next (clusters are taken from the end of the image). */
    long nextFree;
    /** File length when opened; the image is never truncated below it. */
    final long openedFileLength;
    /** Set after a metadata write failed: writes are refused from then on (-EIO). */
    boolean broken;
    private Qcow2Home home;
    private volatile boolean closed;

    Qcow2Driver(Qcow2Header header, BlockDriver file, BlockDriver backing, List<BlockDriver> owned, boolean readOnly,
                MemorySegment l1, MemorySegment reftable, MemorySegment headerSector, long openedFileLength) {
        this.header = header;
        this.file = file;
        this.backing = backing;
        this.owned = owned;
        this.readOnly = readOnly;
        this.clusterBits = header.clusterBits();
        this.clusterSize = header.clusterSize();
        this.l2Bits = clusterBits - 3;
        this.refsPerBlock = clusterSize * 8 / header.refcountBits();
        this.zeroMask = header.version() >= 3 ? OFLAG_ZERO : 0;
        this.l1 = l1;
        this.reftable = reftable;
        this.reftableEntries = reftable.byteSize() / 8;
        this.reftableOffset = header.refcountTableOffset();
        this.reftableClusters = header.refcountTableClusters();
        this.headerSector = headerSector;
        this.openedFileLength = openedFileLength;
        this.nextFree = (openedFileLength + clusterSize - 1) >>> clusterBits;
    }

    /**
     * Opens a qcow2 image over {@code file}. {@code backing}: the backing node's driver; null with
     * {@code imageBacking} true opens the backing file the image names (relative to the image's
     * directory), null with {@code imageBacking} false ({@code backing=null}) reads unallocated
     * clusters as zeroes. The metadata is read on {@code ctx} in a nested wait; called from any
     * thread (off the loop it hands the open to {@code ctx} and waits). Throws
     * {@link IllegalArgumentException} naming what is wrong.
     */
    public static Qcow2Driver open(BlockDriver file, BlockDriver backing, boolean imageBacking, AioContext ctx) {
        return Qcow2Open.open(file, backing, imageBacking, false, ctx);
    }

    /** As above; with {@code readOnly} the image is served read-only whatever its file allows. */
    public static Qcow2Driver open(BlockDriver file, BlockDriver backing, boolean imageBacking, boolean readOnly,
                                   AioContext ctx) {
        return Qcow2Open.open(file, backing, imageBacking, readOnly, ctx);
    }

    /**
     * As above, with a backing node defined inline ({@code backing.driver=...}, QEMU's nested
     * BlockdevOptions): {@code backingOpener} runs inside the open, on {@code ctx}'s home thread
     * while the chain is being opened, as QEMU opens a backing child within {@code bdrv_open}'s
     * nested wait; the driver it returns is owned (closed) by the image. With an NBD backing served
     * by this very process that open needs the NBD server's listener to run in the nested wait:
     * seed 004's setting.
     */
    public static Qcow2Driver openWithBacking(BlockDriver file, java.util.function.Supplier<BlockDriver> backingOpener,
                                              boolean readOnly, AioContext ctx) {
        return Qcow2Open.open(file, null, backingOpener, false, readOnly, ctx);
    }

    public Qcow2Header header() {
        return header;
    }

    /** The backing driver, or null. */
    public BlockDriver backing() {
        return backing;
    }

    public BlockDriver file() {
        return file;
    }

    @Override
    public String kind() {
        return "qcow2";
    }

    @Override
    public long length() {
        return header.size();
    }

    @Override
    public long resize(long newLength) {
        throw new UnsupportedOperationException("qcow2: resizing is not supported by vblk (use qemu-img resize offline)");
    }

    @Override
    public int alignment() {
        return 1;
    }

    @Override
    public boolean readOnly() {
        return readOnly;
    }

    @Override
    public boolean supportsDiscard() {
        return true;
    }

    @Override
    public boolean supportsWriteZeroes() {
        return true;
    }

    /**
     * Opens a channel on {@code ctx}. All channels of one image share one home context (the
     * metadata has one home thread): a channel on a second context while the first still has one
     * open is refused. Home thread of {@code ctx}.
     */
    @Override
    public BlockChannel openChannel(AioContext ctx) {
        ctx.assertHome();
        if (closed) {
            throw new IllegalStateException("qcow2: the image is closed");
        }
        synchronized (this) { // control plane: which context serves the image
            if (home != null && home.ctx != ctx) {
                if (home.channels > 0) {
                    throw new IllegalStateException("qcow2: the image is served on " + home.ctx.name()
                            + "; vblk's qcow2 serves one IoThread per image (give the export one iothread)");
                }
                home = null;
            }
            if (home == null) {
                home = new Qcow2Home(this, ctx);
            }
            home.channels++;
            return new Qcow2Channel(ctx, this, home);
        }
    }

    /** The last channel on {@code h} closed: release its child channels. Home thread of h's context. */
    void channelClosed(Qcow2Home h) {
        synchronized (this) {
            if (--h.channels == 0) {
                h.close();
                if (home == h) {
                    home = null;
                }
            }
        }
    }

    /** Clusters the allocator has handed out up to (for tests and the trim at close). */
    long allocationEnd() {
        return nextFree << clusterBits;
    }

    /**
     * Closes the image: gives back the file space grown past the last allocated cluster, closes the
     * backing drivers it opened itself. The child is left open (its node owns it).
     */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        if (!readOnly && !broken && file.length() > Math.max(openedFileLength, allocationEnd())) {
            try {
                file.resize(Math.max(openedFileLength, allocationEnd()));
            } catch (RuntimeException e) {
                // Only space is lost: the trailing clusters have refcount 0.
                System.getLogger(Qcow2Driver.class.getName()).log(System.Logger.Level.WARNING,
                        "qcow2: cannot trim the image file: " + e.getMessage());
            }
        }
        for (BlockDriver d : owned) {
            d.close();
        }
    }

    @Override
    public String toString() {
        return "qcow2:v" + header.version() + ",cluster=" + clusterSize + ",size=" + header.size() + " on " + file
                + (backing == null ? "" : " backing " + backing);
    }
}
