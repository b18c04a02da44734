package io.vblk.drivers.nbd.client;

import io.vblk.aio.AioContext;
import io.vblk.aio.FdHandler;
import io.vblk.aio.sys.Errno;
import io.vblk.aio.sys.FileIo;
import io.vblk.aio.sys.UnixSockets;
import io.vblk.drivers.nbd.NbdAddress;
import io.vblk.drivers.nbd.NbdWire;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.time.Duration;

import static io.vblk.drivers.nbd.NbdProtocol.*;

/**
 * Any thread: set-up time, on the thread that opens the driver or a channel, each wait bounded by
 * {@code timeoutMs}. Off any context's home thread it blocks in {@code poll}; on a home thread
 * (a qcow2 open on the main loop whose backing is this driver, a channel's reconnect) it waits in
 * a nested poll of that context ({@link AioContext#waitWhile}, QEMU's coroutine yielding inside
 * {@code AIO_WAIT_WHILE}), so the context's own handlers keep running meanwhile — among them this
 * process's NBD server when the export is served by the same daemon (seed 004).
 *
 * <p>The client's side of the fixed newstyle handshake: greeting, client flags, then
 * {@code NBD_OPT_GO} asking for block sizes (falling back to {@code NBD_OPT_EXPORT_NAME} on a
 * server that answers NBD_REP_ERR_UNSUP). Simple replies only: no structured reply is negotiated.
 * A server that breaks the protocol or refuses the export fails the open with a message naming
 * what it sent.
 */
final class NbdClientHandshake {
    /** What the handshake learnt; {@code fd} is connected, non-blocking, in transmission. */
    record Connection(int fd, long size, int flags, int minBlock) {
    }

    private final int fd;
    private final String where;
    private final int timeoutMs;
    private final Arena arena = Arena.ofConfined();
    private final MemorySegment buf = arena.allocate(8192, 8);

    private NbdClientHandshake(int fd, String where, int timeoutMs) {
        this.fd = fd;
        this.where = where;
        this.timeoutMs = timeoutMs;
    }

    /** Connects to {@code addr} and negotiates {@code export}; throws {@link IllegalStateException} naming the failure. */
    static Connection connect(NbdAddress addr, String export, int timeoutMs) {
        String where = "nbd " + addr.describe() + " export '" + export + "'";
        int fd = addr.connect();
        if (fd < 0) {
            throw new IllegalStateException(where + ": connect failed: " + Errno.name(-fd));
        }
        NbdClientHandshake h = new NbdClientHandshake(fd, where, timeoutMs);
        try {
            return h.negotiate(export);
        } catch (RuntimeException e) {
            FileIo.close(fd);
            throw e;
        } finally {
            h.arena.close();
        }
    }

    private Connection negotiate(String export) {
        readFully(18);
        if (NbdWire.u64(buf, 0) != NBDMAGIC || NbdWire.u64(buf, 8) != IHAVEOPT) {
            throw fail("not a newstyle NBD server (greeting 0x" + Long.toHexString(NbdWire.u64(buf, 0)) + ")");
        }
        int serverFlags = NbdWire.u16(buf, 16);
        if ((serverFlags & FLAG_FIXED_NEWSTYLE) == 0) {
            throw fail("server does not speak fixed newstyle");
        }
        boolean noZeroes = (serverFlags & FLAG_NO_ZEROES) != 0;
        NbdWire.putU32(buf, 0, FLAG_C_FIXED_NEWSTYLE | (noZeroes ? FLAG_C_NO_ZEROES : 0));
        writeFully(4);
        byte[] name = export.getBytes(StandardCharsets.UTF_8);
        if (name.length > 4096) {
            throw fail("export name longer than 4096 bytes");
        }
        // NBD_OPT_GO: u32 name length, name, u16 one info request: NBD_INFO_BLOCK_SIZE.
        int dataLen = 4 + name.length + 2 + 2;
        NbdWire.putU64(buf, 0, IHAVEOPT);
        NbdWire.putU32(buf, 8, OPT_GO);
        NbdWire.putU32(buf, 12, dataLen);
        NbdWire.putU32(buf, 16, name.length);
        MemorySegment.copy(name, 0, buf, ValueLayout.JAVA_BYTE, 20, name.length);
        NbdWire.putU16(buf, 20 + name.length, 1);
        NbdWire.putU16(buf, 22 + name.length, INFO_BLOCK_SIZE);
        writeFully(16 + dataLen);
        long size = -1;
        int flags = 0;
        int minBlock = 1;
        while (true) {
            readFully(NbdWire.OPTION_REPLY_BYTES);
            if (NbdWire.u64(buf, 0) != REPLY_MAGIC) {
                throw fail("bad option reply magic 0x" + Long.toHexString(NbdWire.u64(buf, 0)));
            }
            int type = NbdWire.u32(buf, 12);
            int len = NbdWire.u32(buf, 16);
            if (len < 0 || len > 4096 + 64) {
                throw fail("option reply of " + Integer.toUnsignedString(len) + " bytes");
            }
            readFully(len);
            if (type == REP_ACK) {
                break;
            }
            if (type == REP_INFO && len >= 2) {
                int info = NbdWire.u16(buf, 0);
                if (info == INFO_EXPORT && len >= 12) {
                    size = NbdWire.u64(buf, 2);
                    flags = NbdWire.u16(buf, 10);
                } else if (info == INFO_BLOCK_SIZE && len >= 14) {
                    minBlock = Math.max(1, NbdWire.u32(buf, 2));
                }
                continue;
            }
            if (type == REP_ERR_UNSUP) {
                return exportName(name, noZeroes);
            }
            if (type < 0) { // the error replies have the top bit set
                String msg = len > 0 ? " (" + string(len) + ")" : "";
                throw fail(type == REP_ERR_UNKNOWN ? "the server has no such export" + msg
                        : "NBD_OPT_GO refused with reply 0x" + Integer.toHexString(type) + msg);
            }
        }
        if (size < 0) {
            throw fail("the server sent no NBD_INFO_EXPORT");
        }
        return new Connection(fd, size, flags, minBlock);
    }

    /** The old way in: NBD_OPT_EXPORT_NAME, answered with size and flags (or a closed connection). */
    private Connection exportName(byte[] name, boolean noZeroes) {
        NbdWire.putU64(buf, 0, IHAVEOPT);
        NbdWire.putU32(buf, 8, OPT_EXPORT_NAME);
        NbdWire.putU32(buf, 12, name.length);
        MemorySegment.copy(name, 0, buf, ValueLayout.JAVA_BYTE, 16, name.length);
        writeFully(16 + name.length);
        readFully(10 + (noZeroes ? 0 : 124));
        return new Connection(fd, NbdWire.u64(buf, 0), NbdWire.u16(buf, 8), 1);
    }

    private String string(int len) {
        byte[] b = new byte[len];
        MemorySegment.copy(buf, ValueLayout.JAVA_BYTE, 0, b, 0, len);
        return new String(b, StandardCharsets.UTF_8);
    }

    private void readFully(int len) {
        int have = 0;
        while (have < len) {
            long n = FileIo.read(fd, buf.address() + have, len - have);
            if (n == -Errno.EAGAIN) {
                if (!awaitReady(false)) {
                    throw fail("no answer within " + timeoutMs + " ms");
                }
                continue;
            }
            if (n <= 0) {
                throw fail(n == 0 ? "the server closed the connection" : "read failed: " + Errno.name((int) -n));
            }
            have += (int) n;
        }
    }

    private void writeFully(int len) {
        int sent = 0;
        while (sent < len) {
            long n = FileIo.write(fd, buf.address() + sent, len - sent);
            if (n == -Errno.EAGAIN) {
                if (!awaitReady(true)) {
                    throw fail("cannot send within " + timeoutMs + " ms");
                }
                continue;
            }
            if (n < 0) {
                throw fail("write failed: " + Errno.name((int) -n));
            }
            sent += (int) n;
        }
    }

    /**
     * Waits until the socket is readable (or writable), at most {@code timeoutMs}; false when the
     * time passed. On a context's home thread: a nested wait of that context with a handler on the
     * socket, never a blocking poll that would stop the context's other handlers.
     */
    private boolean awaitReady(boolean write) {
        AioContext here = AioContext.current();
        if (here == null) {
            return UnixSockets.poll(fd, write ? UnixSockets.POLLOUT : UnixSockets.POLLIN, timeoutMs) != 0;
        }
        boolean[] ready = {false};
        FdHandler h = here.addFdHandler("nbd handshake " + where, fd, ignored -> ready[0] = true);
        try {
            if (write) {
                h.setReadInterest(false);
                h.wantWritable(true, ignored -> ready[0] = true);
            }
            return here.waitWhile(() -> !ready[0], Duration.ofMillis(timeoutMs));
        } finally {
            h.remove();
        }
    }

    private IllegalStateException fail(String why) {
        return new IllegalStateException(where + ": " + why);
    }
}
