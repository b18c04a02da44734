package io.vblk.aio.sys;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Any thread (pure offset arithmetic on memory the caller owns).
 *
 * <p>The {@code sendmsg(2)}/{@code recvmsg(2)} structures on LP64 Linux (x86_64, aarch64): the message
 * header, one {@code struct iovec} and a control buffer holding one SCM_RIGHTS {@code cmsghdr}.
 * Offsets from glibc's {@code bits/socket.h}; checked against the kernel by {@code SysTest}.
 *
 * <pre>
 *   struct msghdr {                    // 56 bytes
 *      0  void         *msg_name;      // unused here (connected sockets): NULL
 *      8  socklen_t     msg_namelen;   // u32, then 4 bytes padding
 *     16  struct iovec *msg_iov;
 *     24  size_t        msg_iovlen;
 *     32  void         *msg_control;
 *     40  size_t        msg_controllen;
 *     48  int           msg_flags;     // out: MSG_CTRUNC etc., then 4 bytes padding
 *   };
 *
 *   struct iovec {                     // 16 bytes
 *      0  void   *iov_base;
 *      8  size_t  iov_len;
 *   };
 *
 *   struct cmsghdr {                   // 16-byte header, data 8-aligned after it
 *      0  size_t  cmsg_len;            // CMSG_LEN(n) = 16 + n
 *      8  int     cmsg_level;          // SOL_SOCKET
 *     12  int     cmsg_type;           // SCM_RIGHTS
 *     16  int     fds[n / 4];          // CMSG_DATA
 *   };                                 // CMSG_SPACE(n) = 16 + align8(n)
 * </pre>
 */
public final class MsgHdrLayout {
    public static final int MSGHDR_BYTES = 56;
    public static final int MSG_NAME = 0;
    public static final int MSG_NAMELEN = 8;
    public static final int MSG_IOV = 16;
    public static final int MSG_IOVLEN = 24;
    public static final int MSG_CONTROL = 32;
    public static final int MSG_CONTROLLEN = 40;
    public static final int MSG_FLAGS = 48;

    public static final int IOVEC_BYTES = 16;
    public static final int IOV_BASE = 0;
    public static final int IOV_LEN = 8;

    public static final int CMSGHDR_BYTES = 16;
    public static final int CMSG_LEN_OFF = 0;
    public static final int CMSG_LEVEL = 8;
    public static final int CMSG_TYPE = 12;
    public static final int CMSG_DATA = 16;

    /** {@code SOL_SOCKET} (asm-generic/socket.h; x86_64 and aarch64). */
    public static final int SOL_SOCKET = 1;
    /** {@code SCM_RIGHTS} (linux/socket.h). */
    public static final int SCM_RIGHTS = 1;

    /** Control space for {@link ReceivedFds#MAX_FDS} fds: CMSG_SPACE(8 * 4) = 48. */
    public static final int CONTROL_BYTES = cmsgSpace(ReceivedFds.MAX_FDS * 4);

    private MsgHdrLayout() {
    }

    /** {@code CMSG_ALIGN}: round up to the size of {@code size_t}. */
    public static int cmsgAlign(int n) {
        return (n + 7) & ~7;
    }

    /** {@code CMSG_LEN(n)}: the {@code cmsg_len} for {@code n} data bytes. */
    public static int cmsgLen(int n) {
        return CMSGHDR_BYTES + n;
    }

    /** {@code CMSG_SPACE(n)}: the control-buffer room one cmsg with {@code n} data bytes takes. */
    public static int cmsgSpace(int n) {
        return CMSGHDR_BYTES + cmsgAlign(n);
    }

    /** Fills a message header at {@code off} in {@code seg} that points at one iovec and a control buffer. */
    public static void writeMsgHdr(MemorySegment seg, long off, long iov, long control, long controlLen) {
        seg.set(ValueLayout.JAVA_LONG, off + MSG_NAME, 0L);
        seg.set(ValueLayout.JAVA_LONG, off + MSG_NAMELEN, 0L); // namelen + padding
        seg.set(ValueLayout.JAVA_LONG, off + MSG_IOV, iov);
        seg.set(ValueLayout.JAVA_LONG, off + MSG_IOVLEN, 1L);
        seg.set(ValueLayout.JAVA_LONG, off + MSG_CONTROL, control);
        seg.set(ValueLayout.JAVA_LONG, off + MSG_CONTROLLEN, controlLen);
        seg.set(ValueLayout.JAVA_LONG, off + MSG_FLAGS, 0L); // flags + padding
    }

    public static void writeIovec(MemorySegment seg, long off, long base, long len) {
        seg.set(ValueLayout.JAVA_LONG, off + IOV_BASE, base);
        seg.set(ValueLayout.JAVA_LONG, off + IOV_LEN, len);
    }

    public static int msgFlags(MemorySegment seg, long off) {
        return seg.get(ValueLayout.JAVA_INT, off + MSG_FLAGS);
    }

    public static long controlLen(MemorySegment seg, long off) {
        return seg.get(ValueLayout.JAVA_LONG, off + MSG_CONTROLLEN);
    }
}
