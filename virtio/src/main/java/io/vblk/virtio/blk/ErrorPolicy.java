package io.vblk.virtio.blk;

import io.vblk.aio.sys.Errno;

/**
 * Any thread (immutable).
 *
 * <p>What a virtio-blk device does when the driver fails a request: QEMU's device-level
 * {@code werror} / {@code rerror} ({@code BlockdevOnError}, hw/block/block.h), with QEMU's
 * spellings and defaults (writes {@link #ENOSPC}, reads {@link #REPORT}). {@link #action} is the one
 * place a policy and an errno become a {@link BlockErrorAction} (QEMU's {@code blk_get_error_action}).
 */
public enum ErrorPolicy {
    /** Complete the request as if it had succeeded. */
    IGNORE("ignore"),
    /** Complete the request with VIRTIO_BLK_S_IOERR. */
    REPORT("report"),
    /** Stop the device and hold the request until it is resumed. */
    STOP("stop"),
    /** {@link #STOP} when the error is ENOSPC (the image's file system is full), else {@link #REPORT}. */
    ENOSPC("enospc");

    /** QEMU's default for writes (and flush, discard, write zeroes). */
    public static final ErrorPolicy DEFAULT_WRITE = ENOSPC;
    /** QEMU's default for reads. */
    public static final ErrorPolicy DEFAULT_READ = REPORT;

    private final String spelling;

    ErrorPolicy(String spelling) {
        this.spelling = spelling;
    }

    public String spelling() {
        return spelling;
    }

    /** The action for a request that failed with {@code errno} (positive). */
    public BlockErrorAction action(int errno) {
        return switch (this) {
            case IGNORE -> BlockErrorAction.IGNORE;
            case REPORT -> BlockErrorAction.REPORT;
            case STOP -> BlockErrorAction.STOP;
            case ENOSPC -> errno == Errno.ENOSPC ? BlockErrorAction.STOP : BlockErrorAction.REPORT;
        };
    }

    /**
     * Parses {@code value} for {@code option} (werror or rerror); throws
     * {@link IllegalArgumentException} naming the option and what it accepts.
     */
    public static ErrorPolicy parse(String option, String value) {
        for (ErrorPolicy p : values()) {
            if (p.spelling.equals(value)) {
                return p;
            }
        }
        throw new IllegalArgumentException("option " + option + " must be ignore, report, stop or enospc, got '"
                + value + "'");
    }
}
