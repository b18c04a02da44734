package io.vblk.aio.sys;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;

/**
 * Any thread.
 *
 * <p>{@code struct sockaddr_un} (sys/un.h), 110 bytes.
 *
 * <pre>
 *    0  sa_family_t sun_family;    // u16, AF_UNIX = 1
 *    2  char        sun_path[108]; // NUL-terminated path
 * </pre>
 */
public final class SockAddrUnLayout {
    public static final int BYTES = 110;
    public static final int SUN_FAMILY = 0;
    public static final int SUN_PATH = 2;
    /** Longest path that fits with its terminating NUL. */
    public static final int MAX_PATH_BYTES = 107;

    private SockAddrUnLayout() {
    }

    /** Writes {@code path}; returns the address length to pass, or -ENAMETOOLONG. */
    public static int write(MemorySegment seg, String path) {
        byte[] p = path.getBytes(StandardCharsets.UTF_8);
        if (p.length == 0 || p.length > MAX_PATH_BYTES) {
            return -Errno.ENAMETOOLONG;
        }
        seg.fill((byte) 0);
        seg.set(ValueLayout.JAVA_SHORT, SUN_FAMILY, (short) UnixSockets.AF_UNIX);
        MemorySegment.copy(p, 0, seg, ValueLayout.JAVA_BYTE, SUN_PATH, p.length);
        return SUN_PATH + p.length + 1;
    }
}
