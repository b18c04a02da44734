package io.vblk.drivers.nbd.client;

import io.vblk.aio.AioContext;
import io.vblk.aio.sys.FileIo;
import io.vblk.drivers.BlockChannel;
import io.vblk.drivers.BlockDriver;
import io.vblk.drivers.nbd.NbdAddress;
import io.vblk.drivers.nbd.NbdProtocol;

/**
 * Any thread for the accessors; {@link #openChannel} on the context's home thread.
 *
 * <p>An NBD export as a block device ({@code driver=nbd}, QEMU's {@code block/nbd.c}): the open
 * connects and negotiates once, learning the size and the transmission flags; each channel then
 * owns one connection on its IoThread (the first channel takes the open's connection) and keeps
 * several requests in flight on it. A lost connection is re-established by the channel; requests
 * wait for it up to {@code reconnect-delay} seconds, then fail with EIO.
 */
public final class NbdClientDriver implements BlockDriver {
    /** The bound on each handshake wait. */
    static final int HANDSHAKE_TIMEOUT_MS = 10_000;

    private final NbdAddress address;
    private final String export;
    private final int reconnectDelaySeconds;
    private final long size;
    private final int flags;
    private final int minBlock;
    /** The open's connection until the first channel takes it (-1 then). */
    private int spareFd;

    private NbdClientDriver(NbdAddress address, String export, int reconnectDelaySeconds,
                            NbdClientHandshake.Connection c) {
        this.address = address;
        this.export = export;
        this.reconnectDelaySeconds = reconnectDelaySeconds;
        this.size = c.size();
        this.flags = c.flags();
        this.minBlock = c.minBlock();
        this.spareFd = c.fd();
    }

    /**
     * Connects to {@code address} and negotiates {@code export}. Blocks in the handshake (each wait
     * bounded); throws {@link IllegalStateException} naming the server and what went wrong.
     */
    public static NbdClientDriver open(NbdAddress address, String export, int reconnectDelaySeconds) {
        if (reconnectDelaySeconds < 0) {
            throw new IllegalArgumentException("nbd: reconnect-delay must be >= 0, got " + reconnectDelaySeconds);
        }
        return new NbdClientDriver(address, export, reconnectDelaySeconds,
                NbdClientHandshake.connect(address, export, HANDSHAKE_TIMEOUT_MS));
    }

    public NbdAddress address() {
        return address;
    }

    public String export() {
        return export;
    }

    public int reconnectDelaySeconds() {
        return reconnectDelaySeconds;
    }

    int flags() {
        return flags;
    }

    /** A connection for a new channel: the open's one first, then a fresh one. */
    synchronized NbdClientHandshake.Connection takeConnection() {
        if (spareFd >= 0) {
            int fd = spareFd;
            spareFd = -1;
            return new NbdClientHandshake.Connection(fd, size, flags, minBlock);
        }
        return reconnect();
    }

    /** A fresh connection; throws {@link IllegalStateException} when the server cannot be reached or changed. */
    NbdClientHandshake.Connection reconnect() {
        NbdClientHandshake.Connection c = NbdClientHandshake.connect(address, export, HANDSHAKE_TIMEOUT_MS);
        if (c.size() != size) {
            FileIo.close(c.fd());
            throw new IllegalStateException("nbd " + address.describe() + " export '" + export + "': size changed from "
                    + size + " to " + c.size() + " bytes");
        }
        return c;
    }

    @Override
    public String kind() {
        return "nbd";
    }

    @Override
    public long length() {
        return size;
    }

    @Override
    public long resize(long newLength) {
        throw new UnsupportedOperationException("nbd: the export's size is the server's; resize it there");
    }

    @Override
    public int alignment() {
        return minBlock;
    }

    @Override
    public boolean readOnly() {
        return (flags & NbdProtocol.FLAG_READ_ONLY) != 0;
    }

    @Override
    public boolean supportsDiscard() {
        return (flags & NbdProtocol.FLAG_SEND_TRIM) != 0;
    }

    @Override
    public boolean supportsWriteZeroes() {
        return (flags & NbdProtocol.FLAG_SEND_WRITE_ZEROES) != 0;
    }

    @Override
    public BlockChannel openChannel(AioContext ctx) {
        return new NbdClientChannel(ctx, this, takeConnection().fd());
    }

    @Override
    public synchronized void close() {
        if (spareFd >= 0) {
            FileIo.close(spareFd);
            spareFd = -1;
        }
    }

    @Override
    public String toString() {
        return "nbd:" + address.describe() + ",export=" + export + (reconnectDelaySeconds > 0
                ? ",reconnect-delay=" + reconnectDelaySeconds : "");
    }
}
