package io.vblk.tools.repro;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioOptions;
import io.vblk.aio.FdHandler;
import io.vblk.aio.Guard;
import io.vblk.aio.IoThread;
import io.vblk.aio.sys.Errno;
import io.vblk.aio.sys.FileIo;
import io.vblk.aio.sys.UnixSockets;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * Home thread: the caller's (no context's home thread); owns its IoThread (the "main loop").
 *
 * <p>Seed 004: one process serves an export on a UNIX socket and opens an image whose backing file
 * is that very export. The open runs on the main loop's home thread and needs the server's
 * greeting; the export's listener, which must accept the connection and send that greeting, lives
 * on the same loop. With the guard off the open waits for the greeting in a blocking (nested) wait
 * on the home thread: the listener can never run, the wait can never end — caught here by the
 * wait's timeout. With the guard on a blocking wait on a home thread is refused, the open goes on
 * asynchronously from the greeting's arrival, the listener accepts on the loop, and every open
 * completes.
 *
 * <p>Runs on the caller's thread (no context's home thread); owns its IoThread (the "main loop").
 */
public final class NestedWaitDeadlockRepro implements Repro {
    /** The 8-byte greeting the export sends first, as NBD's magic. */
    static final long GREETING = 0x5642_4c4b_4558_5031L; // "VBLKEXP1"

    @Override
    public String hazard() {
        return "nested-wait-deadlock";
    }

    @Override
    public String description() {
        return "seed 004: an open blocks its loop waiting on an export whose listener needs that loop";
    }

    @Override
    public ReproResult run(boolean guardOn, ReproOptions options) throws Exception {
        Path dir = Files.createTempDirectory("vblk-repro-");
        Path sock = dir.resolve("export.sock");
        long deadline = System.nanoTime() + options.timeLimit().toNanos();
        try (IoThread main = IoThread.start("repro-main-loop", AioOptions.DEFAULT)) {
            AioContext ctx = main.ctx();
            ctx.setGuard(Guard.NO_BLOCKING_WAIT, guardOn);
            Export export = AioContext.await(ctx.callOn(() -> new Export(ctx, sock.toString())), options.hangAfter());
            long refused = 0;
            int i = 0;
            try {
                for (; i < Math.min(options.iterations(), 500) && System.nanoTime() - deadline < 0; i++) {
                    Open open = new Open(ctx, sock.toString(), options.hangAfter());
                    ctx.runOn(open::start);
                    try {
                        open.done.get(options.hangAfter().multipliedBy(3).toMillis(), TimeUnit.MILLISECONDS);
                    } catch (java.util.concurrent.ExecutionException e) {
                        return ReproResult.of(hazard(), guardOn, true, i + 1, e.getCause().getMessage())
                                .with("accepted", AioContext.await(ctx.callOn(() -> export.accepted), options.hangAfter()));
                    } catch (TimeoutException e) {
                        return ReproResult.of(hazard(), guardOn, true, i + 1,
                                "the open did not finish within " + options.hangAfter().multipliedBy(3).toMillis() + " ms");
                    }
                    refused += open.refused ? 1 : 0;
                }
            } finally {
                AioContext.await(ctx.callOn(() -> {
                    export.close();
                    return null;
                }), options.hangAfter());
            }
            return ReproResult.of(hazard(), guardOn, false, i,
                            guardOn ? "every open completed: the blocking wait was refused and the open went on asynchronously"
                                    : "no deadlock seen within the bounds")
                    .with("refused_waits", refused);
        } finally {
            Files.deleteIfExists(sock);
            Files.deleteIfExists(dir);
        }
    }

    /**
     * The export's listener: accepts on the loop and greets each client.
     *
     * <p>Home thread: the main loop. No locking.
     */
    static final class Export {
        final int listenFd;
        final FdHandler handler;
        final List<Integer> clients = new ArrayList<>();
        final Arena arena = Arena.ofConfined();
        final MemorySegment greeting = arena.allocate(8);
        int accepted;

        Export(AioContext ctx, String path) {
            listenFd = check(UnixSockets.unixListen(path, 16), "listen on " + path);
            greeting.set(ValueLayout.JAVA_LONG, 0, GREETING);
            handler = ctx.addFdHandler("export-listener", listenFd, fd -> acceptAll());
        }

        private void acceptAll() {
            for (;;) {
                int c = UnixSockets.accept(listenFd);
                if (c == -Errno.EAGAIN) {
                    return;
                }
                check(c, "accept");
                accepted++;
                clients.add(c);
                long n = FileIo.write(c, greeting.address(), 8);
                if (n == -Errno.EPIPE) {
                    continue; // the client gave up and left; nothing to greet
                }
                check((int) n, "greet");
            }
        }

        void close() {
            handler.remove();
            FileIo.close(listenFd);
            for (int c : clients) {
                FileIo.close(c);
            }
            arena.close();
        }
    }

    /**
     * Opening an image backed by the export: connect, wait for the greeting, done.
     *
     * <p>Home thread: the main loop. No locking.
     */
    static final class Open {
        final AioContext ctx;
        final String path;
        final Duration waitBound;
        final CompletableFuture<Void> greeted = new CompletableFuture<>();
        final CompletableFuture<Void> done = new CompletableFuture<>();
        Arena arena;
        MemorySegment buf;
        int fd = -1;
        FdHandler handler;
        boolean refused;

        Open(AioContext ctx, String path, Duration waitBound) {
            this.ctx = ctx;
            this.path = path;
            this.waitBound = waitBound;
        }

        void start() {
            arena = Arena.ofConfined();
            buf = arena.allocate(8);
            fd = check(UnixSockets.unixConnect(path, true), "connect to " + path);
            handler = ctx.addFdHandler("open-client", fd, f -> readGreeting());
            try {
                // The nested wait: fine on a thread that runs no loop, fatal on this one.
                AioContext.await(greeted, waitBound);
                finish(null);
            } catch (IllegalStateException e) {
                refused = true;
                greeted.whenComplete((v, t) -> finish(t));
            } catch (CompletionException e) {
                boolean timedOut = e.getCause() instanceof TimeoutException;
                finish(new IllegalStateException(timedOut
                        ? "deadlock: the open blocked its loop for " + waitBound.toMillis()
                        + " ms waiting for a greeting that the export's listener, on the same loop, could never send"
                        : "open failed: " + e.getCause()));
            }
        }

        private void readGreeting() {
            long n = FileIo.read(fd, buf.address(), 8);
            if (n == -Errno.EAGAIN) {
                return;
            }
            if (n != 8 || buf.get(ValueLayout.JAVA_LONG, 0) != GREETING) {
                greeted.completeExceptionally(new IllegalStateException("bad greeting (" + n + " bytes)"));
            } else {
                greeted.complete(null);
            }
            handler.remove();
        }

        private void finish(Throwable failure) {
            if (!handler.removed()) {
                handler.remove();
            }
            FileIo.close(fd);
            arena.close();
            if (failure == null) {
                done.complete(null);
            } else {
                done.completeExceptionally(failure);
            }
        }
    }

    static int check(int r, String what) {
        if (r < 0) {
            throw new IllegalStateException(what + " failed: " + Errno.name(-r));
        }
        return r;
    }
}
