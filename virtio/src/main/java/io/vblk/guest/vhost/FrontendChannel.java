package io.vblk.guest.vhost;

import io.vblk.aio.AioContext;
import io.vblk.aio.FdHandler;
import io.vblk.aio.Timer;
import io.vblk.aio.sys.Errno;
import io.vblk.aio.sys.FileIo;
import io.vblk.virtio.vhost.socket.VhostUserSocket;
import io.vblk.virtio.vhost.wire.VhostUserCodec;
import io.vblk.virtio.vhost.wire.VhostUserMessage;
import io.vblk.virtio.vhost.wire.VhostUserProtocolException;
import io.vblk.virtio.vhost.wire.VhostUserRequest;

import java.time.Duration;
import java.util.ArrayDeque;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.function.Consumer;
import java.util.function.Supplier;

/**
 * Home thread: the front-end's control {@link AioContext}. No locking.
 *
 * <p>The front-end's side of the conversation: requests go out through the shared
 * {@link VhostUserSocket} (the same frame reader/writer vblk's server reads them with), replies
 * come back through it on the context's fd handler and are matched to their requests in order.
 * Operations run as a serial chain, so an operation's messages are never interleaved with
 * another's. Nothing blocks: a back-end that does not answer within the reply timeout, sends a
 * malformed or unexpected reply, or hangs up makes the channel <em>broken</em>: every waiting and
 * later operation fails with the reason, and {@code onBroken} hears it once.
 */
final class FrontendChannel {
    private static final System.Logger LOG = System.getLogger(FrontendChannel.class.getName());

    private record Waiting(VhostUserRequest request, CompletableFuture<VhostUserMessage> reply) {
    }

    private final String name;
    private final AioContext ctx;
    private final VhostUserSocket socket;
    private final Duration replyTimeout;
    private final Consumer<String> onBroken;
    private final ArrayDeque<Waiting> waiting = new ArrayDeque<>();
    private final Timer replyTimer;
    private FdHandler fdHandler;
    private CompletableFuture<?> tail = CompletableFuture.completedFuture(null);
    /** REPLY_ACK negotiated: requests without a reply of their own are acknowledged. */
    private boolean replyAck;
    private String brokenReason;
    private boolean closed;

    /** Starts reading replies from {@code socket} (owned from now on). Home thread. */
    FrontendChannel(String name, AioContext ctx, VhostUserSocket socket, Duration replyTimeout, Consumer<String> onBroken) {
        ctx.assertHome();
        this.name = name;
        this.ctx = ctx;
        this.socket = socket;
        this.replyTimeout = replyTimeout;
        this.onBroken = onBroken;
        this.replyTimer = ctx.timer(name + " reply timeout", this::replyTimedOut);
        this.fdHandler = ctx.addFdHandler(name + " socket", socket.fd(), ignored -> readable());
    }

    void setReplyAck(boolean on) {
        replyAck = on;
    }

    /** Why the back-end is considered broken, or null. */
    String brokenReason() {
        return brokenReason;
    }

    // ---------------------------------------------------------------- operations

    /** Runs {@code op} after every earlier operation; fails at once when closed or broken. */
    <T> CompletableFuture<T> serial(Supplier<CompletableFuture<T>> op) {
        CompletableFuture<T> r = tail.handle((v, e) -> null).thenCompose(x -> {
            if (closed || brokenReason != null) {
                return CompletableFuture.failedFuture(new IllegalStateException(
                        closed ? name + " is closed" : name + " needs reset: " + brokenReason));
            }
            return op.get();
        });
        tail = r;
        return r;
    }

    /** Runs {@code op} serially; its failure breaks the channel, naming {@code what}. */
    void background(String what, Supplier<CompletableFuture<Void>> op) {
        serial(op).whenComplete((v, e) -> {
            if (e != null) {
                broken(what + ": " + rootMessage(e));
            }
        });
    }

    /** Completes once every operation asked for so far has been answered (or exceptionally, with the reason). */
    CompletableFuture<Void> settled() {
        return serial(() -> CompletableFuture.completedFuture(null));
    }

    /** Sends a message with no reply expected. */
    void send(VhostUserRequest r, byte[] payload, int... fds) {
        write(VhostUserMessage.request(r, false, payload, fds));
    }

    /** Sends a request with a reply of its own and returns the reply. */
    CompletableFuture<VhostUserMessage> call(VhostUserRequest r, byte[] payload, int... fds) {
        return expect(r, VhostUserMessage.request(r, false, payload, fds));
    }

    /**
     * Sends a request without a reply of its own and completes once the back-end has processed it:
     * with REPLY_ACK by NEED_REPLY and the ack (non-zero = refused), else (as QEMU does) by a
     * GET_FEATURES round trip behind it.
     */
    CompletableFuture<Void> callAck(VhostUserRequest r, byte[] payload, int... fds) {
        if (!replyAck) {
            send(r, payload, fds);
            return sync();
        }
        return expect(r, VhostUserMessage.request(r, true, payload, fds)).thenAccept(reply -> {
            long v = u64(reply);
            if (v != 0) {
                throw new CompletionException(new IllegalStateException(r.describe() + " refused by the back-end (ack " + v + ")"));
            }
        });
    }

    /** A GET_FEATURES round trip: every message sent before it has been processed. */
    CompletableFuture<Void> sync() {
        return call(VhostUserRequest.GET_FEATURES, new byte[0]).thenAccept(r -> { });
    }

    private CompletableFuture<VhostUserMessage> expect(VhostUserRequest r, VhostUserMessage m) {
        CompletableFuture<VhostUserMessage> f = new CompletableFuture<>();
        waiting.add(new Waiting(r, f));
        replyTimer.armIn(replyTimeout.toNanos());
        write(m);
        return f;
    }

    private void write(VhostUserMessage m) {
        if (closed) {
            throw new CompletionException(new IllegalStateException(name + " is closed"));
        }
        long n = socket.send(m);
        if (n < 0) {
            String why = "sending " + m.describe() + " failed: "
                    + (n == -Errno.EAGAIN ? "the back-end does not read (socket buffer full)" : Errno.name((int) -n));
            broken(why);
            throw new CompletionException(new IllegalStateException(why));
        }
    }

    // ---------------------------------------------------------------- replies

    private void readable() {
        while (!closed && brokenReason == null) {
            VhostUserMessage m;
            try {
                m = socket.receive();
            } catch (VhostUserProtocolException e) {
                broken("malformed reply: " + e.getMessage());
                return;
            } catch (VhostUserSocket.PeerGoneException e) {
                broken(e.errno == 0 ? "the back-end closed the connection" : "recvmsg failed: " + Errno.name(e.errno));
                return;
            }
            if (m == null) {
                return;
            }
            Waiting w = waiting.poll();
            if (w == null || w.request.id != m.request()) {
                for (int f : m.fds()) {
                    FileIo.close(f);
                }
                broken("unexpected reply " + m.describe() + (w == null ? " (no request outstanding)"
                        : " while waiting for a reply to " + w.request.describe()));
                return;
            }
            if (waiting.isEmpty()) {
                replyTimer.cancel();
            } else {
                replyTimer.armIn(replyTimeout.toNanos());
            }
            w.reply.complete(m);
        }
    }

    private void replyTimedOut() {
        Waiting w = waiting.peek();
        if (w != null) {
            broken("no reply to " + w.request.describe() + " within " + replyTimeout);
        }
    }

    /** Marks the back-end broken (once): stops reading, fails every waiting operation, tells {@code onBroken}. */
    void broken(String reason) {
        if (brokenReason != null || closed) {
            return;
        }
        brokenReason = reason;
        LOG.log(System.Logger.Level.WARNING, () -> name + ": " + reason);
        stopReading();
        failWaiting(new IllegalStateException(reason));
        onBroken.accept(reason);
    }

    private void stopReading() {
        replyTimer.cancel();
        if (fdHandler != null) {
            fdHandler.remove();
            fdHandler = null;
        }
    }

    private void failWaiting(RuntimeException e) {
        Waiting w;
        while ((w = waiting.poll()) != null) {
            w.reply.completeExceptionally(e);
        }
    }

    /** Closes the socket (the back-end sees a disconnect) and fails every waiting operation. Home thread. */
    void close() {
        ctx.assertHome();
        if (closed) {
            return;
        }
        closed = true;
        stopReading();
        socket.close();
        failWaiting(new IllegalStateException(name + " closed"));
    }

    // ---------------------------------------------------------------- decoding replies

    interface Decoder<T> {
        T decode() throws VhostUserProtocolException;
    }

    /** Runs a payload decoder inside an operation: a failure fails the operation as a malformed reply. */
    static <T> T decode(Decoder<T> d) {
        try {
            return d.decode();
        } catch (VhostUserProtocolException e) {
            throw new CompletionException(new IllegalStateException("malformed reply: " + e.getMessage()));
        }
    }

    static long u64(VhostUserMessage r) {
        return decode(() -> VhostUserCodec.decodeU64(r));
    }

    static String rootMessage(Throwable e) {
        while ((e instanceof CompletionException || e instanceof java.util.concurrent.ExecutionException) && e.getCause() != null) {
            e = e.getCause();
        }
        return e.getMessage() != null ? e.getMessage() : e.toString();
    }
}
