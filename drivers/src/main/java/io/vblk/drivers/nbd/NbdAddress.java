package io.vblk.drivers.nbd;

import io.vblk.aio.sys.Errno;
import io.vblk.aio.sys.InetSockets;
import io.vblk.aio.sys.UnixSockets;

/**
 * Any thread: immutable.
 *
 * <p>Where an NBD server listens, as QEMU's {@code SocketAddress}: {@code type=unix,path=P} or
 * {@code type=inet,host=H,port=N} (NBD's registered port is 10809).
 */
public sealed interface NbdAddress {
    /** IANA's port for NBD. */
    int DEFAULT_PORT = 10809;

    /** Connects (blocking connect, then non-blocking): the fd, or -errno. */
    int connect();

    String describe();

    record Unix(String path) implements NbdAddress {
        @Override
        public int connect() {
            return UnixSockets.unixConnect(path, true);
        }

        @Override
        public String describe() {
            return "unix:" + path;
        }
    }

    record Inet(String host, int port) implements NbdAddress {
        public Inet {
            if (port < 1 || port > 65535) {
                throw new IllegalArgumentException("port " + port + " is outside 1..65535");
            }
        }

        @Override
        public int connect() {
            try {
                return InetSockets.tcpConnect(InetSockets.resolve(host), port, true);
            } catch (IllegalArgumentException e) {
                return -Errno.EINVAL;
            }
        }

        @Override
        public String describe() {
            return "inet:" + host + ":" + port;
        }
    }
}
