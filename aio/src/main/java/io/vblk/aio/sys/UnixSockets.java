package io.vblk.aio.sys;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Any thread. Addresses passed as {@code long} must point at memory the caller keeps alive for
 * the call.
 *
 * <p>AF_UNIX stream sockets: listen, connect, accept4, socketpair, sendmsg/recvmsg with SCM_RIGHTS,
 * and poll(2) on one fd.
 * Every call returns its result or {@code -errno} (EAGAIN is a value, not an exception) and
 * retries EINTR itself; x86_64 Linux values. Part of the system-call facade: see the package overview.
 */
public final class UnixSockets {
    private UnixSockets() {
    }

    // poll.h
    public static final int POLLIN = 0x001;
    public static final int POLLOUT = 0x004;
    public static final int POLLERR = 0x008;
    public static final int POLLHUP = 0x010;
    public static final int POLLNVAL = 0x020;

    // sys/socket.h
    public static final int AF_UNIX = 1;
    public static final int SOCK_STREAM = 1;
    public static final int SOCK_NONBLOCK = FileIo.O_NONBLOCK;
    public static final int SOCK_CLOEXEC = FileIo.O_CLOEXEC;
    public static final int MSG_CTRUNC = 0x08;
    public static final int MSG_DONTWAIT = 0x40;
    public static final int MSG_NOSIGNAL = 0x4000;
    public static final int MSG_CMSG_CLOEXEC = 0x40000000;

    // ---------------------------------------------------------------- UNIX sockets

    /** A listening AF_UNIX stream socket bound to {@code path}, non-blocking and close-on-exec: fd or -errno. */
    public static int unixListen(String path, int backlog) {
        return atAddress(SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, path, (fd, sa, len) ->
                LibC.bind(fd, sa, len) < 0 || LibC.listen(fd, backlog) < 0 ? LibC.err() : 0);
    }

    /**
     * As {@link #unixListen(String, int)}, with the socket file's permission bits set to
     * {@code mode} between bind and listen: nobody can connect before the mode holds (a connect to
     * a bound socket that does not listen yet is refused). On failure after bind the file is removed.
     */
    public static int unixListen(String path, int backlog, int mode) {
        return atAddress(SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, path, (fd, sa, len) -> {
            if (LibC.bind(fd, sa, len) < 0) {
                return LibC.err();
            }
            if (LibC.chmod(path, mode) < 0 || LibC.listen(fd, backlog) < 0) {
                int r = LibC.err();
                LibC.unlink(path);
                return r;
            }
            return 0;
        });
    }

    /**
     * Connects an AF_UNIX stream socket (close-on-exec) to {@code path}; the connect itself blocks
     * (AF_UNIX connects complete at once unless the backlog is full), then the fd is made
     * non-blocking if asked. Returns the fd or -errno (-ENOENT, -ECONNREFUSED, ...).
     */
    public static int unixConnect(String path, boolean nonBlocking) {
        return atAddress(SOCK_STREAM | SOCK_CLOEXEC, path, (fd, sa, len) -> {
            int r;
            do {
                r = LibC.connect(fd, sa, len) < 0 ? LibC.err() : 0;
            } while (r == -Errno.EINTR);
            return r == 0 && nonBlocking ? FileIo.setNonBlocking(fd, true) : r;
        });
    }

    /** What {@link #atAddress} does with the new socket and {@code path} as a {@code sockaddr_un}: 0 or -errno. */
    @FunctionalInterface
    private interface AddressOp {
        int apply(int fd, long sockaddr, int len);
    }

    /**
     * A new AF_UNIX socket of {@code type}, handed to {@code op} with {@code path} as its address:
     * the fd, or -errno (the socket is closed when the address or {@code op} fails). Set-up only.
     */
    private static int atAddress(int type, String path, AddressOp op) {
        int fd = LibC.socket(AF_UNIX, type, 0);
        if (fd < 0) {
            return LibC.err();
        }
        try (Arena a = Arena.ofConfined()) {
            MemorySegment sa = a.allocate(SockAddrUnLayout.BYTES, 8);
            int len = SockAddrUnLayout.write(sa, path);
            int r = len < 0 ? len : op.apply(fd, sa.address(), len);
            if (r < 0) {
                LibC.close(fd);
                return r;
            }
            return fd;
        }
    }

    /** {@code accept4(2)} with SOCK_NONBLOCK|SOCK_CLOEXEC: the connection's fd, or -EAGAIN when none waits, or -errno. */
    public static int accept(int listenFd) {
        Scratch s = Scratch.get();
        try {
            int r;
            do {
                r = (int) Downcalls.ACCEPT4.invokeExact(s.capture, listenFd, 0L, 0L, SOCK_NONBLOCK | SOCK_CLOEXEC);
            } while (r < 0 && s.errno() == Errno.EINTR);
            return r < 0 ? -s.errno() : r;
        } catch (Throwable t) {
            throw Scratch.linkFailure(t);
        }
    }

    /** A connected AF_UNIX stream pair (blocking, close-on-exec) into {@code sv[0..1]}: 0 or -errno. */
    public static int socketpair(int[] sv) {
        if (sv.length < 2) {
            return -Errno.EINVAL;
        }
        return LibC.socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 ? LibC.err() : 0;
    }

    /**
     * {@code sendmsg(2)} of {@code len} bytes at {@code buf} with {@code fds[0..nfds)} attached as
     * SCM_RIGHTS, MSG_NOSIGNAL (a closed peer gives -EPIPE, not SIGPIPE). Returns bytes sent or
     * -errno; -EINVAL if {@code nfds} is outside 0..{@link ReceivedFds#MAX_FDS}.
     */
    public static long sendmsg(int fd, long buf, long len, int[] fds, int nfds) {
        if (nfds < 0 || nfds > ReceivedFds.MAX_FDS || (nfds > 0 && (fds == null || fds.length < nfds))) {
            return -Errno.EINVAL;
        }
        Scratch s = Scratch.get();
        MemorySegment m = s.mem;
        MsgHdrLayout.writeIovec(m, Scratch.SCR_IOVEC, buf, len);
        long control = 0;
        long controlLen = 0;
        if (nfds > 0) {
            controlLen = MsgHdrLayout.cmsgSpace(4 * nfds);
            m.asSlice(Scratch.SCR_CONTROL, controlLen).fill((byte) 0);
            m.set(ValueLayout.JAVA_LONG, Scratch.SCR_CONTROL + MsgHdrLayout.CMSG_LEN_OFF, MsgHdrLayout.cmsgLen(4 * nfds));
            m.set(ValueLayout.JAVA_INT, Scratch.SCR_CONTROL + MsgHdrLayout.CMSG_LEVEL, MsgHdrLayout.SOL_SOCKET);
            m.set(ValueLayout.JAVA_INT, Scratch.SCR_CONTROL + MsgHdrLayout.CMSG_TYPE, MsgHdrLayout.SCM_RIGHTS);
            for (int i = 0; i < nfds; i++) {
                m.set(ValueLayout.JAVA_INT, Scratch.SCR_CONTROL + MsgHdrLayout.CMSG_DATA + 4L * i, fds[i]);
            }
            control = s.base + Scratch.SCR_CONTROL;
        }
        MsgHdrLayout.writeMsgHdr(m, Scratch.SCR_MSGHDR, s.base + Scratch.SCR_IOVEC, control, controlLen);
        try {
            long r;
            do {
                r = (long) Downcalls.SENDMSG.invokeExact(s.capture, fd, s.base + Scratch.SCR_MSGHDR, MSG_NOSIGNAL);
            } while (r < 0 && s.errno() == Errno.EINTR);
            return r < 0 ? -s.errno() : r;
        } catch (Throwable t) {
            throw Scratch.linkFailure(t);
        }
    }

    /**
     * {@code recvmsg(2)} into {@code len} bytes at {@code buf}, with MSG_CMSG_CLOEXEC. Fds that came
     * with the message land in {@code out} (cleared first); {@code out.truncated} is set when the
     * kernel reported MSG_CTRUNC (more than {@link ReceivedFds#MAX_FDS} were attached). Returns bytes
     * received (0 at end of stream), -EAGAIN on an empty non-blocking socket, or -errno.
     */
    public static long recvmsg(int fd, long buf, long len, ReceivedFds out) {
        out.clear();
        Scratch s = Scratch.get();
        MemorySegment m = s.mem;
        MsgHdrLayout.writeIovec(m, Scratch.SCR_IOVEC, buf, len);
        MsgHdrLayout.writeMsgHdr(m, Scratch.SCR_MSGHDR, s.base + Scratch.SCR_IOVEC, s.base + Scratch.SCR_CONTROL, MsgHdrLayout.CONTROL_BYTES);
        long r;
        try {
            do {
                r = (long) Downcalls.RECVMSG.invokeExact(s.capture, fd, s.base + Scratch.SCR_MSGHDR, MSG_CMSG_CLOEXEC);
            } while (r < 0 && s.errno() == Errno.EINTR);
        } catch (Throwable t) {
            throw Scratch.linkFailure(t);
        }
        if (r < 0) {
            return -s.errno();
        }
        out.truncated = (MsgHdrLayout.msgFlags(m, Scratch.SCR_MSGHDR) & MSG_CTRUNC) != 0;
        long controlLen = MsgHdrLayout.controlLen(m, Scratch.SCR_MSGHDR);
        long off = 0;
        // Walk the cmsgs as CMSG_FIRSTHDR/CMSG_NXTHDR do.
        while (off + MsgHdrLayout.CMSGHDR_BYTES <= controlLen) {
            long at = Scratch.SCR_CONTROL + off;
            long cmsgLen = m.get(ValueLayout.JAVA_LONG, at + MsgHdrLayout.CMSG_LEN_OFF);
            if (cmsgLen < MsgHdrLayout.CMSGHDR_BYTES || off + cmsgLen > controlLen) {
                break;
            }
            if (m.get(ValueLayout.JAVA_INT, at + MsgHdrLayout.CMSG_LEVEL) == MsgHdrLayout.SOL_SOCKET
                    && m.get(ValueLayout.JAVA_INT, at + MsgHdrLayout.CMSG_TYPE) == MsgHdrLayout.SCM_RIGHTS) {
                int n = (int) ((cmsgLen - MsgHdrLayout.CMSGHDR_BYTES) / 4);
                for (int i = 0; i < n; i++) {
                    int rfd = m.get(ValueLayout.JAVA_INT, at + MsgHdrLayout.CMSG_DATA + 4L * i);
                    if (out.count < ReceivedFds.MAX_FDS) {
                        out.fds[out.count++] = rfd;
                    } else {
                        LibC.close(rfd); // cannot happen with CONTROL_BYTES of room; never leak
                        out.truncated = true;
                    }
                }
            }
            off += MsgHdrLayout.cmsgAlign((int) cmsgLen);
        }
        return r;
    }

    /**
     * {@code poll(2)} on one fd: its {@code revents} (non-zero), 0 on timeout, or -errno.
     * {@code timeoutMs} &lt; 0 waits forever.
     */
    public static int poll(int fd, int events, int timeoutMs) {
        Scratch s = Scratch.get();
        MemorySegment m = s.mem;
        // struct pollfd { int fd; short events; short revents; }  (poll.h, 8 bytes)
        m.set(ValueLayout.JAVA_INT, Scratch.SCR_POLLFD, fd);
        m.set(ValueLayout.JAVA_SHORT, Scratch.SCR_POLLFD + 4, (short) events);
        m.set(ValueLayout.JAVA_SHORT, Scratch.SCR_POLLFD + 6, (short) 0);
        try {
            // Fast twin first (no errno capture, which allocates when not inlined); poll has no side
            // effects, so a failed call is simply made again with capture to learn errno.
            int r = (int) Downcalls.POLL_FAST.invokeExact(s.base + Scratch.SCR_POLLFD, 1L, timeoutMs);
            while (r < 0) {
                r = (int) Downcalls.POLL.invokeExact(s.capture, s.base + Scratch.SCR_POLLFD, 1L, timeoutMs);
                if (r >= 0 || s.errno() != Errno.EINTR) {
                    break;
                }
            }
            if (r < 0) {
                return -s.errno();
            }
            return r == 0 ? 0 : m.get(ValueLayout.JAVA_SHORT, Scratch.SCR_POLLFD + 6) & 0xffff;
        } catch (Throwable t) {
            throw Scratch.linkFailure(t);
        }
    }
}
