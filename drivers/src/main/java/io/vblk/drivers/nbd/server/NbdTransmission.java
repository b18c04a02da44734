package io.vblk.drivers.nbd.server;

import io.vblk.aio.AioContext;
import io.vblk.aio.FdHandler;
import io.vblk.aio.sys.Errno;
import io.vblk.aio.sys.FileIo;
import io.vblk.drivers.BlockChannel;
import io.vblk.drivers.BlockIo;
import io.vblk.drivers.IoCompletion;
import io.vblk.drivers.nbd.NbdProtocol;
import io.vblk.drivers.nbd.NbdWire;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

import static io.vblk.drivers.nbd.NbdProtocol.*;

/**
 * Home thread: the export's IoThread. No locking.
 *
 * <p>The transmission phase of one client: requests read from the socket into one of
 * {@link #SLOTS} preallocated slots (the bound on requests in flight per client: with every slot
 * busy the socket is not read), submitted to a channel of the export's node, and answered in
 * completion order. A WRITE's payload is read straight into its slot's buffer, which the
 * {@link BlockIo} points at; a READ's data lands in the slot's buffer behind room for the reply
 * header, so header and data leave in one write. Buffers grow (doubling, up to
 * {@link NbdProtocol#MAX_PAYLOAD}) while a client's requests grow, and are reused: nothing is
 * allocated per request once they have.
 *
 * <p>Bad input: a bad request magic closes the connection (proto.md: the stream cannot be
 * re-synchronised); an oversized WRITE's payload is read and dropped, and it and every other bad
 * request (past the end, unknown command, write to a read-only export) gets an NBD error reply.
 * A client that hangs up mid-request is logged; its requests in flight finish before the socket
 * and channel close.
 */
final class NbdTransmission {
    private static final System.Logger LOG = System.getLogger(NbdTransmission.class.getName());
    /** Requests in flight per client. */
    static final int SLOTS = 16;
    /** Room before a slot's data for a reply header; a page, so the data stays page-aligned for O_DIRECT. */
    private static final int HEADROOM = 4096;
    private static final int INITIAL_DATA = 64 * 1024;
    /** Extents in one block-status reply (8 bytes each; well inside a slot's buffer). */
    private static final int MAX_EXTENTS = 512;

    /** One request's state, reused. */
    private final class Slot implements IoCompletion {
        final BlockIo io;
        final int index;
        MemorySegment buf;
        long cookie;
        int type;
        int length;
        long sendAddr;
        int sendLen;
        int sent;
        Slot nextReply;
        boolean busy;

        Slot(int index) {
            this.index = index;
            this.io = new BlockIo(arena, 1);
            this.buf = arena.allocate(HEADROOM + INITIAL_DATA, 4096);
        }

        long data() {
            return buf.address() + HEADROOM;
        }

        void ensure(int bytes) {
            if (buf.byteSize() - HEADROOM < bytes) {
                long cap = Math.max(INITIAL_DATA, Long.highestOneBit(bytes - 1L) << 1);
                buf = arena.allocate(HEADROOM + cap, 4096); // growth only; the old buffer goes with the arena
            }
        }

        @Override
        public void ioCompleted(BlockIo done, long result) {
            inFlightDriver--;
            if (result < 0) {
                replyError(this, NbdProtocol.toNbdError(result));
            } else if (type == CMD_READ) {
                replyRead(this);
            } else {
                replyError(this, 0);
            }
        }
    }

    private enum State { HEADER, PAYLOAD, DISCARD, STOPPED }

    private final NbdServer server;
    private final NbdExport export;
    private final AioContext ctx;
    private final int fd;
    private final String name;
    private final boolean structured;
    /** base:allocation was selected at the handshake: NBD_CMD_BLOCK_STATUS is answered. */
    private final boolean metaAllocation;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment header;
    private final Slot[] slots = new Slot[SLOTS];
    private int freeSlots = SLOTS;
    private Slot replyHead;
    private Slot replyTail;
    private Slot reading;
    private State state = State.HEADER;
    private int have;
    private long discard;
    /** The error a dropped WRITE is answered with once its payload is read. */
    private int discardError;
    private int inFlightDriver;
    private BlockChannel channel;
    private FdHandler handler;
    private boolean readOff;
    private boolean drainPaused;
    private boolean closing;
    private boolean closed;
    private long requests;

    NbdTransmission(NbdServer server, NbdExport export, int fd, String name, boolean structured,
                    boolean metaAllocation) {
        this.server = server;
        this.export = export;
        this.ctx = export.ioContext();
        this.fd = fd;
        this.name = name + " (export " + export.name() + ")";
        this.structured = structured;
        this.metaAllocation = metaAllocation;
        this.header = arena.allocate(64, 8);
    }

    AioContext ioContext() {
        return ctx;
    }

    NbdExport export() {
        return export;
    }

    /** Opens the channel and starts reading requests. */
    void start() {
        ctx.assertHome();
        for (int i = 0; i < SLOTS; i++) {
            slots[i] = new Slot(i);
        }
        channel = export.node().openChannel(ctx);
        handler = ctx.addFdHandler(name, fd, ignored -> readable());
        LOG.log(System.Logger.Level.INFO, () -> name + ": transmission started" + (structured ? " (structured replies)" : ""));
        updateReadInterest();
    }

    // ---------------------------------------------------------------- reading requests

    private void readable() {
        while (state != State.STOPPED && !readOff) {
            long n;
            switch (state) {
                case HEADER -> n = FileIo.read(fd, header.address() + have, NbdWire.REQUEST_BYTES - have);
                case PAYLOAD -> n = FileIo.read(fd, reading.data() + have, reading.length - have);
                case DISCARD -> n = FileIo.read(fd, reading.data(), Math.min(discard, reading.buf.byteSize() - HEADROOM));
                default -> throw new IllegalStateException(state.name());
            }
            if (n == -Errno.EAGAIN) {
                return;
            }
            if (n <= 0) {
                boolean mid = have > 0 || state != State.HEADER;
                String why = n == 0 ? "hung up" : "read failed: " + Errno.name((int) -n);
                if (mid) {
                    LOG.log(System.Logger.Level.WARNING, () -> name + ": client vanished in the middle of a request ("
                            + why + ")");
                } else {
                    LOG.log(System.Logger.Level.INFO, () -> name + ": " + why);
                }
                if (reading != null) {
                    freeSlot(reading);
                    reading = null;
                }
                disconnect(null);
                return;
            }
            if (state == State.DISCARD) {
                discard -= n;
                if (discard == 0) {
                    Slot s = reading;
                    reading = null;
                    state = State.HEADER;
                    replyError(s, discardError);
                }
                continue;
            }
            have += (int) n;
            if (state == State.HEADER && have == NbdWire.REQUEST_BYTES) {
                have = 0;
                request();
            } else if (state == State.PAYLOAD && have == reading.length) {
                have = 0;
                state = State.HEADER;
                Slot s = reading;
                reading = null;
                submit(s);
            }
        }
    }

    /** A complete request header is in {@link #header}. */
    private void request() {
        int magic = NbdWire.u32(header, NbdWire.REQ_MAGIC);
        if (magic != REQUEST_MAGIC) {
            LOG.log(System.Logger.Level.WARNING, () -> name + ": bad request magic 0x" + Integer.toHexString(magic)
                    + ": closing the connection");
            disconnect(null);
            return;
        }
        int flags = NbdWire.u16(header, NbdWire.REQ_FLAGS);
        int type = NbdWire.u16(header, NbdWire.REQ_TYPE);
        long cookie = NbdWire.u64(header, NbdWire.REQ_COOKIE);
        long offset = NbdWire.u64(header, NbdWire.REQ_OFFSET);
        long length = Integer.toUnsignedLong(NbdWire.u32(header, NbdWire.REQ_LENGTH));
        requests++;
        if (type == CMD_DISC) {
            LOG.log(System.Logger.Level.INFO, () -> name + ": NBD_CMD_DISC after " + (requests - 1) + " requests");
            disconnect(null);
            return;
        }
        Slot s = takeSlot();
        s.cookie = cookie;
        s.type = type;
        s.length = 0;
        long size = export.node().driver().length();
        boolean past = offset < 0 || length > size || offset > size - length;
        int error = 0;
        switch (type) {
            case CMD_READ -> {
                if (length > MAX_PAYLOAD) {
                    error = EOVERFLOW;
                } else if (past) {
                    error = EINVAL;
                } else {
                    s.ensure((int) length);
                    s.length = (int) length;
                    s.io.rw(BlockIo.READ, offset, s);
                    s.io.iov.add(s.data(), length);
                }
            }
            case CMD_WRITE -> {
                if (length > MAX_PAYLOAD || length == 0 || !export.writable() || past) {
                    int why = length > MAX_PAYLOAD ? EOVERFLOW : !export.writable() ? EPERM : past ? ENOSPC : EINVAL;
                    LOG.log(System.Logger.Level.DEBUG, () -> name + ": write of " + length + " bytes at " + offset
                            + " refused (" + why + ")");
                    // proto.md: the payload follows regardless; read and drop it, then answer.
                    reading = s;
                    discard = length;
                    if (discard == 0) {
                        reading = null;
                        replyError(s, why);
                    } else {
                        state = State.DISCARD;
                        discardError = why;
                    }
                    return;
                }
                s.ensure((int) length);
                s.length = (int) length;
                s.io.rw(BlockIo.WRITE, offset, s);
                s.io.iov.add(s.data(), length);
                if ((flags & CMD_FLAG_FUA) != 0) {
                    s.io.flags = BlockIo.FLAG_FUA;
                }
                reading = s;
                state = State.PAYLOAD;
                return;
            }
            case CMD_FLUSH -> s.io.range(BlockIo.FLUSH, 0, 0, 0, s);
            case CMD_TRIM, CMD_WRITE_ZEROES -> {
                if (!export.writable()) {
                    error = EPERM;
                } else if (past) {
                    error = type == CMD_TRIM ? EINVAL : ENOSPC;
                } else if (type == CMD_TRIM) {
                    s.io.range(BlockIo.DISCARD, offset, length, 0, s);
                } else {
                    int f = (flags & CMD_FLAG_NO_HOLE) != 0 ? 0 : BlockIo.FLAG_MAY_UNMAP;
                    s.io.range(BlockIo.WRITE_ZEROES, offset, length, f | ((flags & CMD_FLAG_FUA) != 0 ? BlockIo.FLAG_FUA : 0), s);
                }
            }
            case CMD_CACHE -> {
                replyError(s, 0); // a hint: nothing to prefetch into
                return;
            }
            case CMD_BLOCK_STATUS -> {
                if (!metaAllocation || length == 0 || past) {
                    error = EINVAL; // proto.md: without a selected context the command is invalid
                } else {
                    replyBlockStatus(s, offset, length, (flags & CMD_FLAG_REQ_ONE) != 0);
                    return;
                }
            }
            default -> error = EINVAL;
        }
        if (error != 0) {
            int e = error;
            LOG.log(System.Logger.Level.DEBUG, () -> name + ": request type " + type + " at " + offset + "+" + length
                    + " answered with NBD error " + e);
            replyError(s, error);
            return;
        }
        submit(s);
    }

    private void submit(Slot s) {
        inFlightDriver++;
        channel.submit(s.io);
    }

    private Slot takeSlot() {
        for (Slot s : slots) {
            if (!s.busy) {
                s.busy = true;
                freeSlots--;
                if (freeSlots == 0) {
                    updateReadInterest();
                }
                return s;
            }
        }
        throw new IllegalStateException("no free slot although reading was on");
    }

    private void freeSlot(Slot s) {
        s.busy = false;
        s.nextReply = null;
        freeSlots++;
        if (freeSlots == 1) {
            updateReadInterest();
        }
        if (closing) {
            maybeClose();
        }
    }

    /** Reading is on while a slot is free, no drained section holds and the connection is open. */
    private void updateReadInterest() {
        boolean on = freeSlots > 0 && !drainPaused && !closing;
        if (handler == null || on == !readOff) {
            return;
        }
        readOff = !on;
        handler.setReadInterest(on);
    }

    // ---------------------------------------------------------------- replies

    private void replyRead(Slot s) {
        long base = s.buf.address();
        if (structured) {
            // Chunk header (20) + offset (8) right before the data.
            long at = HEADROOM - NbdWire.CHUNK_BYTES - 8;
            NbdWire.chunk(s.buf, at, REPLY_FLAG_DONE, REPLY_TYPE_OFFSET_DATA, s.cookie, 8 + s.length);
            NbdWire.putU64(s.buf, at + NbdWire.CHUNK_BYTES, s.io.offset);
            queueReply(s, base + at, NbdWire.CHUNK_BYTES + 8 + s.length);
        } else {
            long at = HEADROOM - NbdWire.SIMPLE_REPLY_BYTES;
            NbdWire.simpleReply(s.buf, at, 0, s.cookie);
            queueReply(s, base + at, NbdWire.SIMPLE_REPLY_BYTES + s.length);
        }
    }

    /**
     * NBD_CMD_BLOCK_STATUS for base:allocation: one NBD_REPLY_TYPE_BLOCK_STATUS chunk of the
     * context id and up to {@link #MAX_EXTENTS} (length, flags) descriptors from the driver's
     * {@link io.vblk.drivers.BlockDriver#blockStatus}; they may end before the requested length
     * (proto.md lets the client ask again from there).
     */
    private void replyBlockStatus(Slot s, long offset, long length, boolean one) {
        io.vblk.drivers.BlockDriver d = export.node().driver();
        int n = 0;
        long off = offset;
        long left = length;
        int at = NbdWire.CHUNK_BYTES + 4;
        while (left > 0 && n < (one ? 1 : MAX_EXTENTS)) {
            long st = d.blockStatus(off, left);
            long len = Math.min(Math.abs(st), left);
            if (len <= 0) {
                break;
            }
            NbdWire.putU32(s.buf, at, (int) len);
            NbdWire.putU32(s.buf, at + 4, st < 0 ? STATE_HOLE | STATE_ZERO : 0);
            at += 8;
            n++;
            off += len;
            left -= len;
        }
        if (n == 0) { // a driver that answered nothing: the whole range as data
            NbdWire.putU32(s.buf, at, (int) length);
            NbdWire.putU32(s.buf, at + 4, 0);
            at += 8;
        }
        NbdWire.chunk(s.buf, 0, REPLY_FLAG_DONE, REPLY_TYPE_BLOCK_STATUS, s.cookie, at - NbdWire.CHUNK_BYTES);
        NbdWire.putU32(s.buf, NbdWire.CHUNK_BYTES, CONTEXT_BASE_ALLOCATION);
        queueReply(s, s.buf.address(), at);
    }

    /**
     * A reply without data: success (0) or an NBD error; a READ's or BLOCK_STATUS's error as a
     * structured error chunk if negotiated.
     */
    private void replyError(Slot s, int error) {
        if (error != 0 && structured && (s.type == CMD_READ || s.type == CMD_BLOCK_STATUS)) {
            NbdWire.chunk(s.buf, 0, REPLY_FLAG_DONE, REPLY_TYPE_ERROR, s.cookie, 6);
            NbdWire.putU32(s.buf, NbdWire.CHUNK_BYTES, error);
            NbdWire.putU16(s.buf, NbdWire.CHUNK_BYTES + 4, 0);
            queueReply(s, s.buf.address(), NbdWire.CHUNK_BYTES + 6);
        } else {
            NbdWire.simpleReply(s.buf, 0, error, s.cookie);
            queueReply(s, s.buf.address(), NbdWire.SIMPLE_REPLY_BYTES);
        }
    }

    private void queueReply(Slot s, long addr, int len) {
        s.sendAddr = addr;
        s.sendLen = len;
        s.sent = 0;
        if (replyTail == null) {
            replyHead = s;
        } else {
            replyTail.nextReply = s;
        }
        replyTail = s;
        if (replyHead == s) {
            sendReplies();
        }
    }

    /** Writes queued replies in order; on EAGAIN waits for the socket to be writable. */
    private void sendReplies() {
        while (replyHead != null) {
            Slot s = replyHead;
            if (closed) {
                return;
            }
            long n = FileIo.write(fd, s.sendAddr + s.sent, s.sendLen - s.sent);
            if (n == -Errno.EAGAIN) {
                handler.wantWritable(true, ignored -> sendReplies());
                return;
            }
            if (n < 0) {
                LOG.log(System.Logger.Level.INFO, () -> name + ": reply not sent, client gone: " + Errno.name((int) -n));
                dropReplies();
                disconnect(null);
                return;
            }
            s.sent += (int) n;
            if (s.sent < s.sendLen) {
                continue;
            }
            replyHead = s.nextReply;
            if (replyHead == null) {
                replyTail = null;
            }
            freeSlot(s);
        }
        handler.wantWritable(false, null);
    }

    private void dropReplies() {
        while (replyHead != null) {
            Slot s = replyHead;
            replyHead = s.nextReply;
            freeSlot(s);
        }
        replyTail = null;
    }

    // ---------------------------------------------------------------- drained sections, close

    /** Stops reading requests for a drained section of the node; {@code stopped} runs at once. */
    void pauseForDrain(Runnable stopped) {
        ctx.assertHome();
        drainPaused = true;
        updateReadInterest();
        stopped.run();
    }

    void resumeAfterDrain() {
        ctx.assertHome();
        drainPaused = false;
        updateReadInterest();
    }

    /**
     * Stops taking requests; once those in flight have completed (their replies sent if the client
     * is still there) closes the socket and the channel. {@code why} is logged when not null.
     */
    void disconnect(String why) {
        ctx.assertHome();
        if (closing) {
            return;
        }
        if (why != null) {
            LOG.log(System.Logger.Level.INFO, () -> name + ": disconnecting: " + why);
        }
        closing = true;
        state = State.STOPPED;
        if (reading != null) {
            freeSlot(reading);
            reading = null;
        }
        updateReadInterest();
        maybeClose();
    }

    private void maybeClose() {
        if (closed || freeSlots < SLOTS || handler == null) {
            return;
        }
        closed = true;
        handler.remove();
        FileIo.close(fd);
        export.node().closeChannel(channel);
        arena.close();
        LOG.log(System.Logger.Level.INFO, () -> name + ": closed after " + requests + " requests");
        server.transmissionDone(this);
    }
}
