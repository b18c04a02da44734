package io.vblk.virtio.vhost.wire;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.function.IntConsumer;

import static io.vblk.virtio.vhost.wire.VhostUserMessageLayout.FLAG_REPLY;
import static io.vblk.virtio.vhost.wire.VhostUserMessageLayout.FLAGS;
import static io.vblk.virtio.vhost.wire.VhostUserMessageLayout.HEADER_BYTES;
import static io.vblk.virtio.vhost.wire.VhostUserMessageLayout.MAX_MEM_TABLE_REGIONS;
import static io.vblk.virtio.vhost.wire.VhostUserMessageLayout.MAX_PAYLOAD_BYTES;
import static io.vblk.virtio.vhost.wire.VhostUserMessageLayout.REQUEST;
import static io.vblk.virtio.vhost.wire.VhostUserMessageLayout.SIZE;
import static io.vblk.virtio.vhost.wire.VhostUserMessageLayout.VERSION;
import static io.vblk.virtio.vhost.wire.VhostUserMessageLayout.VERSION_MASK;
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
 * <p>The header is checked as soon as it is complete, before any payload is read: version 1, the
 * REPLY flag as the direction demands, a request number the spec defines (for requests) and a
 * size within the request's bounds. A violation is a {@link VhostUserProtocolException}; the
 * framer has then closed every fd it held and must not be used again.
 */
public final class VhostUserFramer {
    /** Which side's messages this framer reads. */
    public enum Direction {
        /** Requests from a front-end: the back-end (server) side. */
        REQUESTS,
        /** Replies from a back-end: the front-end (client) side. */
        REPLIES
    }

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

    /** Returns the payload size after checking the header; throws on a header that breaks the protocol. */
    private int checkHeader() throws VhostUserProtocolException {
        int request = getInt(buf, REQUEST);
        int flags = getInt(buf, FLAGS);
        int size = getInt(buf, SIZE);
        VhostUserRequest kind = VhostUserRequest.of(request);
        String what = kind != null ? kind.describe() : "request " + Integer.toUnsignedString(request);
        if ((flags & VERSION_MASK) != VERSION) {
            throw fail(what + ": protocol version " + (flags & VERSION_MASK) + ", only version " + VERSION + " is spoken");
        }
        if (direction == Direction.REQUESTS) {
            if (kind == null) {
                throw fail("unknown request " + Integer.toUnsignedString(request) + " (flags 0x"
                        + Integer.toHexString(flags) + ", size " + Integer.toUnsignedString(size) + ")");
            }
            if ((flags & FLAG_REPLY) != 0) {
                throw fail(what + ": the REPLY flag is set on a request");
            }
            if (size < kind.minPayload || size > kind.maxPayload) {
                throw fail(what + ": bad size " + Integer.toUnsignedString(size) + ", expected "
                        + (kind.minPayload == kind.maxPayload ? String.valueOf(kind.minPayload)
                                : kind.minPayload + ".." + kind.maxPayload));
            }
        } else {
            if ((flags & FLAG_REPLY) == 0) {
                throw fail(what + ": a message without the REPLY flag where a reply was expected");
            }
            if (size < 0 || size > MAX_PAYLOAD_BYTES) {
                throw fail(what + ": reply of bad size " + Integer.toUnsignedString(size) + ", at most " + MAX_PAYLOAD_BYTES);
            }
        }
        return size;
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
