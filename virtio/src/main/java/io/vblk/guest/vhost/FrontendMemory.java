package io.vblk.guest.vhost;

import io.vblk.aio.sys.Errno;
import io.vblk.aio.sys.FileIo;
import io.vblk.virtio.vhost.wire.VhostUserCodec.MemRegion;
import io.vblk.virtio.vhost.wire.VhostUserMessageLayout;

import java.util.List;

/**
 * Home thread: the front-end's control context. No locking.
 *
 * <p>The front-end's view of guest memory (vhost-user.rst "Memory access"): the regions last sent
 * with SET_MEM_TABLE, each with the front-end's user address (what SET_VRING_ADDR carries), and
 * the translation of a ring's guest-physical address into that user address. The memory itself
 * is the guest's ({@link io.vblk.guest.GuestRam}, a memfd whose fd travels with the table).
 */
final class FrontendMemory {
    /** The regions last sent with SET_MEM_TABLE: guest-physical to front-end address translation. */
    private List<MemRegion> table = List.of();

    /**
     * Checks a table to send and returns copies of its fds (the message may leave after earlier
     * operations: the caller's fds may be closed by then); records the regions for translation.
     */
    int[] prepareTable(List<MemRegion> regions, int[] fds) {
        if (regions.size() != fds.length || regions.isEmpty() || regions.size() > VhostUserMessageLayout.MAX_MEM_TABLE_REGIONS) {
            throw new IllegalArgumentException(regions.size() + " regions with " + fds.length
                    + " fds; 1.." + VhostUserMessageLayout.MAX_MEM_TABLE_REGIONS + " regions, one fd each");
        }
        int[] copies = new int[fds.length];
        for (int i = 0; i < fds.length; i++) {
            copies[i] = FileIo.dup(fds[i]);
            if (copies[i] < 0) {
                for (int j = 0; j < i; j++) {
                    FileIo.close(copies[j]);
                }
                throw new IllegalStateException("dup of memory fd " + fds[i] + ": " + Errno.name(-copies[i]));
            }
        }
        table = List.copyOf(regions);
        return copies;
    }

    /** The front-end address of {@code [gpa, gpa+len)} through the current memory table. */
    long uaddr(int q, String what, long gpa, long len) {
        for (MemRegion r : table) {
            if (gpa >= r.gpa() && len >= 0 && gpa - r.gpa() <= r.size() - len) {
                return r.uaddr() + (gpa - r.gpa());
            }
        }
        throw new IllegalStateException("queue " + q + ": " + what + " at guest address 0x" + Long.toHexString(gpa)
                + " is outside the memory table sent to the back-end");
    }

}
