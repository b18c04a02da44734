package io.vblk.aio.sys;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.net.Inet4Address;
import java.net.Inet6Address;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.nio.ByteOrder;

/**
 * Any thread: set-up-time calls only (listen, connect, socket options).
 *
 * <p>TCP stream sockets over IPv4 or IPv6: a listening socket (SO_REUSEADDR, non-blocking,
 * close-on-exec) and a blocking connect; accepted and connected sockets get TCP_NODELAY (a
 * request protocol such as NBD sends small headers it waits on). Accept with
 * {@link UnixSockets#accept}, which works on any listening socket. Every call returns its result or
 * {@code -errno}. Part of the system-call facade: see the package overview.
 *
 * <pre>
 *   struct sockaddr_in  (16 bytes)          struct sockaddr_in6 (28 bytes)
 *     0  u16 sin_family  (AF_INET = 2)        0  u16 sin6_family (AF_INET6 = 10)
 *     2  u16 sin_port    (big-endian)         2  u16 sin6_port   (big-endian)
 *     4  u8  sin_addr[4]                      4  u32 sin6_flowinfo
 *     8  u8  sin_zero[8]                      8  u8  sin6_addr[16]
 *                                            24  u32 sin6_scope_id
 * </pre>
 */
public final class InetSockets {
    private InetSockets() {
    }

    public static final int AF_INET = 2;
    public static final int AF_INET6 = 10;
    // socket.h, netinet/in.h, netinet/tcp.h (x86_64 Linux)
    private static final int SOL_SOCKET = 1;
    private static final int SO_REUSEADDR = 2;
    private static final int IPPROTO_TCP = 6;
    private static final int TCP_NODELAY = 1;
    private static final int SOCKADDR_BYTES = 28;

    /** Resolves {@code host} (a name or a literal); throws {@link IllegalArgumentException} naming it. */
    public static InetAddress resolve(String host) {
        try {
            return InetAddress.getByName(host);
        } catch (UnknownHostException e) {
            throw new IllegalArgumentException("cannot resolve host '" + host + "': " + e.getMessage());
        }
    }

    /** A listening TCP socket on {@code host:port} (port 0: any free port), non-blocking: fd or -errno. */
    public static int tcpListen(InetAddress host, int port, int backlog) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment sa = a.allocate(SOCKADDR_BYTES, 8);
            int len = writeAddress(sa, host, port);
            int fd = LibC.socket(family(host), UnixSockets.SOCK_STREAM | UnixSockets.SOCK_NONBLOCK
                    | UnixSockets.SOCK_CLOEXEC, 0);
            if (fd < 0) {
                return LibC.err();
            }
            MemorySegment one = a.allocate(ValueLayout.JAVA_INT);
            one.set(ValueLayout.JAVA_INT, 0, 1);
            if (LibC.setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, one.address(), 4) < 0
                    || LibC.bind(fd, sa.address(), len) < 0 || LibC.listen(fd, backlog) < 0) {
                int r = LibC.err();
                LibC.close(fd);
                return r;
            }
            return fd;
        }
    }

    /** Connects a TCP socket to {@code host:port} (the connect blocks), then non-blocking if asked: fd or -errno. */
    public static int tcpConnect(InetAddress host, int port, boolean nonBlocking) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment sa = a.allocate(SOCKADDR_BYTES, 8);
            int len = writeAddress(sa, host, port);
            int fd = LibC.socket(family(host), UnixSockets.SOCK_STREAM | UnixSockets.SOCK_CLOEXEC, 0);
            if (fd < 0) {
                return LibC.err();
            }
            int r;
            do {
                r = LibC.connect(fd, sa.address(), len) < 0 ? LibC.err() : 0;
            } while (r == -Errno.EINTR);
            if (r == 0) {
                setNoDelay(fd);
                if (nonBlocking) {
                    r = FileIo.setNonBlocking(fd, true);
                }
            }
            if (r < 0) {
                LibC.close(fd);
                return r;
            }
            return fd;
        }
    }

    /** TCP_NODELAY on a TCP socket; on any other socket a harmless -EOPNOTSUPP. 0 or -errno. */
    public static int setNoDelay(int fd) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment one = a.allocate(ValueLayout.JAVA_INT);
            one.set(ValueLayout.JAVA_INT, 0, 1);
            return LibC.setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, one.address(), 4) < 0 ? LibC.err() : 0;
        }
    }

    /** The local port a bound socket has (after listening on port 0), or -errno. */
    public static int localPort(int fd) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment sa = a.allocate(SOCKADDR_BYTES, 8);
            MemorySegment len = a.allocate(ValueLayout.JAVA_INT);
            len.set(ValueLayout.JAVA_INT, 0, SOCKADDR_BYTES);
            if (LibC.getsockname(fd, sa.address(), len.address()) < 0) {
                return LibC.err();
            }
            return Short.toUnsignedInt(sa.get(ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.BIG_ENDIAN), 2));
        }
    }

    private static int family(InetAddress host) {
        return host instanceof Inet6Address ? AF_INET6 : AF_INET;
    }

    private static int writeAddress(MemorySegment sa, InetAddress host, int port) {
        if (port < 0 || port > 65535) {
            throw new IllegalArgumentException("port " + port + " is outside 0..65535");
        }
        sa.fill((byte) 0);
        sa.set(ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.BIG_ENDIAN), 2, (short) port);
        byte[] addr = host.getAddress();
        if (host instanceof Inet4Address) {
            sa.set(ValueLayout.JAVA_SHORT, 0, (short) AF_INET);
            MemorySegment.copy(addr, 0, sa, ValueLayout.JAVA_BYTE, 4, 4);
            return 16;
        }
        sa.set(ValueLayout.JAVA_SHORT, 0, (short) AF_INET6);
        MemorySegment.copy(addr, 0, sa, ValueLayout.JAVA_BYTE, 8, 16);
        if (host instanceof Inet6Address v6) {
            sa.set(ValueLayout.JAVA_INT, 24, v6.getScopeId());
        }
        return SOCKADDR_BYTES;
    }
}
