package io.vblk.virtio.vhost.wire;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.function.IntConsumer;

import static io.vblk.virtio.vhost.wire.VhostUserMessageLayout.FLAG_NEED_REPLY;
import static io.vblk.virtio.vhost.wire.VhostUserMessageLayout.FLAG_REPLY;
import static io.vblk.virtio.vhost.wire.VhostUserMessageLayout.FLAGS;
import static io.vblk.virtio.vhost.wire.VhostUserMessageLayout.HEADER_BYTES;
import static io.vblk.virtio.vhost.wire.VhostUserMessageLayout.MAX_MEM_TABLE_REGIONS;
import static io.vblk.virtio.vhost.wire.VhostUserMessageLayout.MAX_PAYLOAD_BYTES;
import static io.vblk.virtio.vhost.wire.VhostUserMessageLayout.VERSION_MASK;
import static io.vblk.virtio.vhost.wire.VhostUserMessageLayout.REQUEST;
import static io.vblk.virtio.vhost.wire.VhostUserMessageLayout.SIZE;
import static io.vblk.virtio.vhost.wire.VhostUserMessageLayout.VERSION;
import static io.vblk.virtio.vhost.wire.VhostUserMessageLayout.getInt;

/**
 * Home thread: the owning connection's. No locking.
 *
 * <p>Cuts a vhost-user byte stream into messages, keeping the state of a partial read between calls:
 * first the 12-byte header, then exactly {@code size} payload bytes. The caller reads at most
 * {@link #wanted()} bytes into {@link #writeAddress()} (a {@code recvmsg}) and reports them with
 * {@link #received}; reading no further than the current message matters, because the kernel
 * merges fd-less messages in one read but keeps the fds of a message with its first byte, so the
 * fds that come with a read belong to the message being assembled.
 *
 * <p>This is the one place that rejects a malformed message, by the table of
 * {@link VhostUserRequest}. The header is checked as soon as it is complete, before any payload
 * is read: version 1, no reserved flag bits, the REPLY flag as the direction demands, a request
 * number the spec defines (and, for requests, one vblk serves) and a size within the row's
 * bounds (the request's, or its reply's). The fds are checked against the row's {@link FdRule}
 * once the message is complete, and a message that arrives with more than 8 fds, or with the
 * kernel's MSG_CTRUNC, is refused. A violation is a {@link VhostUserProtocolException} naming the
 * request and what was wrong; the framer has then closed every fd it held and must not be used
 * again.
 */
public final class VhostUserFramer {
    /** Which side's messages this framer reads. */
    public enum Direction {
        /** Requests from a front-end: the back-end (server) side. */
        REQUESTS,
        /** Replies from a back-end: the front-end (client) side. */
        REPLIES
    }

    private static final int KNOWN_FLAGS = VERSION_MASK | FLAG_REPLY | FLAG_NEED_REPLY;

    /** Buffer bytes the framer needs: a header plus the largest payload. */
    public static final int BUFFER_BYTES = HEADER_BYTES + MAX_PAYLOAD_BYTES;

    private final Direction direction;
    private final MemorySegment buf;
    private final IntConsumer closeFd;
    private final int[] fds = new int[MAX_MEM_TABLE_REGIONS];
    private int fdCount;
    private int filled;
    /** Bytes of the current frame: the header until it is complete, then header + size. */
    private int frameBytes = HEADER_BYTES;
    private boolean broken;

    /**
     * @param buf     at least {@link #BUFFER_BYTES} of native memory the caller keeps alive
     * @param closeFd closes a file descriptor (fds of a rejected message are closed, never leaked)
     */
    public VhostUserFramer(Direction direction, MemorySegment buf, IntConsumer closeFd) {
        if (buf.byteSize() < BUFFER_BYTES) {
            throw new IllegalArgumentException("framer buffer of " + buf.byteSize() + " bytes, needs " + BUFFER_BYTES);
        }
        this.direction = direction;
        this.buf = buf;
        this.closeFd = closeFd;
    }

    /** Where the next read goes. */
    public long writeAddress() {
        return buf.address() + filled;
    }

    /** How many bytes the next read may take: the rest of the header or of the payload. */
    public int wanted() {
        return frameBytes - filled;
    }

    /** True when part of a message has been read (a disconnect now is "mid-message"). */
    public boolean midMessage() {
        return filled > 0 || fdCount > 0;
    }

    /** Bytes of the current message read so far. */
    public int bytesSoFar() {
        return filled;
    }

    /**
     * Accounts for {@code n} bytes just read at {@link #writeAddress()} (1..{@link #wanted()})
     * together with the fds that came with them. Returns the message once it is complete, else
     * null. The framer owns the fds until it returns them inside a message.
     *
     * @param truncated the kernel reported MSG_CTRUNC (more fds were attached than fit)
     */
    public VhostUserMessage received(int n, int[] newFds, int newFdCount, boolean truncated)
            throws VhostUserProtocolException {
        if (broken) {
            closeAll(newFds, newFdCount);
            throw new IllegalStateException("framer used after a protocol error");
        }
        if (n <= 0 || n > wanted()) {
            closeAll(newFds, newFdCount);
            throw new IllegalArgumentException("read of " + n + " bytes, wanted 1.." + wanted());
        }
        if (truncated || fdCount + newFdCount > fds.length) {
            closeAll(newFds, newFdCount);
            throw fail("more than " + fds.length + " file descriptors attached to one message"
                    + (filled >= HEADER_BYTES ? " (" + describeHeader() + ")" : ""));
        }
        for (int i = 0; i < newFdCount; i++) {
            fds[fdCount++] = newFds[i];
        }
        filled += n;
        if (filled == HEADER_BYTES && frameBytes == HEADER_BYTES) {
            frameBytes = HEADER_BYTES + checkHeader();
        }
        if (filled < frameBytes) {
            return null;
        }
        checkPayloadAndFds();
        byte[] payload = new byte[frameBytes - HEADER_BYTES];
        MemorySegment.copy(buf, HEADER_BYTES, MemorySegment.ofArray(payload), 0, payload.length);
        VhostUserMessage m = new VhostUserMessage(getInt(buf, REQUEST), getInt(buf, FLAGS), payload,
                Arrays.copyOf(fds, fdCount));
        filled = 0;
        fdCount = 0;
        frameBytes = HEADER_BYTES;
        return m;
    }

    /** Closes the fds of a partly read message (disconnect mid-message, connection closed). */
    public void discard() {
        closeAll(fds, fdCount);
        fdCount = 0;
        filled = 0;
        frameBytes = HEADER_BYTES;
    }

    /**
     * Returns the payload size after checking the header against the table of
     * {@link VhostUserRequest}; throws on a header that breaks the protocol.
     */
    private int checkHeader() throws VhostUserProtocolException {
        int request = getInt(buf, REQUEST);
        int flags = getInt(buf, FLAGS);
        int size = getInt(buf, SIZE);
        VhostUserRequest kind = VhostUserRequest.of(request);
        String what = kind != null ? kind.describe() : "request " + Integer.toUnsignedString(request);
        // "Lower 2 bits are the version (currently 0x01)".
        if ((flags & VERSION_MASK) != VERSION) {
            throw fail(what + ": protocol version " + (flags & VERSION_MASK) + ", only version " + VERSION + " is spoken");
        }
        // Bits 0-1 version, 2 REPLY, 3 NEED_REPLY: "The rest of the bits are reserved".
        if ((flags & ~KNOWN_FLAGS) != 0) {
            throw fail(what + ": reserved flag bits 0x" + Integer.toHexString(flags & ~KNOWN_FLAGS) + " set");
        }
        if (kind == null) {
            throw fail("unknown " + (direction == Direction.REQUESTS ? "request " : "reply to request ")
                    + Integer.toUnsignedString(request) + " (flags 0x" + Integer.toHexString(flags) + ", size "
                    + Integer.toUnsignedString(size) + ")");
        }
        VhostUserRequest.Size allowed;
        if (direction == Direction.REQUESTS) {
            // "Bit 2 is the reply flag - needs to be sent on each reply from the back-end".
            if ((flags & FLAG_REPLY) != 0) {
                throw fail(what + ": the REPLY flag is set on a request");
            }
            if (!kind.served) {
                throw fail(what + " is not supported by vblk (no feature that allows it was offered)");
            }
            allowed = kind.size;
        } else {
            if ((flags & FLAG_REPLY) == 0) {
                throw fail(what + ": a message without the REPLY flag where a reply was expected");
            }
            allowed = kind.replySize;
        }
        if (!allowed.allows(Integer.toUnsignedLong(size))) {
            throw fail(what + ": bad " + (direction == Direction.REQUESTS ? "size " : "reply size ")
                    + Integer.toUnsignedString(size) + ", expected " + allowed.describe());
        }
        return size;
    }

    /** The payload-rule and fd columns of the table, checked once the payload they read is complete. */
    private void checkPayloadAndFds() throws VhostUserProtocolException {
        VhostUserRequest kind = VhostUserRequest.of(getInt(buf, REQUEST));
        boolean requests = direction == Direction.REQUESTS;
        int size = frameBytes - HEADER_BYTES;
        MemorySegment payload = buf.asSlice(HEADER_BYTES, size);
        String why = (requests ? kind.payload : kind.replyPayload()).check(kind.describe(), payload, size);
        if (why == null) {
            why = (requests ? kind.fds : kind.replyFds()).check(kind.describe(), payload, size, fdCount);
        }
        if (why != null) {
            throw fail(why);
        }
    }

    private String describeHeader() {
        VhostUserRequest kind = VhostUserRequest.of(getInt(buf, REQUEST));
        return kind != null ? kind.describe() : "request " + Integer.toUnsignedString(getInt(buf, REQUEST));
    }

    private VhostUserProtocolException fail(String why) {
        broken = true;
        discard();
        return new VhostUserProtocolException(why);
    }

    private void closeAll(int[] a, int n) {
        for (int i = 0; i < n; i++) {
            closeFd.accept(a[i]);
        }
    }
}
