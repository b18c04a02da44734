package io.vblk.drivers.nbd;

import io.vblk.aio.sys.Errno;

/**
 * Any thread: constants only.
 *
 * <p>The numbers of the NBD protocol (NetworkBlockDevice/nbd {@code doc/proto.md}), shared by the
 * export ({@link io.vblk.drivers.nbd.server}) and the client driver ({@link io.vblk.drivers.nbd.client}):
 * magics, handshake and option codes, option reply types, transmission flags, commands and their
 * flags, structured reply chunk types, and the error numbers with their one mapping to and from
 * Linux errno. Every multi-byte field on the wire is big-endian (network order).
 */
public final class NbdProtocol {
    private NbdProtocol() {
    }

    // ---- handshake (proto.md "Newstyle negotiation")
    /** "NBDMAGIC": the first 8 bytes the server sends. */
    public static final long NBDMAGIC = 0x4e42444d41474943L;
    /** "IHAVEOPT": follows NBDMAGIC in the newstyle handshake and starts every option the client sends. */
    public static final long IHAVEOPT = 0x49484156454F5054L;
    /** Magic of every option reply. */
    public static final long REPLY_MAGIC = 0x3e889045565a9L;

    /** Handshake flags (server, u16). */
    public static final int FLAG_FIXED_NEWSTYLE = 1;
    public static final int FLAG_NO_ZEROES = 2;
    /** Client flags (u32). */
    public static final int FLAG_C_FIXED_NEWSTYLE = 1;
    public static final int FLAG_C_NO_ZEROES = 2;

    // ---- options
    public static final int OPT_EXPORT_NAME = 1;
    public static final int OPT_ABORT = 2;
    public static final int OPT_LIST = 3;
    public static final int OPT_STARTTLS = 5;
    public static final int OPT_INFO = 6;
    public static final int OPT_GO = 7;
    public static final int OPT_STRUCTURED_REPLY = 8;
    public static final int OPT_LIST_META_CONTEXT = 9;
    public static final int OPT_SET_META_CONTEXT = 10;

    // ---- option replies
    public static final int REP_ACK = 1;
    public static final int REP_SERVER = 2;
    public static final int REP_INFO = 3;
    public static final int REP_META_CONTEXT = 4;
    private static final int REP_ERR = 1 << 31;
    public static final int REP_ERR_UNSUP = REP_ERR + 1;
    public static final int REP_ERR_POLICY = REP_ERR + 2;
    public static final int REP_ERR_INVALID = REP_ERR + 3;
    public static final int REP_ERR_PLATFORM = REP_ERR + 4;
    public static final int REP_ERR_TLS_REQD = REP_ERR + 5;
    public static final int REP_ERR_UNKNOWN = REP_ERR + 6;
    public static final int REP_ERR_SHUTDOWN = REP_ERR + 7;
    public static final int REP_ERR_BLOCK_SIZE_REQD = REP_ERR + 8;
    public static final int REP_ERR_TOO_BIG = REP_ERR + 9;

    /** Information types of NBD_REP_INFO / requested by NBD_OPT_INFO and NBD_OPT_GO. */
    public static final int INFO_EXPORT = 0;
    public static final int INFO_NAME = 1;
    public static final int INFO_DESCRIPTION = 2;
    public static final int INFO_BLOCK_SIZE = 3;

    // ---- transmission flags (u16, sent with the export's size)
    public static final int FLAG_HAS_FLAGS = 1;
    public static final int FLAG_READ_ONLY = 1 << 1;
    public static final int FLAG_SEND_FLUSH = 1 << 2;
    public static final int FLAG_SEND_FUA = 1 << 3;
    public static final int FLAG_ROTATIONAL = 1 << 4;
    public static final int FLAG_SEND_TRIM = 1 << 5;
    public static final int FLAG_SEND_WRITE_ZEROES = 1 << 6;
    public static final int FLAG_SEND_DF = 1 << 7;
    public static final int FLAG_CAN_MULTI_CONN = 1 << 8;

    // ---- transmission
    public static final int REQUEST_MAGIC = 0x25609513;
    public static final int SIMPLE_REPLY_MAGIC = 0x67446698;
    public static final int STRUCTURED_REPLY_MAGIC = 0x668e33ef;

    public static final int CMD_READ = 0;
    public static final int CMD_WRITE = 1;
    public static final int CMD_DISC = 2;
    public static final int CMD_FLUSH = 3;
    public static final int CMD_TRIM = 4;
    public static final int CMD_CACHE = 5;
    public static final int CMD_WRITE_ZEROES = 6;
    public static final int CMD_BLOCK_STATUS = 7;

    public static final int CMD_FLAG_FUA = 1;
    public static final int CMD_FLAG_NO_HOLE = 1 << 1;
    public static final int CMD_FLAG_DF = 1 << 2;
    public static final int CMD_FLAG_REQ_ONE = 1 << 3;
    public static final int CMD_FLAG_FAST_ZERO = 1 << 4;

    /** The metadata context of block allocation (proto.md "base:allocation") and the id vblk gives it. */
    public static final String BASE_ALLOCATION = "base:allocation";
    public static final int CONTEXT_BASE_ALLOCATION = 1;
    /** base:allocation's extent flags: unallocated, reads as zeroes. */
    public static final int STATE_HOLE = 1;
    public static final int STATE_ZERO = 2;

    public static final int REPLY_FLAG_DONE = 1;
    public static final int REPLY_TYPE_NONE = 0;
    public static final int REPLY_TYPE_OFFSET_DATA = 1;
    public static final int REPLY_TYPE_OFFSET_HOLE = 2;
    public static final int REPLY_TYPE_BLOCK_STATUS = 5;
    public static final int REPLY_TYPE_ERROR = (1 << 15) + 1;
    public static final int REPLY_TYPE_ERROR_OFFSET = (1 << 15) + 2;

    // ---- error values (proto.md "Error values"; they are Linux's numbers, but only these may be sent)
    public static final int EPERM = 1;
    public static final int EIO = 5;
    public static final int ENOMEM = 12;
    public static final int EINVAL = 22;
    public static final int ENOSPC = 28;
    public static final int EOVERFLOW = 75;
    public static final int ENOTSUP = 95;
    public static final int ESHUTDOWN = 108;

    /** proto.md: 32 MiB is the largest payload a client may send without NBD_INFO_BLOCK_SIZE telling it more. */
    public static final int MAX_PAYLOAD = 32 << 20;
    /** The longest option payload the export reads (names are at most 4096 bytes per proto.md). */
    public static final int MAX_OPTION_BYTES = 8192;

    /** A driver's negative errno as an NBD error: the allowed values pass, everything else is EIO. */
    public static int toNbdError(long negErrno) {
        int e = (int) -negErrno;
        return switch (e) {
            case EPERM, EIO, ENOMEM, EINVAL, ENOSPC, EOVERFLOW, ESHUTDOWN -> e;
            case Errno.EROFS -> EPERM;
            case Errno.EOPNOTSUPP -> ENOTSUP;
            default -> EIO;
        };
    }

    /** An NBD error from the wire as a negative errno for the block layer (unknown values: -EIO, as proto.md says). */
    public static int toErrno(int nbdError) {
        return switch (nbdError) {
            case EPERM, EIO, ENOMEM, EINVAL, ENOSPC, EOVERFLOW, ESHUTDOWN -> -nbdError;
            case ENOTSUP -> -Errno.EOPNOTSUPP;
            default -> -EIO;
        };
    }

    /** The option's name for log lines. */
    public static String optionName(int opt) {
        return switch (opt) {
            case OPT_EXPORT_NAME -> "NBD_OPT_EXPORT_NAME";
            case OPT_ABORT -> "NBD_OPT_ABORT";
            case OPT_LIST -> "NBD_OPT_LIST";
            case OPT_STARTTLS -> "NBD_OPT_STARTTLS";
            case OPT_INFO -> "NBD_OPT_INFO";
            case OPT_GO -> "NBD_OPT_GO";
            case OPT_STRUCTURED_REPLY -> "NBD_OPT_STRUCTURED_REPLY";
            case OPT_LIST_META_CONTEXT -> "NBD_OPT_LIST_META_CONTEXT";
            case OPT_SET_META_CONTEXT -> "NBD_OPT_SET_META_CONTEXT";
            default -> "option " + Integer.toUnsignedString(opt);
        };
    }
}
