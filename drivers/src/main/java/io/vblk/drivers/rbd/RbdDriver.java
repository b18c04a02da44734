package io.vblk.drivers.rbd;

import io.vblk.aio.AioContext;
import io.vblk.aio.sys.Errno;
import io.vblk.drivers.BlockChannel;
import io.vblk.drivers.BlockDriver;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Any thread for the accessors; {@link #openChannel} on the context's home thread; open, resize
 * and close block (network round trips) and run on the control plane or a worker, never on an
 * IoThread's request path.
 *
 * <p>A Ceph RBD image through librbd, as QEMU's {@code block/rbd.c}: {@code rados_create2} as
 * {@code client.USER}, the configuration file ({@code conf=}, else librados' default search), an
 * optional {@code key} set as the client's secret, {@code rados_connect}, the pool's I/O context
 * (and namespace), then {@code rbd_open} — or {@code rbd_open_read_only} for a snapshot or a
 * read-only node, which takes no exclusive lock, so any number of daemons can serve the image at
 * once. I/O goes through {@link RbdChannel}s; {@link #resize} is {@code rbd_resize}.
 *
 * <p>Errors from the cluster ({@code -ENOENT}, {@code -EBLOCKLISTED}, {@code -ETIMEDOUT} when
 * {@code rados_osd_op_timeout} is set) fail the request with that errno, which the device maps to
 * an I/O error through its error policy; each distinct errno is logged once per image
 * ({@link #noteError}), never once per request.
 */
public final class RbdDriver implements BlockDriver {
    private static final System.Logger LOG = System.getLogger(RbdDriver.class.getName());
    /** Ceph's EBLOCKLISTED is ESHUTDOWN (include/rados.h: {@code #define EBLOCKLISTED ESHUTDOWN}). */
    public static final int EBLOCKLISTED = 108;

    /** What to open: QEMU's rbd options. {@code conf}, {@code user}, {@code namespace}, {@code snapshot}, {@code key} may be null. */
    public record Options(String pool, String image, String namespace, String snapshot, String conf, String user,
                          String key, boolean readOnly) {
        public Options {
            if (pool == null || pool.isEmpty() || image == null || image.isEmpty()) {
                throw new IllegalArgumentException("rbd: pool and image are required");
            }
        }

        /** The image as {@code rbd} names it: {@code pool/[namespace/]image[@snapshot]}. */
        public String describe() {
            return pool + "/" + (namespace == null || namespace.isEmpty() ? "" : namespace + "/") + image
                    + (snapshot == null ? "" : "@" + snapshot);
        }
    }

    private final Options options;
    private final long cluster;
    private final long ioctx;
    private final long image;
    private final boolean readOnly;
    private volatile long length;
    private volatile boolean closed;
    /** Errnos 0..63 already logged (bit n: errno n), bit 0 for any other; any thread. */
    private final AtomicLong logged = new AtomicLong();

    private RbdDriver(Options options, long cluster, long ioctx, long image, boolean readOnly, long length) {
        this.options = options;
        this.cluster = cluster;
        this.ioctx = ioctx;
        this.image = image;
        this.readOnly = readOnly;
        this.length = length;
    }

    /**
     * Connects and opens the image. Fails with an {@link IllegalArgumentException} naming the image
     * and the step that failed (connect, pool, image) and the errno.
     */
    public static RbdDriver open(Options o) {
        Librbd.requireAvailable();
        boolean ro = o.readOnly() || o.snapshot() != null;
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(ValueLayout.JAVA_LONG);
            String who = "client." + (o.user() == null || o.user().isEmpty() ? "admin" : o.user());
            check(Librbd.radosCreate2(out.address(), "ceph", who), o, "rados_create2 as " + who);
            long cluster = out.get(ValueLayout.JAVA_LONG, 0);
            long ioctx = 0;
            try {
                int r = Librbd.radosConfReadFile(cluster, o.conf());
                if (r < 0 && o.conf() != null) {
                    check(r, o, "reading conf '" + o.conf() + "'");
                }
                // Discard reads back zeroes also inside an object (librbd's default skips partial discards).
                check(Librbd.radosConfSet(cluster, "rbd_skip_partial_discard", "false"), o, "setting rbd_skip_partial_discard");
                if (o.key() != null) {
                    check(Librbd.radosConfSet(cluster, "key", o.key()), o, "setting the key");
                }
                check(Librbd.radosConnect(cluster), o, "connecting to the cluster as " + who);
                check(Librbd.radosIoctxCreate(cluster, o.pool(), out.address()), o, "opening pool '" + o.pool() + "'");
                ioctx = out.get(ValueLayout.JAVA_LONG, 0);
                if (o.namespace() != null) {
                    Librbd.radosIoctxSetNamespace(ioctx, o.namespace());
                }
                r = ro ? Librbd.rbdOpenReadOnly(ioctx, o.image(), out.address(), o.snapshot())
                        : Librbd.rbdOpen(ioctx, o.image(), out.address(), o.snapshot());
                check(r, o, "opening the image" + (ro ? " read-only" : ""));
                long img = out.get(ValueLayout.JAVA_LONG, 0);
                r = Librbd.rbdGetSize(img, out.address());
                if (r < 0) {
                    Librbd.rbdClose(img);
                    check(r, o, "getting its size");
                }
                return new RbdDriver(o, cluster, ioctx, img, ro, out.get(ValueLayout.JAVA_LONG, 0));
            } catch (RuntimeException e) {
                if (ioctx != 0) {
                    Librbd.radosIoctxDestroy(ioctx);
                }
                Librbd.radosShutdown(cluster);
                throw e;
            }
        }
    }

    private static void check(int r, Options o, String step) {
        if (r < 0) {
            throw new IllegalArgumentException("rbd: " + o.describe() + ": " + step + " failed: " + errName(-r));
        }
    }

    static String errName(int errno) {
        return errno == EBLOCKLISTED ? "EBLOCKLISTED" : Errno.name(errno);
    }

    @Override
    public String kind() {
        return "rbd";
    }

    public Options options() {
        return options;
    }

    /** This client's address as the cluster sees it ({@code ceph osd blocklist add ADDR} fences it); null if unknown. */
    public String clientAddress() {
        return Librbd.radosGetaddrs(cluster);
    }

    long image() {
        return image;
    }

    @Override
    public long length() {
        return length;
    }

    /** {@code rbd_resize} then the size librbd reports. Worker thread, node drained. */
    @Override
    public long resize(long newLength) {
        if (closed) {
            throw new IllegalStateException("rbd: " + options.describe() + " is closed");
        }
        if (readOnly) {
            throw new IllegalArgumentException("Block node is read-only");
        }
        int r = Librbd.rbdResize(image, newLength);
        if (r < 0) {
            throw new IllegalArgumentException("rbd: cannot resize " + options.describe() + " to " + newLength + " bytes: "
                    + errName(-r));
        }
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(ValueLayout.JAVA_LONG);
            r = Librbd.rbdGetSize(image, out.address());
            length = r < 0 ? newLength : out.get(ValueLayout.JAVA_LONG, 0);
        }
        return length;
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

    @Override
    public BlockChannel openChannel(AioContext ctx) {
        if (closed) {
            throw new IllegalStateException("rbd: " + options.describe() + " is closed");
        }
        return new RbdChannel(ctx, this);
    }

    /**
     * Logs a failed request's errno the first time this image sees it. Any thread (the channels'
     * home threads); allocation only on the first occurrence.
     */
    void noteError(int op, long offset, long result) {
        int errno = (int) -result;
        long bit = errno > 0 && errno < 64 ? 1L << errno : 1L;
        if ((logged.get() & bit) != 0 || (logged.getAndAccumulate(bit, (v, b) -> v | b) & bit) != 0) {
            return;
        }
        LOG.log(System.Logger.Level.WARNING, "rbd: " + options.describe() + ": " + io.vblk.drivers.BlockIo.opName(op)
                + " at " + offset + " failed: " + errName(errno) + " (further " + errName(errno)
                + " failures of this image are not logged)");
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        Librbd.rbdClose(image);
        Librbd.radosIoctxDestroy(ioctx);
        Librbd.radosShutdown(cluster);
    }

    @Override
    public String toString() {
        return "rbd:" + options.describe() + (readOnly ? ",ro=on" : "");
    }
}
