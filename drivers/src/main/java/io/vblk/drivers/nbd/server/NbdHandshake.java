package io.vblk.drivers.nbd.server;

import io.vblk.aio.FdHandler;
import io.vblk.aio.sys.Errno;
import io.vblk.aio.sys.FileIo;
import io.vblk.drivers.nbd.NbdProtocol;
import io.vblk.drivers.nbd.NbdWire;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;

import static io.vblk.drivers.nbd.NbdProtocol.*;

/**
 * Home thread: the main loop (the server's context). No locking.
 *
 * <p>The fixed newstyle handshake of one client on the server's loop, as a non-blocking state
 * machine: greeting, client flags, then options until {@code NBD_OPT_GO} or
 * {@code NBD_OPT_EXPORT_NAME} hands the socket to the export's IoThread. Option haggling as
 * proto.md: {@code NBD_OPT_INFO}/{@code GO} (export and block-size information),
 * {@code NBD_OPT_LIST}, {@code NBD_OPT_STRUCTURED_REPLY}, {@code NBD_OPT_ABORT},
 * {@code NBD_OPT_LIST/SET_META_CONTEXT} ({@code base:allocation} only); any other option's
 * data is read and answered {@code NBD_REP_ERR_UNSUP}; an option longer than
 * {@link NbdProtocol#MAX_OPTION_BYTES} is skipped and answered {@code NBD_REP_ERR_TOO_BIG}. A bad
 * magic, unknown client flags or a peer that hangs up close the connection with a log line.
 */
final class NbdHandshake {
    private static final System.Logger LOG = System.getLogger(NbdHandshake.class.getName());
    private static final int OUT_BYTES = 64 * 1024;

    private enum State { CLIENT_FLAGS, OPTION_HEADER, OPTION_DATA, SKIP }

    private final NbdServer server;
    private final int fd;
    private final String name;
    private final Arena arena = Arena.ofConfined();
    private final MemorySegment in = arena.allocate(NbdProtocol.MAX_OPTION_BYTES + 64, 8);
    private final MemorySegment out = arena.allocate(OUT_BYTES, 8);
    private FdHandler handler;
    private State state = State.CLIENT_FLAGS;
    private int want = 4;
    private int have;
    private long skip;
    private int option;
    private int outLen;
    private int outSent;
    private boolean noZeroes;
    private boolean structured;
    /** {@code base:allocation} selected by NBD_OPT_SET_META_CONTEXT (block status answers it). */
    private boolean metaAllocation;
    /** Set when the handshake is over: after the output is out, hand over (export) or close (null). */
    private boolean finishing;
    private NbdExport handTo;
    private boolean done;

    NbdHandshake(NbdServer server, int fd, String name) {
        this.server = server;
        this.fd = fd;
        this.name = name;
    }

    String name() {
        return name;
    }

    void start() {
        handler = server.context().addFdHandler(name + " handshake", fd, ignored -> readable());
        NbdWire.putU64(out, 0, NBDMAGIC);
        NbdWire.putU64(out, 8, IHAVEOPT);
        NbdWire.putU16(out, 16, FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES);
        outLen = 18;
        flush();
    }

    /** Ends the handshake at once (the server is stopping). */
    void abort(String why) {
        if (!done) {
            LOG.log(System.Logger.Level.INFO, () -> name + ": closed during the handshake: " + why);
            end(null);
        }
    }

    private void readable() {
        while (!done && !finishing && outSent == outLen) {
            long n;
            if (state == State.SKIP) {
                n = FileIo.read(fd, in.address(), Math.min(skip, in.byteSize()));
            } else {
                n = FileIo.read(fd, in.address() + have, want - have);
            }
            if (n == -Errno.EAGAIN) {
                return;
            }
            if (n <= 0) {
                long r = n;
                LOG.log(System.Logger.Level.INFO, () -> name + ": " + (r == 0 ? "hung up" : "read failed: " + Errno.name((int) -r))
                        + " during the handshake");
                end(null);
                return;
            }
            if (state == State.SKIP) {
                skip -= n;
                if (skip == 0) {
                    reply(option, REP_ERR_TOO_BIG, 0);
                    expectOption();
                    flush();
                }
                continue;
            }
            have += (int) n;
            if (have == want) {
                step();
            }
        }
    }

    private void expectOption() {
        state = State.OPTION_HEADER;
        want = NbdWire.OPTION_BYTES;
        have = 0;
    }

    private void step() {
        switch (state) {
            case CLIENT_FLAGS -> {
                int flags = NbdWire.u32(in, 0);
                if ((flags & ~(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES)) != 0) {
                    fail("unknown client flags 0x" + Integer.toHexString(flags));
                    return;
                }
                noZeroes = (flags & FLAG_C_NO_ZEROES) != 0;
                expectOption();
            }
            case OPTION_HEADER -> {
                long magic = NbdWire.u64(in, 0);
                if (magic != IHAVEOPT) {
                    fail("bad option magic 0x" + Long.toHexString(magic));
                    return;
                }
                option = NbdWire.u32(in, 8);
                long len = Integer.toUnsignedLong(NbdWire.u32(in, 12));
                if (len > NbdProtocol.MAX_OPTION_BYTES) {
                    if (option == OPT_EXPORT_NAME) {
                        fail("NBD_OPT_EXPORT_NAME of " + len + " bytes");
                        return;
                    }
                    LOG.log(System.Logger.Level.INFO, () -> name + ": " + optionName(option) + " with " + len
                            + " bytes of data: skipped, answered NBD_REP_ERR_TOO_BIG");
                    state = State.SKIP;
                    skip = len;
                    return;
                }
                state = State.OPTION_DATA;
                want = (int) len;
                have = 0;
                if (want == 0) {
                    option(0);
                }
            }
            case OPTION_DATA -> option(want);
            default -> throw new IllegalStateException(state.name());
        }
    }

    private void option(int len) {
        int opt = option;
        expectOption();
        switch (opt) {
            case OPT_EXPORT_NAME -> {
                NbdExport e = server.lookup(string(0, len));
                if (e == null) {
                    fail("NBD_OPT_EXPORT_NAME of an unknown export '" + string(0, len) + "'");
                    return;
                }
                NbdWire.putU64(out, outLen, e.node().driver().length());
                NbdWire.putU16(out, outLen + 8, e.transmissionFlags());
                outLen += 10;
                if (!noZeroes) {
                    out.asSlice(outLen, 124).fill((byte) 0);
                    outLen += 124;
                }
                finish(e);
            }
            case OPT_ABORT -> {
                reply(opt, REP_ACK, 0);
                finish(null);
            }
            case OPT_LIST -> {
                if (len != 0) {
                    reply(opt, REP_ERR_INVALID, 0);
                    break;
                }
                for (NbdExport e : server.exports()) {
                    byte[] n = e.name().getBytes(StandardCharsets.UTF_8);
                    if (outLen + NbdWire.OPTION_REPLY_BYTES + 4 + n.length > OUT_BYTES - 64) {
                        break; // more exports than fit one batch of replies: the list is cut
                    }
                    int at = reply(opt, REP_SERVER, 4 + n.length);
                    NbdWire.putU32(out, at, n.length);
                    MemorySegment.copy(n, 0, out, ValueLayout.JAVA_BYTE, at + 4, n.length);
                }
                reply(opt, REP_ACK, 0);
            }
            case OPT_STRUCTURED_REPLY -> {
                if (len != 0) {
                    reply(opt, REP_ERR_INVALID, 0);
                } else {
                    structured = true;
                    reply(opt, REP_ACK, 0);
                }
            }
            case OPT_INFO, OPT_GO -> infoOrGo(opt, len);
            case OPT_LIST_META_CONTEXT, OPT_SET_META_CONTEXT -> metaContext(opt, len);
            default -> {
                LOG.log(System.Logger.Level.DEBUG, () -> name + ": " + optionName(opt) + " answered NBD_REP_ERR_UNSUP");
                reply(opt, REP_ERR_UNSUP, 0);
            }
        }
        flush();
    }

    /** NBD_OPT_INFO / NBD_OPT_GO: u32 name length, name, u16 count of info requests, u16 each. */
    private void infoOrGo(int opt, int len) {
        int nameLen = len >= 4 ? NbdWire.u32(in, 0) : -1;
        if (nameLen < 0 || nameLen > len - 6) {
            reply(opt, REP_ERR_INVALID, 0);
            return;
        }
        int requests = NbdWire.u16(in, 4 + nameLen);
        if (len != 6 + nameLen + 2 * requests) {
            reply(opt, REP_ERR_INVALID, 0);
            return;
        }
        NbdExport e = server.lookup(string(4, nameLen));
        if (e == null) {
            reply(opt, REP_ERR_UNKNOWN, 0);
            return;
        }
        int at = reply(opt, REP_INFO, 12);
        NbdWire.putU16(out, at, INFO_EXPORT);
        NbdWire.putU64(out, at + 2, e.node().driver().length());
        NbdWire.putU16(out, at + 10, e.transmissionFlags());
        // Always sent (proto.md allows it unrequested): O_DIRECT images need aligned requests.
        at = reply(opt, REP_INFO, 14);
        NbdWire.putU16(out, at, INFO_BLOCK_SIZE);
        NbdWire.putU32(out, at + 2, e.minimumBlock());
        NbdWire.putU32(out, at + 6, Math.max(4096, e.minimumBlock()));
        NbdWire.putU32(out, at + 10, NbdProtocol.MAX_PAYLOAD);
        reply(opt, REP_ACK, 0);
        if (opt == OPT_GO) {
            finish(e);
        }
    }

    /**
     * NBD_OPT_LIST_META_CONTEXT / NBD_OPT_SET_META_CONTEXT (proto.md "Metadata querying"): u32 name
     * length, name, u32 number of queries, each a u32 length and the query. The one context served
     * is {@code base:allocation}; LIST with no query, or the query {@code base:}, names it; SET
     * (after NBD_OPT_STRUCTURED_REPLY, as proto.md requires) selects it when asked by its full name.
     */
    private void metaContext(int opt, int len) {
        int nameLen = len >= 4 ? NbdWire.u32(in, 0) : -1;
        if (nameLen < 0 || nameLen > len - 8 || (opt == OPT_SET_META_CONTEXT && !structured)) {
            reply(opt, REP_ERR_INVALID, 0);
            return;
        }
        if (server.lookup(string(4, nameLen)) == null) {
            reply(opt, REP_ERR_UNKNOWN, 0);
            return;
        }
        int queries = NbdWire.u32(in, 4 + nameLen);
        boolean match = opt == OPT_LIST_META_CONTEXT && queries == 0;
        int at = 8 + nameLen;
        for (int i = 0; i < queries; i++) {
            int qLen = at + 4 <= len ? NbdWire.u32(in, at) : -1;
            if (qLen < 0 || qLen > len - at - 4) {
                reply(opt, REP_ERR_INVALID, 0);
                return;
            }
            String q = string(at + 4, qLen);
            match |= q.equals(BASE_ALLOCATION) || (opt == OPT_LIST_META_CONTEXT && q.equals("base:"));
            at += 4 + qLen;
        }
        if (at != len || queries < 0) {
            reply(opt, REP_ERR_INVALID, 0);
            return;
        }
        if (opt == OPT_SET_META_CONTEXT) {
            metaAllocation = match; // a SET replaces what an earlier one selected
        }
        if (match) {
            byte[] n = BASE_ALLOCATION.getBytes(StandardCharsets.US_ASCII);
            int d = reply(opt, REP_META_CONTEXT, 4 + n.length);
            NbdWire.putU32(out, d, opt == OPT_SET_META_CONTEXT ? NbdProtocol.CONTEXT_BASE_ALLOCATION : 0);
            MemorySegment.copy(n, 0, out, ValueLayout.JAVA_BYTE, d + 4, n.length);
        }
        reply(opt, REP_ACK, 0);
    }

    /** Appends an option reply header with room for {@code dataLen} bytes; returns where the data goes. */
    private int reply(int opt, int type, int dataLen) {
        NbdWire.optionReply(out, outLen, opt, type, dataLen);
        int at = outLen + NbdWire.OPTION_REPLY_BYTES;
        outLen = at + dataLen;
        return at;
    }

    private String string(int off, int len) {
        byte[] b = new byte[len];
        MemorySegment.copy(in, ValueLayout.JAVA_BYTE, off, b, 0, len);
        return new String(b, StandardCharsets.UTF_8);
    }

    private void finish(NbdExport e) {
        finishing = true;
        handTo = e;
        flush();
    }

    private void fail(String why) {
        LOG.log(System.Logger.Level.WARNING, () -> name + ": closing the connection: " + why);
        end(null);
    }

    /** Writes what is pending; on EAGAIN waits for the socket to be writable with reading off. */
    private void flush() {
        while (outSent < outLen) {
            long n = FileIo.write(fd, out.address() + outSent, outLen - outSent);
            if (n == -Errno.EAGAIN) {
                handler.setReadInterest(false);
                handler.wantWritable(true, ignored -> flush());
                return;
            }
            if (n < 0) {
                if (!(finishing && handTo == null)) {
                    LOG.log(System.Logger.Level.INFO, () -> name + ": write failed during the handshake: " + Errno.name((int) -n));
                }
                end(null);
                return;
            }
            outSent += (int) n;
        }
        outSent = 0;
        outLen = 0;
        if (done) {
            return;
        }
        handler.wantWritable(false, null);
        if (finishing) {
            end(handTo);
        } else {
            handler.setReadInterest(true);
        }
    }

    private void end(NbdExport export) {
        if (done) {
            return;
        }
        done = true;
        handler.remove();
        arena.close();
        if (export == null) {
            FileIo.close(fd);
        }
        server.handshakeDone(this, fd, export, structured, structured && metaAllocation);
    }
}
