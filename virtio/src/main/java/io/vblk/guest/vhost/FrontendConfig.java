package io.vblk.guest.vhost;

import io.vblk.aio.AioContext;
import io.vblk.virtio.vhost.wire.VhostUserCodec;
import io.vblk.virtio.vhost.wire.VhostUserMessageLayout;
import io.vblk.virtio.vhost.wire.VhostUserRequest;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static io.vblk.virtio.vhost.wire.VhostUserProtocolFeature.BACKEND_REQ;
import static io.vblk.virtio.vhost.wire.VhostUserProtocolFeature.CONFIG;
import static io.vblk.virtio.vhost.wire.VhostUserProtocolFeature.has;

/**
 * Home thread: the front-end's context. No locking.
 *
 * <p>The front-end's view of the back-end's config space: the bytes GET_CONFIG returned at connect
 * ({@link FrontendNegotiation}), SET_CONFIG for writes, and — with BACKEND_REQ and CONFIG
 * negotiated — the backend channel ({@link FrontendBackendChannel}) on which the back-end says the
 * space changed (a resize); the bytes are then re-read and the listeners told.
 */
final class FrontendConfig implements AutoCloseable {
    private final String name;
    private final AioContext ctx;
    private final FrontendChannel channel;
    private final FrontendNegotiation negotiated;
    private final List<Runnable> listeners = new ArrayList<>();
    private FrontendBackendChannel backend;

    FrontendConfig(String name, AioContext ctx, FrontendChannel channel, FrontendNegotiation negotiated) {
        this.name = name;
        this.ctx = ctx;
        this.channel = channel;
        this.negotiated = negotiated;
    }

    /** After negotiation: opens the backend channel when BACKEND_REQ and CONFIG were negotiated. */
    void opened(int configBytes) {
        if (has(negotiated.protocolFeatures, BACKEND_REQ) && has(negotiated.protocolFeatures, CONFIG)) {
            backend = FrontendBackendChannel.open(name, ctx, channel, negotiated, configBytes,
                    () -> List.copyOf(listeners).forEach(Runnable::run));
        }
    }

    void onChange(Runnable listener) {
        listeners.add(listener);
    }

    /** CONFIG_CHANGE_MSG messages handled so far (0 without a backend channel). */
    long changes() {
        return backend == null ? 0 : backend.configChanges();
    }

    long capacitySectors() {
        byte[] c = negotiated.config;
        return c.length >= 8 ? VhostUserMessageLayout.getLong(MemorySegment.ofArray(c), 0) : -1;
    }

    int numQueues() {
        byte[] c = negotiated.config;
        return c.length >= 36 ? VhostUserMessageLayout.getU16(MemorySegment.ofArray(c), 34) : -1;
    }

    void read(int offset, byte[] dst, int length) {
        byte[] config = negotiated.config;
        if (offset < 0 || length < 0 || offset + length > config.length) {
            throw new IndexOutOfBoundsException("config read of " + length + " bytes at " + offset + ", config space is "
                    + config.length + " bytes");
        }
        System.arraycopy(config, offset, dst, 0, length);
    }

    boolean write(int offset, byte[] src, int length) {
        byte[] config = negotiated.config;
        if (!has(negotiated.protocolFeatures, CONFIG) || offset < 0 || length < 0 || offset + length > config.length) {
            return false;
        }
        byte[] data = Arrays.copyOf(src, length);
        System.arraycopy(data, 0, config, offset, length);
        channel.background("SET_CONFIG", () -> channel.callAck(VhostUserRequest.SET_CONFIG, VhostUserCodec.config(offset, 0, data)));
        return true;
    }

    @Override
    public void close() {
        if (backend != null) {
            backend.close();
        }
    }
}
