package io.vblk.virtio.vhost.wire;

import static io.vblk.virtio.vhost.wire.VhostUserMessageLayout.CONFIG_HEADER_BYTES;
import static io.vblk.virtio.vhost.wire.VhostUserMessageLayout.INFLIGHT_BYTES;
import static io.vblk.virtio.vhost.wire.VhostUserMessageLayout.MAX_PAYLOAD_BYTES;
import static io.vblk.virtio.vhost.wire.VhostUserMessageLayout.MEM_REG_BYTES;
import static io.vblk.virtio.vhost.wire.VhostUserMessageLayout.MEM_TABLE_MAX_BYTES;
import static io.vblk.virtio.vhost.wire.VhostUserMessageLayout.MEM_TABLE_MIN_BYTES;
import static io.vblk.virtio.vhost.wire.VhostUserMessageLayout.U64_BYTES;
import static io.vblk.virtio.vhost.wire.VhostUserMessageLayout.VRING_ADDR_BYTES;
import static io.vblk.virtio.vhost.wire.VhostUserMessageLayout.VRING_STATE_BYTES;

/**
 * Any thread: immutable.
 *
 * <p>Front-end message types (vhost-user.rst, "Front-end message types"): the request number, the
 * payload size a request may carry, and whether the back-end answers it with a reply of its own
 * (the list under "Communication", plus the GET_* messages). {@code served} is false for the
 * numbers vblk knows but does not serve; receiving one closes the connection with its name.
 */
public enum VhostUserRequest {
    GET_FEATURES(1, 0, 0, true, true),
    SET_FEATURES(2, U64_BYTES, U64_BYTES, false, true),
    SET_OWNER(3, 0, 0, false, true),
    RESET_OWNER(4, 0, 0, false, true),
    SET_MEM_TABLE(5, MEM_TABLE_MIN_BYTES, MEM_TABLE_MAX_BYTES, false, true),
    SET_LOG_BASE(6, 16, 16, false, false),
    SET_LOG_FD(7, 0, 0, false, false),
    SET_VRING_NUM(8, VRING_STATE_BYTES, VRING_STATE_BYTES, false, true),
    SET_VRING_ADDR(9, VRING_ADDR_BYTES, VRING_ADDR_BYTES, false, true),
    SET_VRING_BASE(10, VRING_STATE_BYTES, VRING_STATE_BYTES, false, true),
    GET_VRING_BASE(11, VRING_STATE_BYTES, VRING_STATE_BYTES, true, true),
    SET_VRING_KICK(12, U64_BYTES, U64_BYTES, false, true),
    SET_VRING_CALL(13, U64_BYTES, U64_BYTES, false, true),
    SET_VRING_ERR(14, U64_BYTES, U64_BYTES, false, true),
    GET_PROTOCOL_FEATURES(15, 0, 0, true, true),
    SET_PROTOCOL_FEATURES(16, U64_BYTES, U64_BYTES, false, true),
    GET_QUEUE_NUM(17, 0, 0, true, true),
    SET_VRING_ENABLE(18, VRING_STATE_BYTES, VRING_STATE_BYTES, false, true),
    SEND_RARP(19, U64_BYTES, U64_BYTES, false, false),
    NET_SET_MTU(20, U64_BYTES, U64_BYTES, false, false),
    SET_BACKEND_REQ_FD(21, 0, 0, false, false),
    IOTLB_MSG(22, 0, MAX_PAYLOAD_BYTES, true, false),
    SET_VRING_ENDIAN(23, VRING_STATE_BYTES, VRING_STATE_BYTES, false, false),
    GET_CONFIG(24, CONFIG_HEADER_BYTES, MAX_PAYLOAD_BYTES, true, true),
    SET_CONFIG(25, CONFIG_HEADER_BYTES, MAX_PAYLOAD_BYTES, false, true),
    CREATE_CRYPTO_SESSION(26, 0, MAX_PAYLOAD_BYTES, true, false),
    CLOSE_CRYPTO_SESSION(27, U64_BYTES, U64_BYTES, false, false),
    POSTCOPY_ADVISE(28, 0, 0, true, false),
    POSTCOPY_LISTEN(29, 0, 0, false, false),
    POSTCOPY_END(30, 0, 0, true, false),
    GET_INFLIGHT_FD(31, INFLIGHT_BYTES, INFLIGHT_BYTES, true, true),
    SET_INFLIGHT_FD(32, INFLIGHT_BYTES, INFLIGHT_BYTES, false, true),
    GPU_SET_SOCKET(33, 0, 0, false, false),
    RESET_DEVICE(34, 0, 0, false, true),
    VRING_KICK(35, VRING_STATE_BYTES, VRING_STATE_BYTES, false, false),
    GET_MAX_MEM_SLOTS(36, 0, 0, true, true),
    ADD_MEM_REG(37, MEM_REG_BYTES, MEM_REG_BYTES, false, true),
    REM_MEM_REG(38, MEM_REG_BYTES, MEM_REG_BYTES, false, true),
    SET_STATUS(39, U64_BYTES, U64_BYTES, false, true),
    GET_STATUS(40, 0, 0, true, true),
    GET_SHARED_OBJECT(41, 16, 16, true, false),
    SET_DEVICE_STATE_FD(42, 8, 8, true, false),
    CHECK_DEVICE_STATE(43, 0, 0, true, false);

    private static final VhostUserRequest[] BY_ID = new VhostUserRequest[64];

    static {
        for (VhostUserRequest r : values()) {
            BY_ID[r.id] = r;
        }
    }

    /** The request number on the wire. */
    public final int id;
    /** Smallest and largest payload the request may carry (request direction). */
    public final int minPayload;
    public final int maxPayload;
    /** True when the back-end always answers with a reply of its own (not only a REPLY_ACK). */
    public final boolean hasReply;
    /** False for requests vblk recognises but does not serve. */
    public final boolean served;

    VhostUserRequest(int id, int minPayload, int maxPayload, boolean hasReply, boolean served) {
        this.id = id;
        this.minPayload = minPayload;
        this.maxPayload = maxPayload;
        this.hasReply = hasReply;
        this.served = served;
    }

    /** The request with number {@code id}, or null for a number the spec does not define here. */
    public static VhostUserRequest of(int id) {
        return id > 0 && id < BY_ID.length ? BY_ID[id] : null;
    }

    /** "NAME (id)" for log lines. */
    public String describe() {
        return name() + " (" + id + ")";
    }
}
