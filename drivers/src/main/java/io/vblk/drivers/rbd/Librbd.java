package io.vblk.drivers.rbd;

import com.sun.jna.Callback;
import com.sun.jna.CallbackReference;
import com.sun.jna.CallbackThreadInitializer;
import com.sun.jna.Native;
import com.sun.jna.NativeLibrary;
import com.sun.jna.Pointer;

/**
 * Any thread; each call's contract is librados'/librbd's own (an image handle is used by one
 * channel's home thread for I/O, by the control plane for open, resize and close).
 *
 * <p>The one facade over Ceph's client libraries ({@code librados.so.2}, {@code librbd.so.1} from
 * Debian's {@code librados2}/{@code librbd1}), through JNA direct mapping. Handles ({@code rados_t},
 * {@code rados_ioctx_t}, {@code rbd_image_t}, {@code rbd_completion_t}) and pointers are plain
 * {@code long} addresses, so nothing is wrapped per call; every call returns its result or
 * {@code -errno}, as the libraries do (librbd.h, librados.h of Ceph 16). The library is loaded on
 * first use; a missing one fails with a message naming the package ({@link #available()}).
 *
 * <p>The completion callback is <em>one</em> long-lived JNA callback for the whole process
 * ({@link #completionCallback}): its native address is taken once and passed as a plain pointer to
 * {@code rbd_aio_create_completion}, so no callback object is looked up per request, and the
 * librbd threads that run it stay attached to the JVM ({@link CallbackThreadInitializer}).
 */
public final class Librbd {
    /** {@code rbd_callback_t}: {@code void (*)(rbd_completion_t cb, void *arg)}. Runs on a librbd thread. */
    public interface CompletionCallback extends Callback {
        void invoke(long completion, long arg);
    }

    private static final String LOAD_ERROR;

    static {
        String err = null;
        try {
            Native.register(Rados.class, NativeLibrary.getInstance("librados.so.2"));
            Native.register(Rbd.class, NativeLibrary.getInstance("librbd.so.1"));
        } catch (UnsatisfiedLinkError e) {
            err = "rbd: cannot load librbd/librados (" + e.getMessage() + "); install Debian's librbd1"
                    + " (scripts/install-test-deps.sh installs it for the tests)";
        }
        LOAD_ERROR = err;
    }

    private static volatile CompletionCallback callback;
    private static volatile long callbackAddress;

    private Librbd() {
    }

    /** Fails with an {@link IllegalArgumentException} naming the package when the libraries are missing. */
    public static void requireAvailable() {
        if (LOAD_ERROR != null) {
            throw new IllegalArgumentException(LOAD_ERROR);
        }
    }

    public static boolean available() {
        return LOAD_ERROR == null;
    }

    /**
     * Installs the process-wide completion callback once and returns its native address; later
     * calls return the same address (the first callback stays). Any thread.
     */
    public static synchronized long completionCallback(CompletionCallback cb) {
        requireAvailable();
        if (callback == null) {
            // daemon threads, attached once and kept attached (librbd's few finisher threads).
            Native.setCallbackThreadInitializer(cb, new CallbackThreadInitializer(true, false, "librbd-completion"));
            callbackAddress = Pointer.nativeValue(CallbackReference.getFunctionPointer(cb));
            callback = cb;
        }
        return callbackAddress;
    }

    // ---------------------------------------------------------------- librados

    /** {@code rados_create2(&cluster, clustername, name, flags)}; writes the handle to {@code out}. */
    public static int radosCreate2(long out, String clusterName, String name) {
        requireAvailable();
        return Rados.rados_create2(out, clusterName, name, 0);
    }

    /** {@code rados_conf_read_file}; a null path searches the default locations. */
    public static int radosConfReadFile(long cluster, String path) {
        return Rados.rados_conf_read_file(cluster, path);
    }

    public static int radosConfSet(long cluster, String option, String value) {
        return Rados.rados_conf_set(cluster, option, value);
    }

    /** Blocks until connected (bounded by the client's {@code client_mount_timeout}). */
    public static int radosConnect(long cluster) {
        return Rados.rados_connect(cluster);
    }

    public static void radosShutdown(long cluster) {
        Rados.rados_shutdown(cluster);
    }

    /** {@code rados_getaddrs}: this client's messenger address(es), as {@code ceph osd blocklist} takes them; null on error. */
    public static String radosGetaddrs(long cluster) {
        try (java.lang.foreign.Arena a = java.lang.foreign.Arena.ofConfined()) {
            java.lang.foreign.MemorySegment out = a.allocate(java.lang.foreign.ValueLayout.JAVA_LONG);
            if (Rados.rados_getaddrs(cluster, out.address()) < 0) {
                return null;
            }
            long p = out.get(java.lang.foreign.ValueLayout.JAVA_LONG, 0);
            String s = new Pointer(p).getString(0);
            Rados.rados_buffer_free(p);
            return s;
        }
    }

    public static int radosIoctxCreate(long cluster, String pool, long out) {
        return Rados.rados_ioctx_create(cluster, pool, out);
    }

    public static void radosIoctxSetNamespace(long ioctx, String namespace) {
        Rados.rados_ioctx_set_namespace(ioctx, namespace);
    }

    public static void radosIoctxDestroy(long ioctx) {
        Rados.rados_ioctx_destroy(ioctx);
    }

    // ---------------------------------------------------------------- librbd: images

    /** {@code rbd_open} (read-write, takes part in the exclusive lock); a null snapshot is the head. */
    public static int rbdOpen(long ioctx, String name, long out, String snapshot) {
        return Rbd.rbd_open(ioctx, name, out, snapshot);
    }

    /** {@code rbd_open_read_only}: no exclusive lock, any number of readers. */
    public static int rbdOpenReadOnly(long ioctx, String name, long out, String snapshot) {
        return Rbd.rbd_open_read_only(ioctx, name, out, snapshot);
    }

    public static int rbdClose(long image) {
        return Rbd.rbd_close(image);
    }

    /** {@code rbd_get_size(image, &size)}; writes the size to {@code out}. */
    public static int rbdGetSize(long image, long out) {
        return Rbd.rbd_get_size(image, out);
    }

    public static int rbdResize(long image, long size) {
        return Rbd.rbd_resize(image, size);
    }

    // ---------------------------------------------------------------- librbd: asynchronous I/O

    /** {@code rbd_aio_create_completion(arg, cb, &c)} with the address from {@link #completionCallback}. */
    public static int rbdAioCreateCompletion(long arg, long callbackAddress, long out) {
        return Rbd.rbd_aio_create_completion(arg, callbackAddress, out);
    }

    /** Reads into the caller's iovecs (guest memory): no copy. */
    public static long rbdAioReadv(long image, long iov, int iovcnt, long off, long completion) {
        return Rbd.rbd_aio_readv(image, iov, iovcnt, off, completion);
    }

    /** Writes from the caller's iovecs (guest memory): no copy. */
    public static long rbdAioWritev(long image, long iov, int iovcnt, long off, long completion) {
        return Rbd.rbd_aio_writev(image, iov, iovcnt, off, completion);
    }

    public static int rbdAioFlush(long image, long completion) {
        return Rbd.rbd_aio_flush(image, completion);
    }

    public static int rbdAioDiscard(long image, long off, long len, long completion) {
        return Rbd.rbd_aio_discard(image, off, len, completion);
    }

    public static int rbdAioWriteZeroes(long image, long off, long len, long completion) {
        return Rbd.rbd_aio_write_zeroes(image, off, len, completion, 0, 0);
    }

    public static long rbdAioGetReturnValue(long completion) {
        return Rbd.rbd_aio_get_return_value(completion);
    }

    public static void rbdAioRelease(long completion) {
        Rbd.rbd_aio_release(completion);
    }

    /** Any thread. librados.h. */
    private static final class Rados {
        static native int rados_create2(long pcluster, String clustername, String name, long flags);

        static native int rados_conf_read_file(long cluster, String path);

        static native int rados_conf_set(long cluster, String option, String value);

        static native int rados_connect(long cluster);

        static native void rados_shutdown(long cluster);

        static native int rados_getaddrs(long cluster, long addrs);

        static native void rados_buffer_free(long buf);

        static native int rados_ioctx_create(long cluster, String poolName, long ioctx);

        static native void rados_ioctx_set_namespace(long ioctx, String nspace);

        static native void rados_ioctx_destroy(long ioctx);
    }

    /** Any thread. librbd.h. */
    private static final class Rbd {
        static native int rbd_open(long ioctx, String name, long image, String snapName);

        static native int rbd_open_read_only(long ioctx, String name, long image, String snapName);

        static native int rbd_close(long image);

        static native int rbd_get_size(long image, long size);

        static native int rbd_resize(long image, long size);

        static native int rbd_aio_create_completion(long cbArg, long completeCb, long c);

        static native long rbd_aio_readv(long image, long iov, int iovcnt, long off, long c);

        static native long rbd_aio_writev(long image, long iov, int iovcnt, long off, long c);

        static native int rbd_aio_flush(long image, long c);

        static native int rbd_aio_discard(long image, long off, long len, long c);

        static native int rbd_aio_write_zeroes(long image, long off, long len, long c, int zeroFlags, int opFlags);

        static native long rbd_aio_get_return_value(long c);

        static native void rbd_aio_release(long c);
    }
}
