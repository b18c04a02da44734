package io.vblk.virtio.vhost.server;

import io.vblk.virtio.device.VirtioDevice;
import io.vblk.virtio.memory.GuestMemory;
import io.vblk.virtio.vhost.wire.VhostUserCodec;
import io.vblk.virtio.vhost.wire.VhostUserCodec.MemRegion;
import io.vblk.virtio.vhost.wire.VhostUserMessage;
import io.vblk.virtio.vhost.wire.VhostUserProtocolException;

import java.util.ArrayList;
import java.util.List;

/**
 * Home thread: the session's control context. No locking.
 *
 * <p>Guest memory (vhost-user.rst "Memory access"): SET_MEM_TABLE replaces the whole table,
 * ADD_MEM_REG / REM_MEM_REG change one region (protocol feature CONFIGURE_MEM_SLOTS), and
 * GET_MAX_MEM_SLOTS says how many regions may be added. Every change builds a new
 * {@link GuestMemory} map (overlaps are refused before any queue is touched), stops the running
 * queues, hands the device the new map and restarts the queues with their rings translated anew.
 */
final class MemoryHandler {
    /** GET_MAX_MEM_SLOTS: regions ADD_MEM_REG may build up (libvhost-user offers the same 32). */
    static final int MAX_MEM_SLOTS = 32;

    private final VhostUserSession session;
    private final Vrings vrings;
    private final VirtioDevice device;
    private MemoryTable table = MemoryTable.empty();

    MemoryHandler(VhostUserSession session, Vrings vrings, VirtioDevice device) {
        this.session = session;
        this.vrings = vrings;
        this.device = device;
    }

    boolean getMaxMemSlots(VhostUserMessage m, MessageFds fds) {
        return session.reply(m, VhostUserCodec.u64(MAX_MEM_SLOTS));
    }

    /** The table's region count and the fd count were matched by the framer (FdRule.PER_REGION). */
    boolean setMemTable(VhostUserMessage m, MessageFds fds) throws VhostUserProtocolException {
        List<MemRegion> regions = VhostUserCodec.decodeMemTable(m);
        for (MemRegion d : regions) {
            MappedRegion.check(d);
        }
        List<MappedRegion> mapped = new ArrayList<>(regions.size());
        try {
            for (int i = 0; i < regions.size(); i++) {
                mapped.add(MappedRegion.map(regions.get(i), fds.take(i)));
            }
        } catch (VhostUserProtocolException e) {
            mapped.forEach(MappedRegion::release);
            throw e;
        }
        return replace(m, MemoryTable.of(mapped));
    }

    boolean addMemReg(VhostUserMessage m, MessageFds fds) throws VhostUserProtocolException {
        MemRegion d = VhostUserCodec.decodeMemReg(m);
        MappedRegion.check(d);
        if (table.size() >= MAX_MEM_SLOTS) {
            throw new VhostUserProtocolException(m.describe() + ": all " + MAX_MEM_SLOTS + " memory slots are in use");
        }
        MappedRegion r = MappedRegion.map(d, fds.take(0));
        return replace(m, table.plus(r));
    }

    /** A tolerated fd ("If a file descriptor is passed, the back-end MUST close it") is closed untaken. */
    boolean remMemReg(VhostUserMessage m, MessageFds fds) throws VhostUserProtocolException {
        MemRegion d = VhostUserCodec.decodeMemReg(m);
        MemoryTable next = table.minus(d);
        if (next == null) {
            throw new VhostUserProtocolException(m.describe() + ": no region " + d.describe() + " to remove");
        }
        return replace(m, next);
    }

    /** Installs {@code next} (its references move in). */
    private boolean replace(VhostUserMessage m, MemoryTable next) throws VhostUserProtocolException {
        GuestMemory g;
        try {
            g = next.toGuestMemory();
        } catch (VhostUserProtocolException e) {
            next.release();
            throw new VhostUserProtocolException(m.describe() + ": " + e.getMessage());
        }
        return session.stopThen(m, vrings.active(), () -> {
            device.setMemory(g);
            if (vrings.memory != null) {
                vrings.memory.release();
            }
            vrings.memory = g;
            table.release();
            table = next;
            vrings.startReady();
            return null;
        }, () -> {
            g.release();
            next.release();
        });
    }

    /** Drops the session's map and regions (the device was handed an empty map first). */
    void release() {
        if (vrings.memory != null) {
            vrings.memory.release();
            vrings.memory = null;
        }
        table.release();
        table = MemoryTable.empty();
    }
}
