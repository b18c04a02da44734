package io.vblk.tools.repro;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioOptions;
import io.vblk.aio.FdHandler;
import io.vblk.aio.Guard;
import io.vblk.aio.IoThread;
import io.vblk.aio.sys.Errno;
import io.vblk.aio.sys.FileIo;
import io.vblk.aio.sys.UnixSockets;
import io.vblk.drivers.node.BlockNode;
import io.vblk.drivers.nullblk.NullDriver;
import io.vblk.virtio.blk.BlkDevice;
import io.vblk.virtio.blk.BlkDeviceConfig;
import io.vblk.virtio.device.IoThreadMapping;
import io.vblk.virtio.vhost.socket.VhostUserExport;
import io.vblk.virtio.vhost.wire.VhostUserRequest;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;

/**
 * Home thread: the caller's (no context's home thread); owns its IoThread (the "main loop").
 *
 * <p>Seed 004: one process serves an export on a UNIX socket and opens an image whose backing file
 * is that very export. The open runs on the main loop's home thread and waits for the server's
 * answer in a nested poll of the loop's AioContext ({@link AioContext#waitWhile}, QEMU's
 * {@code AIO_WAIT_WHILE}). The export here is the product's own {@link VhostUserExport} over a
 * {@link BlkDevice}; the open connects and sends {@code GET_FEATURES}, and its answer needs the
 * export's listener to accept first.
 *
 * <p>With the guard off the listener is registered where QEMU kept the NBD server's before the
 * fix — a main-loop source, which the nested poll never dispatches ({@link AioContext#addListener}):
 * the wait cannot end, and its bound reports the deadlock. With the guard on the listener is on
 * the AioContext, the nested poll accepts, the export answers, and every open completes.
 *
 * <p>{@link Mode#NBD_QCOW2} runs the seed's own setting instead: see {@link NbdQcow2Setting}.
 */
public final class NestedWaitDeadlockRepro implements Repro {
    /** Which setting: the stand-in export (vhost-user), or the seed's own (NBD export + qcow2 over it). */
    public enum Mode {
        /** One vhost-user export and a hand-made open that waits for its answer (the default). */
        VHOST_USER,
        /** {@code vblk serve} with an NBD export and a qcow2 node backed by that export ({@link NbdQcow2Setting}). */
        NBD_QCOW2
    }

    private final Mode mode;

    public NestedWaitDeadlockRepro() {
        this(Mode.VHOST_USER);
    }

    public NestedWaitDeadlockRepro(Mode mode) {
        this.mode = mode;
    }

    private static final String DEADLOCK = "deadlock";
    private static final int HEADER = 12;
    private static final int VERSION_1 = 0x1;
    private static final int REPLY = 0x4;
    private static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    @Override
    public String hazard() {
        return "nested-wait-deadlock";
    }

    @Override
    public String description() {
        return "seed 004: a nested wait on the main loop needs an export whose listener that wait never runs";
    }

    @Override
    public ReproResult run(boolean guardOn, ReproOptions options) throws Exception {
        if (mode == Mode.NBD_QCOW2) {
            return NbdQcow2Setting.run(hazard(), guardOn, options);
        }
        Path dir = Files.createTempDirectory("vblk-repro-");
        Path sock = dir.resolve("backing.sock");
        long deadline = System.nanoTime() + options.timeLimit().toNanos();
        Duration bound = options.hangAfter();
        try (IoThread main = IoThread.start("repro-main-loop", AioOptions.DEFAULT)) {
            AioContext ctx = main.ctx();
            ctx.setGuard(Guard.NO_BLOCKING_WAIT, guardOn);
            Backing backing = AioContext.await(ctx.callOn(() -> new Backing(ctx, sock.toString())), bound);
            int i = 0;
            try {
                for (; i < Math.min(options.iterations(), 500) && System.nanoTime() - deadline < 0; i++) {
                    String failure = AioContext.await(ctx.callOn(() -> open(ctx, sock.toString(), bound)),
                            bound.multipliedBy(3));
                    if (failure != null) {
                        // Only a nested wait that hit its bound is the hazard (the loop's own count,
                        // meter vblk.guard.nested.wait.timeouts); a bad reply shows neither outcome.
                        boolean deadlock = failure.startsWith(DEADLOCK) && ctx.nestedWaitTimeouts() > 0;
                        ReproResult r = deadlock ? ReproResult.of(hazard(), guardOn, true, i + 1, failure)
                                : ReproResult.inconclusive(hazard(), guardOn, i + 1, failure);
                        return r.with("nested_wait_timeouts", ctx.nestedWaitTimeouts())
                                .with("listener", backing.listenerPlacement);
                    }
                }
            } finally {
                AioContext.await(ctx.callOn(() -> {
                    backing.close();
                    return null;
                }), bound);
            }
            long accepted = backing.export.connectionsAccepted();
            return ReproResult.of(hazard(), guardOn, false, i,
                            guardOn ? "every open completed: the nested wait accepted through the listener on the AioContext"
                                    : "no deadlock seen within the bounds")
                    .with("accepted", accepted)
                    .with("nested_waits", ctx.nestedWaits())
                    .with("listener", backing.listenerPlacement);
        } finally {
            Files.deleteIfExists(sock);
            Files.deleteIfExists(dir);
        }
    }

    /**
     * The open: connect, send GET_FEATURES, wait in a nested poll for the answer. Returns null on
     * success, else what went wrong. Main loop.
     */
    public static String open(AioContext ctx, String path, Duration bound) {
        int fd = UnixSockets.unixConnect(path, true);
        if (fd < 0) {
            throw new IllegalStateException("connect to " + path + " failed: " + Errno.name(-fd));
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buf = arena.allocate(HEADER + 8);
            buf.set(U32, 0, VhostUserRequest.GET_FEATURES.id);
            buf.set(U32, 4, VERSION_1);
            buf.set(U32, 8, 0);
            if (FileIo.write(fd, buf.address(), HEADER) != HEADER) {
                return "the open could not send GET_FEATURES";
            }
            int[] got = {0};
            FdHandler reply = ctx.addFdHandler("open-client", fd, f -> {
                long n = FileIo.read(f, buf.address() + got[0], HEADER + 8 - got[0]);
                if (n > 0) {
                    got[0] += (int) n;
                } else if (n != -Errno.EAGAIN) {
                    got[0] = -1;
                }
            });
            try {
                boolean answered = ctx.waitWhile(() -> got[0] >= 0 && got[0] < HEADER + 8, bound);
                if (!answered) {
                    return DEADLOCK + ": the open waited " + bound.toMillis() + " ms in a nested poll of the main loop"
                            + " for an answer the export never sent: its listener is a main-loop source, which the"
                            + " nested poll never dispatches";
                }
                if (got[0] < 0 || (buf.get(U32, 4) & REPLY) == 0
                        || buf.get(U32, 0) != VhostUserRequest.GET_FEATURES.id) {
                    return "the open got no valid GET_FEATURES reply";
                }
                return null;
            } finally {
                reply.remove();
            }
        } finally {
            FileIo.close(fd);
        }
    }

    /**
     * The backing export: a null node behind the product's virtio-blk device and vhost-user export.
     *
     * <p>Home thread: the main loop. No locking.
     */
    static final class Backing {
        final NullDriver driver;
        final BlkDevice device;
        final VhostUserExport export;
        final String listenerPlacement;

        Backing(AioContext ctx, String path) {
            driver = new NullDriver(1L << 30, NullDriver.Completion.ASYNC);
            BlockNode node = new BlockNode("backing", driver, ctx);
            device = new BlkDevice("backing", node, new BlkDeviceConfig().ioThreads(IoThreadMapping.single(ctx)), ctx);
            export = VhostUserExport.listen("backing", ctx, device, path);
            listenerPlacement = ctx.guard(Guard.NO_BLOCKING_WAIT) ? "aio-context" : "main-loop-source";
        }

        void close() {
            export.close(() -> device.close(driver::close));
        }
    }
}
