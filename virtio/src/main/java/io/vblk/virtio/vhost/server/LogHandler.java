package io.vblk.virtio.vhost.server;

import io.vblk.aio.sys.Errno;
import io.vblk.aio.sys.FileIo;
import io.vblk.aio.sys.Mmap;
import io.vblk.virtio.vhost.wire.VhostUserCodec;
import io.vblk.virtio.vhost.wire.VhostUserCodec.LogBase;
import io.vblk.virtio.vhost.wire.VhostUserMessage;
import io.vblk.virtio.vhost.wire.VhostUserProtocolException;
import io.vblk.virtio.vhost.wire.VhostUserProtocolFeature;

import java.lang.foreign.MemorySegment;
import java.util.function.LongSupplier;

/**
 * Home thread: the session's control context. No locking.
 *
 * <p>The dirty log of live migration (vhost-user.rst "Live migration", protocol feature
 * LOG_SHMFD): SET_LOG_BASE hands over the shared bitmap (an fd, its size and offset), which is
 * mapped here and replaces the previous one; SET_LOG_FD the eventfd the front-end may give to be
 * told of log writes (kept, not signalled: QEMU reads the log when it syncs, and its vhost-user
 * front-end never sends one). Whether the queues log is SET_FEATURES' VHOST_F_LOG_ALL
 * ({@link FeaturesHandler}); each queue gets its {@link io.vblk.virtio.memory.DirtyLog} at start
 * ({@link Vrings}). The mapping changes, and is unmapped, only while no queue runs: SET_LOG_BASE
 * stops the running queues first (their in-flight requests finish and are logged in the old
 * bitmap) and restarts them on the new one.
 */
final class LogHandler implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger(LogHandler.class.getName());

    /** One mapped log: the whole fd range {@code [0, offset + size)}, the bitmap at {@code offset}. */
    record Area(long mapAddr, long mapLen, MemorySegment bitmap) {
        void unmap() {
            Mmap.munmap(mapAddr, mapLen);
        }
    }

    private final VhostUserSession session;
    private final String name;
    private final Vrings vrings;
    private final LongSupplier protocolFeatures;
    private int logFd = -1;

    LogHandler(VhostUserSession session, String name, Vrings vrings, LongSupplier protocolFeatures) {
        this.session = session;
        this.name = name;
        this.vrings = vrings;
        this.protocolFeatures = protocolFeatures;
    }

    /**
     * SET_LOG_BASE: "Sets logging shared memory space. When the back-end has
     * VHOST_USER_PROTOCOL_F_LOG_SHMFD protocol feature, the log memory fd is provided in the
     * ancillary data of VHOST_USER_SET_LOG_BASE message, the size and offset of shared memory area
     * provided in the message." The front-end waits for the reply (QEMU's
     * vhost_user_set_log_base reads one when LOG_SHMFD is negotiated), sent once the log is in use.
     */
    boolean setLogBase(VhostUserMessage m, MessageFds fds) throws VhostUserProtocolException {
        requireShmfd(m);
        LogBase l = VhostUserCodec.decodeLogBase(m);
        Area area = map(m, l, fds.take(0));
        return session.stopThen(m, vrings.active(), () -> {
            Area old = vrings.log;
            vrings.log = area;
            if (old != null) {
                old.unmap();
            }
            LOG.log(System.Logger.Level.INFO, () -> name + ": dirty log set: " + l.mmapSize() + " bytes (one bit per 4 KiB"
                    + " page, guest memory up to 0x" + Long.toHexString(l.mmapSize() * 8 * 4096) + ")");
            vrings.startReady();
            return VhostUserMessage.reply(m.request(), new byte[0]);
        }, area::unmap);
    }

    /** SET_LOG_FD: "Sets the logging file descriptor, which is passed as ancillary data." */
    boolean setLogFd(VhostUserMessage m, MessageFds fds) throws VhostUserProtocolException {
        requireShmfd(m);
        int fd = fds.take(0);
        if (!VringHandler.isEventFd(fd)) {
            FileIo.close(fd);
            throw new VhostUserProtocolException(m.describe() + ": the log fd is not an eventfd");
        }
        if (logFd >= 0) {
            FileIo.close(logFd);
        }
        logFd = fd;
        return session.ack(m, true);
    }

    private void requireShmfd(VhostUserMessage m) throws VhostUserProtocolException {
        if (!VhostUserProtocolFeature.has(protocolFeatures.getAsLong(), VhostUserProtocolFeature.LOG_SHMFD)) {
            throw new VhostUserProtocolException(m.describe() + " without VHOST_USER_PROTOCOL_F_LOG_SHMFD negotiated");
        }
    }

    /** Checks the description against the fd and maps it; the fd is closed in every case. */
    private static Area map(VhostUserMessage m, LogBase l, int fd) throws VhostUserProtocolException {
        try {
            long size = l.mmapSize();
            long off = l.mmapOffset();
            // u64 on the wire: bit 63 set is a value of 2^63 or more, never a negative one.
            if (size <= 0 || off < 0 || off + size < 0) {
                throw new VhostUserProtocolException(m.describe() + ": log size " + Long.toUnsignedString(size)
                        + " at offset " + Long.toUnsignedString(off) + " is empty or overflows");
            }
            if ((off & 7) != 0) {
                // The bitmap is written in u64 words with atomic ORs, which need 8-byte alignment.
                throw new VhostUserProtocolException(m.describe() + ": log offset " + off + " is not 8-byte aligned");
            }
            long fdSize = FileIo.fileSize(fd);
            if (fdSize < 0) {
                throw new VhostUserProtocolException(m.describe() + ": fstat of the log fd failed: "
                        + Errno.name((int) -fdSize));
            }
            if (fdSize < off + size) {
                // A mapping past the end of its file faults (SIGBUS) on first access (mmap(2)).
                throw new VhostUserProtocolException(m.describe() + ": log offset + size = " + (off + size)
                        + " bytes lies beyond the end of its fd (" + fdSize + " bytes)");
            }
            long addr = Mmap.mmap(0, off + size, Mmap.PROT_READ | Mmap.PROT_WRITE, Mmap.MAP_SHARED, fd, 0);
            if (addr < 0 && addr > -4096) {
                throw new VhostUserProtocolException(m.describe() + ": mmap of the log fd for " + (off + size)
                        + " bytes failed: " + Errno.name((int) -addr));
            }
            return new Area(addr, off + size, MemorySegment.ofAddress(addr + off).reinterpret(size));
        } finally {
            FileIo.close(fd);
        }
    }

    /** Session teardown (every queue stopped): unmaps the log and closes the log fd. */
    @Override
    public void close() {
        if (vrings.logAll) {
            vrings.logAll = false;
            LOG.log(System.Logger.Level.INFO, () -> name + ": dirty logging off (the front-end disconnected with"
                    + " VHOST_F_LOG_ALL set)");
        }
        if (vrings.log != null) {
            vrings.log.unmap();
            vrings.log = null;
        }
        if (logFd >= 0) {
            FileIo.close(logFd);
            logFd = -1;
        }
    }
}
