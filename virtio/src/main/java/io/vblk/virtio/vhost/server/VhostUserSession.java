package io.vblk.virtio.vhost.server;

import io.vblk.aio.AioContext;
import io.vblk.virtio.device.VirtioDevice;
import io.vblk.virtio.memory.GuestMemory;
import io.vblk.virtio.vhost.wire.VhostUserCodec;
import io.vblk.virtio.vhost.wire.VhostUserMessage;
import io.vblk.virtio.vhost.wire.VhostUserProtocolException;
import io.vblk.virtio.vhost.wire.VhostUserProtocolFeature;
import io.vblk.virtio.vhost.wire.VhostUserRequest;

import java.util.List;
import java.util.function.IntConsumer;

import static io.vblk.virtio.vhost.wire.VhostUserRequest.*;

/**
 * Home thread: the control context the device lives on (the connection's). No locking.
 *
 * <p>The back-end side of one vhost-user session: dispatches each front-end message, already
 * checked against the framer's table, to the typed handler of its request —
 * {@link FeaturesHandler}, {@link MemoryHandler}, {@link VringHandler}, {@link ConfigHandler},
 * {@link InflightHandler}, {@link StatusHandler} — which checks its meaning before it changes
 * anything and applies it to a device known only as a {@link VirtioDevice} (STYLE rule 8; no
 * socket here). A violation is a {@link VhostUserProtocolException} naming it, and the connection
 * closes.
 *
 * <p>A change the running device queues cannot take in place (new memory table, new ring address
 * or fds, disable, reset) first stops them ({@link #stopThen}); until they report their in-flight
 * requests done the message is <em>pending</em>: {@link #handle} returned false, the connection
 * reads nothing more, and the session later sends the reply (or REPLY_ACK) and calls
 * {@link Channel#resume()}. The loop never blocks.
 */
public final class VhostUserSession {
    private static final System.Logger LOG = System.getLogger(VhostUserSession.class.getName());

    /** What the session needs of its connection. Home thread. */
    public interface Channel {
        /** Sends a reply now. */
        void send(VhostUserMessage reply);

        /** A pending message has finished: read and handle the next one. */
        void resume();

        /** Closes the connection, logging {@code reason} once. */
        void fail(String reason);

        /** SET_BACKEND_REQ_FD: the backend channel's socket (owned by the channel from now on; replaces an older one). */
        void backendChannel(int fd);

        /**
         * Sends VHOST_USER_BACKEND_CONFIG_CHANGE_MSG on the backend channel, asking for a reply when
         * {@code needReply}. Returns false when there is no backend channel (or it failed).
         */
        boolean sendConfigChange(boolean needReply);
    }

    /** Protocol features offered (see {@link FeaturesHandler}). */
    public static final long OFFERED_PROTOCOL_FEATURES = FeaturesHandler.OFFERED_PROTOCOL_FEATURES;
    /** GET_MAX_MEM_SLOTS (see {@link MemoryHandler}). */
    public static final int MAX_MEM_SLOTS = MemoryHandler.MAX_MEM_SLOTS;

    /** A step that completes a pending message; returns the reply to send, or null for "ack if asked". */
    @FunctionalInterface
    interface Finish {
        VhostUserMessage run() throws VhostUserProtocolException;
    }

    private final String name;
    private final AioContext ctx;
    private final VirtioDevice device;
    private final Channel channel;
    private final Vrings vrings;
    private final FeaturesHandler features;
    private final MemoryHandler memory;
    private final InflightHandler inflight;
    private final LogHandler log;
    private final RequestHandler[] handlers = new RequestHandler[64];
    private boolean pending;
    private boolean closed;

    /**
     * @param name the connection's name, for log lines
     * @param ctx  the control context the device lives on
     */
    String name() {
        return name;
    }

    public VhostUserSession(String name, AioContext ctx, VirtioDevice device, Channel channel) {
        this.name = name;
        this.ctx = ctx;
        this.device = device;
        this.channel = channel;
        this.vrings = new Vrings(name, ctx, device);
        this.features = new FeaturesHandler(this, vrings, device);
        this.memory = new MemoryHandler(this, vrings, device);
        this.inflight = new InflightHandler(this, name, vrings);
        this.log = new LogHandler(this, name, vrings, features::protocolFeatures);
        VringHandler vring = new VringHandler(this, vrings, device);
        ConfigHandler config = new ConfigHandler(this, name, device);
        StatusHandler status = new StatusHandler(this, vrings, device, features);

        on(GET_FEATURES, features::getFeatures);
        on(SET_FEATURES, features::setFeatures);
        on(GET_PROTOCOL_FEATURES, features::getProtocolFeatures);
        on(SET_PROTOCOL_FEATURES, features::setProtocolFeatures);
        on(SET_OWNER, features::setOwner);
        on(SET_BACKEND_REQ_FD, features::setBackendReqFd);
        on(GET_QUEUE_NUM, features::getQueueNum);
        on(SET_MEM_TABLE, memory::setMemTable);
        on(ADD_MEM_REG, memory::addMemReg);
        on(REM_MEM_REG, memory::remMemReg);
        on(GET_MAX_MEM_SLOTS, memory::getMaxMemSlots);
        on(SET_LOG_BASE, log::setLogBase);
        on(SET_LOG_FD, log::setLogFd);
        on(SET_VRING_NUM, vring::setVringNum);
        on(SET_VRING_BASE, vring::setVringBase);
        on(SET_VRING_ADDR, vring::setVringAddr);
        on(GET_VRING_BASE, vring::getVringBase);
        on(SET_VRING_KICK, vring::setVringFd);
        on(SET_VRING_CALL, vring::setVringFd);
        on(SET_VRING_ERR, vring::setVringFd);
        on(SET_VRING_ENABLE, vring::setVringEnable);
        on(GET_CONFIG, config::getConfig);
        on(SET_CONFIG, config::setConfig);
        on(GET_INFLIGHT_FD, inflight::getInflightFd);
        on(SET_INFLIGHT_FD, inflight::setInflightFd);
        on(RESET_DEVICE, status::resetDevice);
        on(RESET_OWNER, status::resetOwner);
        on(SET_STATUS, status::setStatus);
        on(GET_STATUS, status::getStatus);
        for (VhostUserRequest r : VhostUserRequest.values()) {
            if (r.served != (handlers[r.id] != null)) {
                throw new IllegalStateException(r.describe() + ": the table says served=" + r.served
                        + " but the session " + (r.served ? "has no" : "has a") + " handler");
            }
        }
    }

    private void on(VhostUserRequest r, RequestHandler h) {
        handlers[r.id] = h;
    }

    /** True while a message waits for the device (queues stopping). */
    public boolean pending() {
        return pending;
    }

    public long protocolFeatures() {
        return features.protocolFeatures();
    }

    /** Whether queue {@code q}'s device queue is running (tests, diagnostics). */
    public boolean ringRunning(int q) {
        return vrings.get(q).run == VringState.Run.RUNNING;
    }

    /**
     * Handles one message. Returns true when it is finished (any reply sent), false when it is
     * pending. The message's fds are consumed: handed on, or closed, also on a protocol error.
     */
    public boolean handle(VhostUserMessage m) throws VhostUserProtocolException {
        ctx.assertHome();
        MessageFds fds = new MessageFds(m);
        try {
            if (pending || closed) {
                throw new IllegalStateException(name + ": " + m.describe() + " handed over while "
                        + (closed ? "closed" : "a message is pending"));
            }
            VhostUserRequest r = m.kind();
            RequestHandler h = r != null ? handlers[r.id] : null;
            if (h == null) {
                // The framer's table refuses these first; a message built elsewhere gets the same answer.
                throw new VhostUserProtocolException(m.describe() + " is not served");
            }
            return h.handle(m, fds);
        } finally {
            fds.closeUntaken();
        }
    }

    // ---------------------------------------------------------------- replies (for the handlers)

    boolean reply(VhostUserMessage m, byte[] payload, int... fds) {
        channel.send(VhostUserMessage.reply(m.request(), payload, fds));
        return true;
    }

    /**
     * REPLY_ACK: "the back-end MUST respond with a Payload VhostUserMsg indicating success or
     * failure. The payload should be set to zero on success or non-zero on failure". Sent when
     * the front-end set NEED_REPLY on a message without a reply of its own.
     */
    boolean ack(VhostUserMessage m, boolean ok) {
        VhostUserRequest r = m.kind();
        if (m.needReply() && (r == null || !r.hasReply)) {
            channel.send(VhostUserMessage.reply(m.request(), VhostUserCodec.u64(ok ? 0 : 1)));
        }
        return true;
    }

    /**
     * Stops {@code queues}, then runs {@code finish} and replies (its reply, or the REPLY_ACK when
     * asked). Returns true when that all happened at once (no queue was running), false when the
     * message is pending; then the reply and {@link Channel#resume()} follow from the device's
     * callbacks. If the connection closes meanwhile, {@code abandon} (if any) runs instead.
     */
    boolean stopThen(VhostUserMessage m, int[] queues, Finish finish, Runnable abandon) throws VhostUserProtocolException {
        int[] left = {queues.length + 1}; // +1: nothing completes before every stop was asked for
        boolean[] async = {false};
        VhostUserProtocolException[] syncError = {null};
        Runnable complete = () -> {
            if (closed) {
                if (abandon != null) {
                    abandon.run();
                }
                return;
            }
            try {
                VhostUserMessage reply = finish.run();
                pending = false;
                if (reply != null) {
                    channel.send(reply);
                } else {
                    ack(m, true);
                }
                if (async[0]) {
                    channel.resume();
                }
            } catch (VhostUserProtocolException e) {
                pending = false;
                if (!async[0]) {
                    syncError[0] = e;
                    return;
                }
                channel.fail("malformed message: " + e.getMessage());
            } catch (RuntimeException e) {
                pending = false;
                if (!async[0]) {
                    throw e;
                }
                LOG.log(System.Logger.Level.ERROR, name + ": completing " + m.describe() + " failed", e);
                channel.fail("internal error completing " + m.describe() + ": " + e);
            }
        };
        IntConsumer down = ignored -> {
            if (--left[0] == 0) {
                complete.run();
            }
        };
        pending = true;
        for (int q : queues) {
            vrings.stop(q, down);
        }
        down.accept(0);
        if (syncError[0] != null) {
            throw syncError[0];
        }
        if (!pending) {
            return true;
        }
        async[0] = true;
        return false;
    }

    // ---------------------------------------------------------------- device events and teardown

    void backendChannel(int fd) {
        channel.backendChannel(fd);
    }

    /**
     * The device's config space changed (a resize): tell the front-end with
     * VHOST_USER_BACKEND_CONFIG_CHANGE_MSG, which needs CONFIG (the front-end re-reads with
     * GET_CONFIG) and BACKEND_REQ with the channel set; NEED_REPLY when REPLY_ACK was negotiated
     * ("the front-end must respond with zero when operation is successfully completed").
     * Returns whether the message went out.
     */
    public boolean deviceConfigChanged() {
        ctx.assertHome();
        long p = features.protocolFeatures();
        if (closed || !VhostUserProtocolFeature.has(p, VhostUserProtocolFeature.CONFIG)
                || !VhostUserProtocolFeature.has(p, VhostUserProtocolFeature.BACKEND_REQ)) {
            LOG.log(System.Logger.Level.INFO, () -> name + ": config changed; the front-end did not negotiate CONFIG"
                    + " and BACKEND_REQ, so it is not told (it sees the change at its next GET_CONFIG)");
            return false;
        }
        return channel.sendConfigChange(VhostUserProtocolFeature.has(p, VhostUserProtocolFeature.REPLY_ACK));
    }

    /**
     * The device entered NEEDS_RESET: signal every queue's error eventfd (SET_VRING_ERR, "to
     * signal when error occurs"); GET_STATUS reports the NEEDS_RESET bit.
     */
    public void deviceNeedsReset() {
        ctx.assertHome();
        vrings.signalErrors();
    }

    /**
     * The connection is gone (at any moment: between messages, mid-message, while a message is
     * pending, with requests in flight): stops every queue, waits for in-flight requests, resets
     * the device, drops the memory map and every fd, then runs {@code onQuiesced}.
     */
    public void disconnect(Runnable onQuiesced) {
        ctx.assertHome();
        if (closed) {
            throw new IllegalStateException(name + ": disconnected twice");
        }
        closed = true;
        int[] left = {vrings.count() + 1};
        IntConsumer down = ignored -> {
            if (--left[0] == 0) {
                teardown();
                onQuiesced.run();
            }
        };
        for (int q = 0; q < vrings.count(); q++) {
            vrings.stop(q, down);
        }
        down.accept(0);
    }

    private void teardown() {
        device.reset();
        // Hand the device an empty map so it lets go of the session's mappings now, not at the next session.
        GuestMemory none = GuestMemory.of(List.of());
        device.setMemory(none);
        none.release();
        memory.release();
        vrings.closeFds();
        inflight.close();
        log.close();
        pending = false;
    }
}
