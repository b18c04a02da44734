package io.vblk.virtio.vhost.wire;

/**
 * Any thread: constants and pure functions.
 *
 * <p>The back-end message types (QEMU docs/interop/vhost-user.rst, "Back-end message types"): the
 * requests a back-end sends on the backend channel, the socket the front-end passed with
 * {@code VHOST_USER_SET_BACKEND_REQ_FD} once {@code VHOST_USER_PROTOCOL_F_BACKEND_REQ} is
 * negotiated. Their numbers are a space of their own (1 is not GET_FEATURES here). vblk sends
 * {@link #CONFIG_CHANGE_MSG} only; the header is the {@link VhostUserMessageLayout} header.
 */
public final class VhostUserBackendRequest {
    private VhostUserBackendRequest() {
    }

    /** {@code VHOST_USER_BACKEND_IOTLB_MSG} (not sent: IOMMU_PLATFORM is not offered). */
    public static final int IOTLB_MSG = 1;
    /**
     * {@code VHOST_USER_BACKEND_CONFIG_CHANGE_MSG}, payload N/A: "When
     * VHOST_USER_PROTOCOL_F_CONFIG is negotiated, this message is submitted by the back-end to the
     * front-end. The front-end will ... re-read the config space (GET_CONFIG). If
     * VHOST_USER_PROTOCOL_F_REPLY_ACK is negotiated, and the back-end set the
     * VHOST_USER_NEED_REPLY flag, the front-end must respond with zero when operation is
     * successfully completed, or non-zero otherwise."
     */
    public static final int CONFIG_CHANGE_MSG = 2;
    /** A request header plus a u64: the largest message either side sends on the channel. */
    public static final int MAX_MESSAGE_BYTES = VhostUserMessageLayout.HEADER_BYTES + VhostUserMessageLayout.U64_BYTES;

    public static String name(int request) {
        return switch (request) {
            case IOTLB_MSG -> "VHOST_USER_BACKEND_IOTLB_MSG";
            case CONFIG_CHANGE_MSG -> "VHOST_USER_BACKEND_CONFIG_CHANGE_MSG";
            default -> "back-end request " + request;
        };
    }
}
