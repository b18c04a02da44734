package io.vblk.guest.vhost;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioOptions;
import io.vblk.aio.IoThread;
import io.vblk.aio.sys.Errno;
import io.vblk.aio.sys.FileIo;
import io.vblk.virtio.queue.QueueLayout;
import io.vblk.guest.GuestRam;
import io.vblk.guest.GuestTransport;
import io.vblk.virtio.vhost.wire.VhostUserCodec.MemRegion;

import java.time.Duration;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;

/**
 * Any thread that is no context's home thread (the bench's main thread, a test).
 *
 * <p>The guest harness's {@link GuestTransport} over vhost-user: the same emulated guest, workloads
 * and {@code vblk bench} that drive the in-process device drive any vhost-user-blk back-end (vblk's
 * own server, qemu-storage-daemon) through a {@link VhostUserFrontend}. Every call hops onto the
 * front-end's control context and waits there, bounded, for the back-end's answer; fire-and-forget
 * messages (SET_FEATURES, SET_MEM_TABLE, RESET_DEVICE) are waited for with
 * {@link VhostUserFrontend#settled()}, so a refusal surfaces as an exception naming the call.
 *
 * <p>{@link #setMemory} sends the guest RAM's memfd with SET_MEM_TABLE: the region's user address
 * is the RAM's mapping in this process ({@link GuestRam#hostAddress()}), which is what
 * SET_VRING_ADDR carries for the rings laid out in it.
 */
public final class VhostUserTransport implements GuestTransport {
    private final VhostUserFrontend fe;
    private final AioContext ctx;
    private final IoThread ownThread;
    private final Duration timeout;

    private VhostUserTransport(VhostUserFrontend fe, AioContext ctx, IoThread ownThread, Duration timeout) {
        this.fe = fe;
        this.ctx = ctx;
        this.ownThread = ownThread;
        this.timeout = timeout;
    }

    /**
     * Connects to the back-end at {@code socketPath} on a control thread of its own. Throws
     * {@link IllegalStateException} naming the socket and the step that failed.
     */
    public static VhostUserTransport connect(String socketPath, Duration timeout) {
        IoThread t = IoThread.start("vhost-user-frontend", AioOptions.DEFAULT);
        try {
            return connect(t.ctx(), t, socketPath, timeout);
        } catch (RuntimeException e) {
            t.close();
            throw e;
        }
    }

    /** Connects with {@code ctx} as the front-end's control context (its loop must be running). */
    public static VhostUserTransport connect(AioContext ctx, String socketPath, Duration timeout) {
        return connect(ctx, null, socketPath, timeout);
    }

    private static VhostUserTransport connect(AioContext ctx, IoThread own, String socketPath, Duration timeout) {
        VhostUserFrontend.Options o = VhostUserFrontend.Options.defaults().withReplyTimeout(timeout);
        VhostUserFrontend fe;
        try {
            fe = AioContext.await(VhostUserFrontend.connect(ctx, socketPath, o), timeout.multipliedBy(2));
        } catch (CompletionException e) {
            Throwable c = e.getCause() == null ? e : e.getCause();
            throw new IllegalStateException(c.getMessage(), c);
        }
        return new VhostUserTransport(fe, ctx, own, timeout);
    }

    /** The front-end behind this transport (its methods run on {@link #control()}). */
    public VhostUserFrontend frontend() {
        return fe;
    }

    public AioContext control() {
        return ctx;
    }

    @Override
    public int deviceId() {
        return call("deviceId", fe::deviceId);
    }

    @Override
    public long deviceFeatures() {
        return call("deviceFeatures", fe::deviceFeatures);
    }

    @Override
    public void setDriverFeatures(long features) {
        settle("setDriverFeatures", () -> fe.setDriverFeatures(features));
    }

    @Override
    public int numQueues() {
        return call("numQueues", fe::numQueues);
    }

    @Override
    public int maxQueueSize() {
        return call("maxQueueSize", fe::maxQueueSize);
    }

    @Override
    public int configSize() {
        return call("configSize", fe::configSize);
    }

    @Override
    public void readConfig(int offset, byte[] dst, int length) {
        call("readConfig", () -> {
            fe.readConfig(offset, dst, length);
            return null;
        });
    }

    @Override
    public boolean writeConfig(int offset, byte[] src, int length) {
        boolean sent = call("writeConfig", () -> fe.writeConfig(offset, src, length));
        if (!sent) {
            return false;
        }
        try {
            await("writeConfig", call("writeConfig", fe::settled));
            return true;
        } catch (IllegalStateException e) {
            return false;
        }
    }

    @Override
    public void setMemory(GuestRam ram) {
        if (ram.fd() < 0) {
            throw new IllegalArgumentException("guest RAM '" + ram.name() + "' has no fd: a vhost-user back-end can only map"
                    + " memfd RAM (GuestRam.memfd)");
        }
        MemRegion r = new MemRegion(ram.gpaBase(), ram.size(), ram.hostAddress(), 0);
        settle("setMemory", () -> fe.setMemoryTable(List.of(r), new int[]{ram.fd()}));
    }

    @Override
    public void configureQueue(int index, QueueLayout layout) {
        call("configureQueue", () -> {
            fe.configureQueue(index, layout);
            return null;
        });
    }

    /** The back-end gets copies over the socket; the front-end keeps its own dups until replaced or closed. */
    @Override
    public void setQueueFds(int index, int kickFd, int callFd) {
        int kick = dup(kickFd);
        int cfd;
        try {
            cfd = callFd < 0 ? -1 : dup(callFd);
        } catch (RuntimeException e) {
            FileIo.close(kick);
            throw e;
        }
        call("setQueueFds", () -> {
            fe.setQueueFds(index, kick, cfd);
            return null;
        });
    }

    @Override
    public void startQueue(int index) {
        CompletableFuture<Void> started = new CompletableFuture<>();
        call("startQueue", () -> {
            fe.startQueue(index, () -> started.complete(null));
            // A start the back-end refused fails the operation chain: surface it instead of timing out.
            fe.settled().whenComplete((v, e) -> {
                if (e != null) {
                    started.completeExceptionally(e);
                }
            });
            return null;
        });
        await("startQueue(" + index + ")", started);
    }

    @Override
    public int stopQueue(int index) {
        CompletableFuture<Integer> stopped = new CompletableFuture<>();
        call("stopQueue", () -> {
            fe.stopQueue(index, stopped::complete);
            fe.settled().whenComplete((v, e) -> {
                if (e != null) {
                    stopped.completeExceptionally(e);
                }
            });
            return null;
        });
        return await("stopQueue(" + index + ")", stopped);
    }

    @Override
    public void reset() {
        settle("reset", fe::reset);
    }

    @Override
    public String needsResetReason() {
        return call("needsResetReason", () -> fe.needsReset() ? fe.needsResetReason() : null);
    }

    /** Closes the connection (the back-end sees a disconnect) and the control thread if this transport made it. */
    @Override
    public void close() {
        try {
            call("close", () -> {
                fe.close();
                return null;
            });
        } finally {
            if (ownThread != null) {
                ownThread.close();
            }
        }
    }

    private void settle(String what, Runnable r) {
        CompletableFuture<Void> f = call(what, () -> {
            r.run();
            return fe.settled();
        });
        await(what, f);
    }

    private <T> T call(String what, Callable<T> body) {
        return await(what, ctx.callOn(body));
    }

    private <T> T await(String what, CompletableFuture<T> f) {
        try {
            return AioContext.await(f, timeout);
        } catch (CompletionException e) {
            Throwable c = e.getCause() == null ? e : e.getCause();
            while (c instanceof CompletionException && c.getCause() != null) {
                c = c.getCause();
            }
            throw new IllegalStateException("vhost-user " + what + " failed: " + c.getMessage(), c);
        }
    }

    private static int dup(int fd) {
        int d = FileIo.dup(fd);
        if (d < 0) {
            throw new IllegalStateException("dup(" + fd + "): " + Errno.name(-d));
        }
        return d;
    }
}
