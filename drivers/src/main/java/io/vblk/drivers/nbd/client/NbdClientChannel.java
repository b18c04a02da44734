package io.vblk.drivers.nbd.client;

import io.vblk.aio.AioContext;
import io.vblk.aio.FdHandler;
import io.vblk.aio.Timer;
import io.vblk.aio.sys.Errno;
import io.vblk.aio.sys.FileIo;
import io.vblk.drivers.BlockIo;
import io.vblk.drivers.ChannelBase;
import io.vblk.drivers.IoVec;
import io.vblk.drivers.nbd.NbdProtocol;
import io.vblk.drivers.nbd.NbdWire;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayDeque;

import static io.vblk.drivers.nbd.NbdProtocol.*;

/**
 * Home thread: the owning IoThread. No locking.
 *
 * <p>One NBD connection driven from its IoThread: up to {@link #SLOTS} requests in flight, each in
 * a preallocated slot whose index is the request's cookie; more wait in a queue. Requests go out
 * with {@code writev} of the header and the caller's own buffers (a WRITE's data is not copied),
 * replies are read with {@code readv} straight into the READ's buffers; a partial write or read
 * keeps its place and goes on when the socket is ready (write interest on the fd handler).
 *
 * <p>A lost connection (end of stream, an error, a reply the protocol does not allow) is
 * re-established from a timer, once a second, for as long as the channel is open. With
 * {@code reconnect-delay} &gt; 0 the requests that were in flight and those that arrive meanwhile
 * wait and are sent again on the new connection; once the delay has passed since the loss (or at
 * once with 0, QEMU's default), they complete with -EIO.
 */
final class NbdClientChannel extends ChannelBase {
    private static final System.Logger LOG = System.getLogger(NbdClientChannel.class.getName());
    static final int SLOTS = 64;
    private static final long RETRY_NANOS = 1_000_000_000L;

    private static final class Slot {
        final int index;
        final MemorySegment hdr;
        BlockIo io;
        int headerBytes;
        Slot nextSend;

        Slot(int index, Arena arena) {
            this.index = index;
            this.hdr = arena.allocate(NbdWire.REQUEST_BYTES, 8);
        }
    }

    private enum Rx { HEADER, DATA }

    private final NbdClientDriver nbd;
    private final Arena arena = Arena.ofShared();
    private final Slot[] slots = new Slot[SLOTS];
    private final ArrayDeque<Slot> freeSlots = new ArrayDeque<>(SLOTS);
    private final ArrayDeque<BlockIo> waiting = new ArrayDeque<>(256);
    private final IoVec scratch = new IoVec(arena, 1024);
    private final MemorySegment reply = arena.allocate(NbdWire.SIMPLE_REPLY_BYTES, 8);
    private final Timer retry;
    private final Timer deadline;
    private final String name;
    private int fd = -1;
    private FdHandler handler;
    private Slot sendHead;
    private Slot sendTail;
    private long sendOff;
    private Rx rx = Rx.HEADER;
    private int replyHave;
    private Slot receiving;
    private long dataHave;
    private long lostAt;
    private boolean loggedRetryFailure;
    private long reconnects;

    NbdClientChannel(AioContext ctx, NbdClientDriver driver, int fd) {
        super(ctx, driver);
        this.nbd = driver;
        this.name = "nbd " + driver.address().describe() + " export '" + driver.export() + "' on " + ctx.name();
        for (int i = 0; i < SLOTS; i++) {
            slots[i] = new Slot(i, arena);
            freeSlots.add(slots[i]);
        }
        this.retry = ctx.timer(name + " reconnect", this::retryConnect);
        this.deadline = ctx.timer(name + " reconnect-delay", this::failWaiting);
        attach(fd);
    }

    /** Connections established again after a loss. Home thread. */
    long reconnects() {
        return reconnects;
    }

    private void attach(int newFd) {
        fd = newFd;
        handler = ctx.addFdHandler(name, fd, ignored -> readable());
        rx = Rx.HEADER;
        replyHave = 0;
        receiving = null;
    }

    // ---------------------------------------------------------------- submission

    /** A read-only export refuses every writing operation with EROFS, whether or not it offers TRIM/WRITE_ZEROES. */
    @Override
    protected int check(BlockIo io) {
        if (io.op != BlockIo.READ && io.op != BlockIo.FLUSH && io.op >= 0 && io.op <= BlockIo.WRITE_ZEROES
                && driver.readOnly()) {
            return -Errno.EROFS;
        }
        return super.check(io);
    }

    @Override
    protected void start(BlockIo io) {
        if ((io.op == BlockIo.READ || io.op == BlockIo.WRITE) && io.iov.totalLength() > MAX_PAYLOAD) {
            complete(io, -Errno.EINVAL); // proto.md: larger payloads need the server's consent
            return;
        }
        if (fd < 0 && !mayWait()) {
            complete(io, -Errno.EIO);
            return;
        }
        Slot s = fd < 0 ? null : freeSlots.poll();
        if (s == null) {
            waiting.add(io);
            return;
        }
        send(s, io);
    }

    /** While disconnected: whether a request may wait for the connection (inside reconnect-delay). */
    private boolean mayWait() {
        return nbd.reconnectDelaySeconds() > 0 && ctx.now() - lostAt < nbd.reconnectDelaySeconds() * 1_000_000_000L;
    }

    private void send(Slot s, BlockIo io) {
        s.io = io;
        int type;
        int flags = 0;
        long length;
        switch (io.op) {
            case BlockIo.READ -> {
                type = CMD_READ;
                length = io.iov.totalLength();
            }
            case BlockIo.WRITE -> {
                type = CMD_WRITE;
                length = io.iov.totalLength();
                if ((io.flags & BlockIo.FLAG_FUA) != 0 && (nbd.flags() & FLAG_SEND_FUA) != 0) {
                    flags = CMD_FLAG_FUA;
                }
            }
            case BlockIo.FLUSH -> {
                type = CMD_FLUSH;
                length = 0;
            }
            case BlockIo.DISCARD -> {
                type = CMD_TRIM;
                length = io.length;
            }
            default -> { // WRITE_ZEROES
                type = CMD_WRITE_ZEROES;
                length = io.length;
                if ((io.flags & BlockIo.FLAG_MAY_UNMAP) == 0) {
                    flags = CMD_FLAG_NO_HOLE;
                }
            }
        }
        if (length > 0xffffffffL) {
            s.io = null;
            freeSlots.push(s);
            complete(io, -Errno.EINVAL);
            return;
        }
        NbdWire.request(s.hdr, 0, flags, type, s.index, io.op == BlockIo.FLUSH ? 0 : io.offset, (int) length);
        s.headerBytes = NbdWire.REQUEST_BYTES;
        s.nextSend = null;
        if (sendTail == null) {
            sendHead = s;
        } else {
            sendTail.nextSend = s;
        }
        sendTail = s;
        if (sendHead == s) {
            flushSends();
        }
    }

    /** Writes queued requests in order; a partial write keeps its offset and waits for write readiness. */
    private void flushSends() {
        while (sendHead != null && fd >= 0) {
            Slot s = sendHead;
            IoVec data = s.io.op == BlockIo.WRITE ? s.io.iov : null;
            long total = s.headerBytes + (data != null ? data.totalLength() : 0);
            gather(s.hdr.address(), s.headerBytes, data, sendOff);
            long n = FileIo.writev(fd, scratch.address(), scratch.count());
            if (n == -Errno.EAGAIN) {
                handler.wantWritable(true, ignored -> flushSends());
                return;
            }
            if (n < 0) {
                connectionLost("send failed: " + Errno.name((int) -n));
                return;
            }
            sendOff += n;
            if (sendOff == total) {
                sendOff = 0;
                sendHead = s.nextSend;
                if (sendHead == null) {
                    sendTail = null;
                }
            }
        }
        if (handler != null && fd >= 0) {
            handler.wantWritable(false, null);
        }
    }

    /** Fills {@link #scratch} with the header and the data, the first {@code skip} bytes left out. */
    private void gather(long hdr, int hdrLen, IoVec data, long skip) {
        scratch.clear();
        if (hdrLen > 0) {
            if (skip < hdrLen) {
                scratch.add(hdr + skip, hdrLen - skip);
                skip = 0;
            } else {
                skip -= hdrLen;
            }
        }
        if (data == null) {
            return;
        }
        for (int i = 0, n = data.count(); i < n; i++) {
            long len = data.length(i);
            if (skip >= len) {
                skip -= len;
                continue;
            }
            if (!scratch.add(data.base(i) + skip, len - skip)) {
                return; // the rest goes in the next call
            }
            skip = 0;
        }
    }

    // ---------------------------------------------------------------- replies

    private void readable() {
        while (fd >= 0) {
            long n;
            if (rx == Rx.HEADER) {
                n = FileIo.read(fd, reply.address() + replyHave, NbdWire.SIMPLE_REPLY_BYTES - replyHave);
            } else {
                gather(0, 0, receiving.io.iov, dataHave);
                n = FileIo.readv(fd, scratch.address(), scratch.count());
            }
            if (n == -Errno.EAGAIN) {
                return;
            }
            if (n <= 0) {
                connectionLost(n == 0 ? "the server closed the connection" : "read failed: " + Errno.name((int) -n));
                return;
            }
            if (rx == Rx.DATA) {
                dataHave += n;
                if (dataHave == receiving.io.iov.totalLength()) {
                    Slot s = receiving;
                    receiving = null;
                    rx = Rx.HEADER;
                    finish(s, s.io.iov.totalLength());
                }
                continue;
            }
            replyHave += (int) n;
            if (replyHave < NbdWire.SIMPLE_REPLY_BYTES) {
                continue;
            }
            replyHave = 0;
            int magic = NbdWire.u32(reply, 0);
            int error = NbdWire.u32(reply, 4);
            long cookie = NbdWire.u64(reply, 8);
            if (magic != SIMPLE_REPLY_MAGIC) {
                connectionLost("bad reply magic 0x" + Integer.toHexString(magic));
                return;
            }
            Slot s = cookie >= 0 && cookie < SLOTS ? slots[(int) cookie] : null;
            if (s == null || s.io == null || isQueuedForSend(s)) {
                connectionLost("reply for cookie " + cookie + ", which is not in flight");
                return;
            }
            if (error != 0) {
                finish(s, NbdProtocol.toErrno(error));
            } else if (s.io.op == BlockIo.READ && s.io.iov.totalLength() > 0) {
                receiving = s;
                dataHave = 0;
                rx = Rx.DATA;
            } else {
                finish(s, s.io.op == BlockIo.WRITE ? s.io.iov.totalLength() : 0);
            }
        }
    }

    /** True while {@code s}'s request has not left completely (no reply can be for it yet). */
    private boolean isQueuedForSend(Slot s) {
        for (Slot q = sendHead; q != null; q = q.nextSend) {
            if (q == s) {
                return q != sendHead || sendOff < NbdWire.REQUEST_BYTES;
            }
        }
        return false;
    }

    private void finish(Slot s, long result) {
        BlockIo io = s.io;
        s.io = null;
        BlockIo next = fd >= 0 ? waiting.poll() : null;
        if (next != null) {
            send(s, next);
        } else {
            freeSlots.push(s);
        }
        complete(io, result);
    }

    // ---------------------------------------------------------------- losing and regaining the connection

    private void connectionLost(String why) {
        LOG.log(System.Logger.Level.WARNING, () -> name + ": connection lost: " + why
                + (nbd.reconnectDelaySeconds() > 0 ? "; reconnecting, requests wait up to "
                + nbd.reconnectDelaySeconds() + " s" : "; reconnecting, requests fail until then (reconnect-delay=0)"));
        dropConnection();
        lostAt = ctx.now();
        // Requests that were in flight go back to the head of the queue, in cookie order.
        for (int i = SLOTS - 1; i >= 0; i--) {
            Slot s = slots[i];
            if (s.io != null) {
                waiting.addFirst(s.io);
                s.io = null;
                freeSlots.push(s);
            }
        }
        if (nbd.reconnectDelaySeconds() > 0) {
            deadline.armIn(nbd.reconnectDelaySeconds() * 1_000_000_000L);
        } else {
            failWaiting();
        }
        loggedRetryFailure = false;
        retry.armIn(0);
    }

    private void dropConnection() {
        if (handler != null) {
            handler.remove();
            handler = null;
        }
        if (fd >= 0) {
            FileIo.close(fd);
            fd = -1;
        }
        sendHead = null;
        sendTail = null;
        sendOff = 0;
        receiving = null;
        rx = Rx.HEADER;
        replyHave = 0;
    }

    /** The reconnect-delay has passed: everything waiting fails with EIO. */
    private void failWaiting() {
        if (fd >= 0) {
            return;
        }
        BlockIo io;
        while ((io = waiting.poll()) != null) {
            complete(io, -Errno.EIO);
        }
    }

    private void retryConnect() {
        if (isClosed() || fd >= 0) {
            return;
        }
        NbdClientHandshake.Connection c;
        try {
            c = nbd.reconnect();
        } catch (IllegalStateException e) {
            if (!loggedRetryFailure) {
                loggedRetryFailure = true;
                LOG.log(System.Logger.Level.INFO, () -> name + ": reconnect failed, retrying every second: " + e.getMessage());
            }
            retry.armIn(RETRY_NANOS);
            return;
        }
        reconnects++;
        deadline.cancel();
        attach(c.fd());
        LOG.log(System.Logger.Level.INFO, () -> name + ": reconnected; " + waiting.size() + " requests resent");
        Slot s;
        while (!waiting.isEmpty() && (s = freeSlots.poll()) != null) {
            send(s, waiting.poll());
        }
    }

    @Override
    protected void release() {
        retry.cancel();
        deadline.cancel();
        if (fd >= 0) {
            // NBD_CMD_DISC: best effort, the server closes on it.
            NbdWire.request(slots[0].hdr, 0, 0, CMD_DISC, 0, 0, 0);
            FileIo.write(fd, slots[0].hdr.address(), NbdWire.REQUEST_BYTES);
        }
        dropConnection();
        arena.close();
    }
}
