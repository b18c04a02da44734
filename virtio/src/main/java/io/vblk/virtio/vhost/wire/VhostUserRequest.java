package io.vblk.virtio.vhost.wire;

import static io.vblk.virtio.vhost.wire.VhostUserMessageLayout.CONFIG_HEADER_BYTES;
import static io.vblk.virtio.vhost.wire.VhostUserMessageLayout.INFLIGHT_BYTES;
import static io.vblk.virtio.vhost.wire.VhostUserMessageLayout.LOG_BYTES;
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
 * <p>The front-end message types (QEMU docs/interop/vhost-user.rst, "Front-end message types") as
 * ONE table: for each request its number, the payload size it may carry (bounds, plus a
 * {@link PayloadRule} where a count inside the payload decides: SET_MEM_TABLE, GET/SET_CONFIG) and
 * the fds that come with it ({@link FdRule}), the same for the back-end's reply, and whether vblk
 * serves it. {@link VhostUserFramer} checks
 * every message against this table and nothing else does: a message that breaks a row is
 * rejected there, naming the request and the rule.
 *
 * <p>Sizes come from the "request payload" / "reply payload" line of each message in the spec,
 * with the struct sizes of {@link VhostUserMessageLayout}: N/A is 0 bytes, "u64" 8, "vring state
 * description" 8, "vring address description" 40, "memory regions description" 8 + 32 per region,
 * "single memory region description" 40, "virtio device config space" 12 + up to 256, "inflight
 * description" 24. A request without a reply of its own is answered, when it asks with NEED_REPLY
 * (REPLY_ACK), by a u64: "The payload should be set to zero on success or non-zero on failure".
 * {@code served} is false for the numbers vblk knows but does not serve (no feature that allows
 * them is offered); receiving one is a protocol error.
 */
public enum VhostUserRequest {
    // request payload: N/A; reply payload: u64
    GET_FEATURES(1, exact(0), FdRule.NONE, exact(U64_BYTES), true),
    // request payload: u64
    SET_FEATURES(2, exact(U64_BYTES), FdRule.NONE, null, true),
    // request payload: N/A
    SET_OWNER(3, exact(0), FdRule.NONE, null, true),
    // request payload: N/A ("deprecated ... use it to disable all rings")
    RESET_OWNER(4, exact(0), FdRule.NONE, null, true),
    // request payload: memory regions description (8 + 32 * nregions, at most 8 regions); one fd per region
    SET_MEM_TABLE(5, range(MEM_TABLE_MIN_BYTES, MEM_TABLE_MAX_BYTES), PayloadRule.MEM_TABLE, FdRule.PER_REGION, null, true),
    // request payload: log description (u64 mmap_size, u64 mmap_offset), the log's fd in the ancillary data
    // (LOG_SHMFD: "the log memory fd is provided in the ancillary data"); the front-end waits for a reply,
    // which carries no payload (QEMU reads any; libvhost-user sends a u64, DPDK and vblk none)
    SET_LOG_BASE(6, exact(LOG_BYTES), FdRule.ONE, range(0, U64_BYTES), true),
    // request payload: N/A; "the logging file descriptor, which is passed as ancillary data"
    SET_LOG_FD(7, exact(0), FdRule.ONE, null, true),
    // request payload: vring state description
    SET_VRING_NUM(8, exact(VRING_STATE_BYTES), FdRule.NONE, null, true),
    // request payload: vring address description
    SET_VRING_ADDR(9, exact(VRING_ADDR_BYTES), FdRule.NONE, null, true),
    // request payload: vring state description
    SET_VRING_BASE(10, exact(VRING_STATE_BYTES), FdRule.NONE, null, true),
    // request payload: vring state description; reply payload: vring state description
    GET_VRING_BASE(11, exact(VRING_STATE_BYTES), FdRule.NONE, exact(VRING_STATE_BYTES), true),
    // request payload: u64; "Bit 8 is the invalid FD flag ... set when there is no file descriptor"
    SET_VRING_KICK(12, exact(U64_BYTES), FdRule.UNLESS_NOFD, null, true),
    SET_VRING_CALL(13, exact(U64_BYTES), FdRule.UNLESS_NOFD, null, true),
    SET_VRING_ERR(14, exact(U64_BYTES), FdRule.UNLESS_NOFD, null, true),
    // request payload: N/A; reply payload: u64
    GET_PROTOCOL_FEATURES(15, exact(0), FdRule.NONE, exact(U64_BYTES), true),
    // request payload: u64
    SET_PROTOCOL_FEATURES(16, exact(U64_BYTES), FdRule.NONE, null, true),
    // request payload: N/A; reply payload: u64
    GET_QUEUE_NUM(17, exact(0), FdRule.NONE, exact(U64_BYTES), true),
    // request payload: vring state description
    SET_VRING_ENABLE(18, exact(VRING_STATE_BYTES), FdRule.NONE, null, true),
    // net only (not served)
    SEND_RARP(19, exact(U64_BYTES), FdRule.ANY, null, false),
    NET_SET_MTU(20, exact(U64_BYTES), FdRule.ANY, null, false),
    // request payload: N/A; the backend channel's socket in the ancillary data (BACKEND_REQ)
    SET_BACKEND_REQ_FD(21, exact(0), FdRule.ONE, null, true),
    IOTLB_MSG(22, range(0, MAX_PAYLOAD_BYTES), FdRule.ANY, range(0, MAX_PAYLOAD_BYTES), false),
    SET_VRING_ENDIAN(23, exact(VRING_STATE_BYTES), FdRule.ANY, null, false),
    // request payload: virtio device config space; reply payload: virtio device config space
    // ("vhost-user back-end uses zero length of payload to indicate an error")
    GET_CONFIG(24, range(CONFIG_HEADER_BYTES, MAX_PAYLOAD_BYTES), PayloadRule.CONFIG, FdRule.NONE, range(0, MAX_PAYLOAD_BYTES), true),
    // request payload: virtio device config space
    SET_CONFIG(25, range(CONFIG_HEADER_BYTES, MAX_PAYLOAD_BYTES), PayloadRule.CONFIG, FdRule.NONE, null, true),
    CREATE_CRYPTO_SESSION(26, range(0, MAX_PAYLOAD_BYTES), FdRule.ANY, range(0, MAX_PAYLOAD_BYTES), false),
    CLOSE_CRYPTO_SESSION(27, exact(U64_BYTES), FdRule.ANY, null, false),
    POSTCOPY_ADVISE(28, exact(0), FdRule.ANY, range(0, MAX_PAYLOAD_BYTES), false),
    POSTCOPY_LISTEN(29, exact(0), FdRule.ANY, null, false),
    POSTCOPY_END(30, exact(0), FdRule.ANY, range(0, MAX_PAYLOAD_BYTES), false),
    // request payload: inflight description; reply payload: inflight description, the memfd in the ancillary data
    GET_INFLIGHT_FD(31, exact(INFLIGHT_BYTES), FdRule.NONE, exact(INFLIGHT_BYTES), true),
    // request payload: inflight description; "the file descriptor for the shared buffer is passed in the ancillary data"
    SET_INFLIGHT_FD(32, exact(INFLIGHT_BYTES), FdRule.ONE, null, true),
    GPU_SET_SOCKET(33, exact(0), FdRule.ANY, null, false),
    // request payload: N/A
    RESET_DEVICE(34, exact(0), FdRule.NONE, null, true),
    // INBAND_NOTIFICATIONS not offered
    VRING_KICK(35, exact(VRING_STATE_BYTES), FdRule.ANY, null, false),
    // request payload: N/A; reply payload: u64
    GET_MAX_MEM_SLOTS(36, exact(0), FdRule.NONE, exact(U64_BYTES), true),
    // request payload: single memory region description; "one file descriptor in the ancillary data"
    ADD_MEM_REG(37, exact(MEM_REG_BYTES), FdRule.ONE, null, true),
    // request payload: single memory region description; "No file descriptors SHOULD be passed"
    REM_MEM_REG(38, exact(MEM_REG_BYTES), FdRule.AT_MOST_ONE, null, true),
    // request payload: u64
    SET_STATUS(39, exact(U64_BYTES), FdRule.NONE, null, true),
    // request payload: N/A; reply payload: u64
    GET_STATUS(40, exact(0), FdRule.NONE, exact(U64_BYTES), true),
    GET_SHARED_OBJECT(41, exact(16), FdRule.ANY, range(0, MAX_PAYLOAD_BYTES), false),
    SET_DEVICE_STATE_FD(42, exact(8), FdRule.ANY, range(0, MAX_PAYLOAD_BYTES), false),
    CHECK_DEVICE_STATE(43, exact(0), FdRule.ANY, range(0, MAX_PAYLOAD_BYTES), false);

    /** Payload sizes a message may have: {@code min..max} bytes ({@code min == max}: exactly). */
    public record Size(int min, int max) {
        public boolean allows(long size) {
            return size >= min && size <= max;
        }

        /** "8" or "12..268". */
        public String describe() {
            return min == max ? String.valueOf(min) : min + ".." + max;
        }
    }

    /** The REPLY_ACK reply: a u64, no fds. */
    public static final Size ACK_SIZE = exact(U64_BYTES);

    private static final VhostUserRequest[] BY_ID = new VhostUserRequest[64];

    static {
        for (VhostUserRequest r : values()) {
            BY_ID[r.id] = r;
        }
    }

    /** The request number on the wire. */
    public final int id;
    /** Payload sizes the request may carry. */
    public final Size size;
    /** The fds the request carries. */
    public final FdRule fds;
    /** True when the back-end always answers with a reply of its own (not only a REPLY_ACK). */
    public final boolean hasReply;
    /** Payload sizes of that reply ({@link #ACK_SIZE} for requests without one). */
    public final Size replySize;
    /** False for requests vblk recognises but does not serve. */
    public final boolean served;
    /** Sizes that depend on a count inside the payload (request and, for GET_CONFIG, reply). */
    public final PayloadRule payload;

    VhostUserRequest(int id, Size size, FdRule fds, Size replySize, boolean served) {
        this(id, size, PayloadRule.FIXED, fds, replySize, served);
    }

    VhostUserRequest(int id, Size size, PayloadRule payload, FdRule fds, Size replySize, boolean served) {
        this.id = id;
        this.payload = payload;
        this.size = size;
        this.fds = fds;
        this.hasReply = replySize != null;
        this.replySize = replySize != null ? replySize : exact(U64_BYTES);
        this.served = served;
    }

    /** The payload rule of this request's reply: GET_CONFIG's reply is a config space too; every other, fixed. */
    public PayloadRule replyPayload() {
        return this == GET_CONFIG ? PayloadRule.CONFIG : PayloadRule.FIXED;
    }

    private static Size exact(int n) {
        return new Size(n, n);
    }

    private static Size range(int min, int max) {
        return new Size(min, max);
    }

    /**
     * The fds a reply to this request carries: GET_INFLIGHT_FD's reply brings the shared buffer's
     * memfd ("the back-end ... sends the file descriptor in the ancillary data"); every other reply
     * vblk reads, none.
     */
    public FdRule replyFds() {
        return this == GET_INFLIGHT_FD ? FdRule.ONE : served ? FdRule.NONE : FdRule.ANY;
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
