package io.vblk.virtio.blk;

import io.vblk.aio.sys.Errno;

/**
 * Any thread: constants and a pure function.
 *
 * <p>The request status byte (virtio 1.2 section 5.2.6) and the one place where a driver result
 * becomes one (STYLE rule 10).
 */
public final class BlkStatus {
    /** 5.2.6: VIRTIO_BLK_S_OK. */
    public static final int OK = 0;
    /** 5.2.6: VIRTIO_BLK_S_IOERR, "for device or driver error". */
    public static final int IOERR = 1;
    /** 5.2.6: VIRTIO_BLK_S_UNSUPP, "for a request unsupported by device". */
    public static final int UNSUPP = 2;

    private BlkStatus() {
    }

    /**
     * Maps a driver result to a status: the only such mapping in vblk.
     *
     * @param result   bytes transferred or 0 on success, -errno on failure ({@code IoCompletion})
     * @param expected bytes a READ/WRITE had to move, or -1 for requests that move none
     */
    public static int fromResult(long result, long expected) {
        if (result >= 0) {
            // A short read or write is an error: reporting OK would hand the guest stale data or
            // acknowledge data that was never written.
            return expected < 0 || result == expected ? OK : IOERR;
        }
        // The driver cannot do this at all (e.g. discard on a file system without hole punching).
        return result == -Errno.EOPNOTSUPP ? UNSUPP : IOERR;
    }

    public static String name(int status) {
        return switch (status) {
            case OK -> "ok";
            case IOERR -> "ioerr";
            case UNSUPP -> "unsupp";
            default -> "status" + status;
        };
    }
}
