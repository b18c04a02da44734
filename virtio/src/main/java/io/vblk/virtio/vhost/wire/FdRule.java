package io.vblk.virtio.vhost.wire;

import java.lang.foreign.MemorySegment;

import static io.vblk.virtio.vhost.wire.VhostUserMessageLayout.MEM_TABLE_NREGIONS;
import static io.vblk.virtio.vhost.wire.VhostUserMessageLayout.U64_BYTES;
import static io.vblk.virtio.vhost.wire.VhostUserMessageLayout.VRING_IDX_MASK;
import static io.vblk.virtio.vhost.wire.VhostUserMessageLayout.VRING_NOFD;
import static io.vblk.virtio.vhost.wire.VhostUserMessageLayout.getInt;
import static io.vblk.virtio.vhost.wire.VhostUserMessageLayout.getLong;

/**
 * Any thread: stateless.
 *
 * <p>How many file descriptors (SCM_RIGHTS) a message of one type carries: a column of the table in
 * {@link VhostUserRequest}. Three rules read the payload (the fd count depends on it), so
 * {@link #check} sees the whole, size-checked message. A violation is named in one line that
 * starts with the request, e.g. {@code "GET_FEATURES (1): unexpected fds: 1 attached, 0 expected"}.
 */
public enum FdRule {
    /** The message carries no fd. */
    NONE {
        @Override
        String check(String what, MemorySegment payload, int size, int fds) {
            return fds == 0 ? null : what + ": unexpected fds: " + fds + " attached, 0 expected";
        }
    },
    /** Exactly one fd. */
    ONE {
        @Override
        String check(String what, MemorySegment payload, int size, int fds) {
            return fds == 1 ? null
                    : what + ": " + (fds == 0 ? "missing fds: " : "unexpected fds: ") + fds + " attached, 1 expected";
        }
    },
    /**
     * REM_MEM_REG: "No file descriptors SHOULD be passed in the ancillary data. For compatibility
     * with existing incorrect implementations, the back-end MAY accept messages with one file
     * descriptor. If a file descriptor is passed, the back-end MUST close it without using it".
     */
    AT_MOST_ONE {
        @Override
        String check(String what, MemorySegment payload, int size, int fds) {
            return fds <= 1 ? null : what + ": " + fds + " fds, at most 1 is tolerated";
        }
    },
    /**
     * SET_MEM_TABLE: "In the ancillary data there is an array of file descriptors for each memory
     * mapped region. The size and ordering of the fds matches the number and ordering of memory
     * regions."
     */
    PER_REGION {
        @Override
        String check(String what, MemorySegment payload, int size, int fds) {
            int n = getInt(payload, MEM_TABLE_NREGIONS); // within 0..8: PayloadRule.MEM_TABLE checked it first
            return fds == n ? null : what + ": " + n + " regions but " + fds
                    + " fds (\"The size and ordering of the fds matches the number and ordering of memory regions\")";
        }
    },
    /**
     * SET_VRING_KICK / CALL / ERR: "Bits (0-7) of the payload contain the vring index. Bit 8 is
     * the invalid FD flag. This flag is set when there is no file descriptor in the ancillary
     * data." Without the flag one fd; with it none (one sent anyway is closed unused, as
     * libvhost-user does).
     */
    UNLESS_NOFD {
        @Override
        String check(String what, MemorySegment payload, int size, int fds) {
            long u = size >= U64_BYTES ? getLong(payload, 0) : 0;
            if ((u & VRING_NOFD) != 0) {
                return fds <= 1 ? null : what + ": " + fds + " fds with VRING_NOFD set, at most 1 is tolerated";
            }
            return fds == 1 ? null
                    : what + ": queue " + (u & VRING_IDX_MASK) + " without VRING_NOFD needs 1 fd, got " + fds;
        }
    },
    /** Messages vblk never handles (refused before their fds matter): up to the 8 a message can carry. */
    ANY {
        @Override
        String check(String what, MemorySegment payload, int size, int fds) {
            return null;
        }
    };

    /**
     * Returns null when a message described as {@code what}, with {@code size} payload bytes in
     * {@code payload} (already within the table's size bounds), may carry {@code fds} fds; else the
     * reason it may not.
     */
    abstract String check(String what, MemorySegment payload, int size, int fds);
}
