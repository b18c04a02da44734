package io.vblk.virtio.vhost.wire;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;

import static io.vblk.virtio.vhost.wire.VhostUserMessageLayout.FLAG_NEED_REPLY;
import static io.vblk.virtio.vhost.wire.VhostUserMessageLayout.FLAG_REPLY;
import static io.vblk.virtio.vhost.wire.VhostUserMessageLayout.VERSION;

/**
 * Home thread: the connection's. Control plane only; allocation is fine here.
 *
 * <p>One decoded vhost-user message: header fields, a copy of the payload and the file descriptors
 * that arrived with it (SCM_RIGHTS). Whoever holds the message owns the fds until it hands them
 * on (to the device, to a mapping) or closes them.
 *
 * @param request the request number (see {@link VhostUserRequest})
 * @param flags   the header flags (version, REPLY, NEED_REPLY)
 * @param payload exactly {@code size} bytes
 * @param fds     the descriptors attached to this message, possibly none
 */
public record VhostUserMessage(int request, int flags, byte[] payload, int[] fds) {
    private static final int[] NO_FDS = new int[0];

    public VhostUserMessage {
        if (fds == null) {
            fds = NO_FDS;
        }
    }

    /** A request from the front-end, version 1, with {@code NEED_REPLY} if asked. */
    public static VhostUserMessage request(VhostUserRequest r, boolean needReply, byte[] payload, int... fds) {
        return new VhostUserMessage(r.id, VERSION | (needReply ? FLAG_NEED_REPLY : 0), payload, fds);
    }

    /** A back-end reply to {@code request}: the flags are exactly version | REPLY (QEMU checks that). */
    public static VhostUserMessage reply(int request, byte[] payload, int... fds) {
        return new VhostUserMessage(request, VERSION | FLAG_REPLY, payload, fds);
    }

    public int size() {
        return payload.length;
    }

    public boolean needReply() {
        return (flags & FLAG_NEED_REPLY) != 0;
    }

    public boolean isReply() {
        return (flags & FLAG_REPLY) != 0;
    }

    /** The known request, or null. */
    public VhostUserRequest kind() {
        return VhostUserRequest.of(request);
    }

    /** A heap view of the payload for the layout accessors. */
    public MemorySegment payloadSegment() {
        return MemorySegment.ofArray(payload);
    }

    /** "SET_VRING_ADDR (9)" or "request 99". */
    public String describe() {
        VhostUserRequest r = kind();
        return r != null ? r.describe() : "request " + request;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof VhostUserMessage m && m.request == request && m.flags == flags
                && Arrays.equals(m.payload, payload) && Arrays.equals(m.fds, fds);
    }

    @Override
    public int hashCode() {
        return 31 * (31 * request + flags) + Arrays.hashCode(payload);
    }

    @Override
    public String toString() {
        return describe() + " flags=0x" + Integer.toHexString(flags) + " size=" + payload.length
                + (fds.length > 0 ? " fds=" + Arrays.toString(fds) : "");
    }
}
