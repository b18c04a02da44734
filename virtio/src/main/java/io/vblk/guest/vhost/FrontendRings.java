package io.vblk.guest.vhost;

import io.vblk.aio.sys.FileIo;
import io.vblk.virtio.queue.QueueLayout;
import io.vblk.virtio.vhost.wire.VhostUserCodec;
import io.vblk.virtio.vhost.wire.VhostUserCodec.Inflight;
import io.vblk.virtio.vhost.wire.VhostUserCodec.VringAddr;
import io.vblk.virtio.vhost.wire.VhostUserMessageLayout;
import io.vblk.virtio.vhost.wire.VhostUserRequest;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.function.IntConsumer;
import java.util.function.Supplier;

import static io.vblk.guest.vhost.FrontendChannel.decode;

/**
 * Home thread: the front-end's control context. No locking.
 *
 * <p>The front-end's vrings: the layout and eventfds the guest gave each queue, and the messages
 * that start and stop a ring on the back-end — on the first start GET_INFLIGHT_FD and
 * SET_INFLIGHT_FD (INFLIGHT_SHMFD), then SET_VRING_NUM, SET_VRING_BASE, SET_VRING_ADDR,
 * SET_VRING_KICK, SET_VRING_CALL and SET_VRING_ENABLE in QEMU's order (vhost_virtqueue_start);
 * GET_VRING_BASE to stop, which the back-end answers once its in-flight requests are done.
 */
final class FrontendRings implements AutoCloseable {
    private static final class Ring {
        QueueLayout layout;
        int kickFd = -1;
        int callFd = -1;
        boolean started;
        boolean packed;
    }

    private final FrontendChannel channel;
    private final Ring[] rings;
    private final boolean inflightWanted;
    private int inflightFd = -1;
    private Inflight inflight;
    private boolean inflightDone;
    /** Dirty logging on: rings get SET_VRING_ADDR with VHOST_VRING_F_LOG (live migration). */
    private boolean logging;

    FrontendRings(FrontendChannel channel, int count, boolean inflightWanted) {
        this.channel = channel;
        this.rings = new Ring[count];
        for (int i = 0; i < count; i++) {
            rings[i] = new Ring();
        }
        this.inflightWanted = inflightWanted;
    }

    int count() {
        return rings.length;
    }

    void configure(int index, QueueLayout layout) {
        rings[index].layout = layout;
    }

    /** Takes ownership of both fds (closed when replaced or at {@link #close}); true when the ring is started. */
    boolean setFds(int index, int kickFd, int callFd) {
        Ring q = rings[index];
        if (q.kickFd >= 0 && q.kickFd != kickFd) {
            FileIo.close(q.kickFd);
        }
        if (q.callFd >= 0 && q.callFd != callFd) {
            FileIo.close(q.callFd);
        }
        q.kickFd = kickFd;
        q.callFd = callFd;
        return q.started;
    }

    /** SET_VRING_KICK and SET_VRING_CALL with ring {@code q}'s current fds (a live switch). */
    CompletableFuture<Void> sendFds(int q) {
        Ring r = rings[q];
        channel.send(VhostUserRequest.SET_VRING_KICK, VhostUserCodec.u64(q), r.kickFd);
        if (r.callFd >= 0) {
            channel.send(VhostUserRequest.SET_VRING_CALL, VhostUserCodec.u64(q), r.callFd);
        } else {
            channel.send(VhostUserRequest.SET_VRING_CALL, VhostUserCodec.u64(q | VhostUserMessageLayout.VRING_NOFD));
        }
        return channel.sync();
    }

    int kickFd(int q) {
        return rings[q].kickFd;
    }

    int callFd(int q) {
        return rings[q].callFd;
    }

    boolean started(int q) {
        return rings[q].started;
    }

    /** The index of a started ring, or -1. */
    int anyStarted() {
        for (int i = 0; i < rings.length; i++) {
            if (rings[i].started) {
                return i;
            }
        }
        return -1;
    }

    Inflight inflight() {
        return inflight;
    }

    /**
     * Checks that ring {@code index} can start and returns the operation that starts it on the
     * back-end; {@code memory} translates its addresses, {@code enable} says whether
     * SET_VRING_ENABLE is spoken (VHOST_USER_F_PROTOCOL_FEATURES negotiated).
     */
    Supplier<CompletableFuture<Void>> start(int index, FrontendMemory memory, boolean enable, boolean packed) {
        Ring q = rings[index];
        QueueLayout l = q.layout;
        if (l == null) {
            throw new IllegalStateException("queue " + index + " has no layout; call configureQueue first");
        }
        if (q.kickFd < 0) {
            throw new IllegalStateException("queue " + index + " has no kick eventfd; call setQueueFds first");
        }
        int n = l.size();
        q.packed = packed;
        VringAddr a = addr(index, memory);
        int kick = q.kickFd;
        int call = q.callFd;
        q.started = true;
        return () -> setUpInflight(n).thenCompose(v -> {
            channel.send(VhostUserRequest.SET_VRING_NUM, VhostUserCodec.vringState(index, n));
            channel.send(VhostUserRequest.SET_VRING_BASE, VhostUserCodec.vringState(index, l.nextAvailIdx()));
            channel.send(VhostUserRequest.SET_VRING_ADDR, VhostUserCodec.vringAddr(a));
            channel.send(VhostUserRequest.SET_VRING_KICK, VhostUserCodec.u64(index), kick);
            if (call >= 0) {
                channel.send(VhostUserRequest.SET_VRING_CALL, VhostUserCodec.u64(index), call);
            } else {
                channel.send(VhostUserRequest.SET_VRING_CALL, VhostUserCodec.u64(index | VhostUserMessageLayout.VRING_NOFD));
            }
            if (enable) {
                // QEMU waits for this one: no request may reach a ring the back-end still thinks disabled.
                return channel.callAck(VhostUserRequest.SET_VRING_ENABLE, VhostUserCodec.vringState(index, 1));
            }
            return channel.sync();
        });
    }

    /**
     * Ring {@code index}'s SET_VRING_ADDR: front-end addresses, and while logging VHOST_VRING_F_LOG
     * with the used ring's guest-physical address as {@code log_guest_addr} (QEMU's
     * vhost_virtqueue_set_addr: {@code .log_guest_addr = vq->used_phys}).
     */
    private VringAddr addr(int index, FrontendMemory memory) {
        QueueLayout l = rings[index].layout;
        int n = l.size();
        boolean packed = rings[index].packed;
        // Packed rings (virtio 1.2 2.8.10.1): the three addresses are the descriptor ring and the
        // device and driver event suppression structures, 4 bytes each.
        return new VringAddr(index, logging ? VhostUserMessageLayout.VRING_F_LOG : 0,
                memory.uaddr(index, "descriptor table", l.descAddr(), 16L * n),
                memory.uaddr(index, "used ring", l.usedAddr(), packed ? 4 : 6L + 8L * n),
                memory.uaddr(index, "available ring", l.availAddr(), packed ? 4 : 6L + 2L * n), logging ? l.usedAddr() : 0);
    }

    /**
     * Switches used-ring logging of every started ring (QEMU's vhost_dev_set_log: after
     * SET_FEATURES, SET_VRING_ADDR per ring with or without VHOST_VRING_F_LOG); rings started
     * later follow. Returns the operation.
     */
    Supplier<CompletableFuture<Void>> setLogging(FrontendMemory memory, boolean on) {
        logging = on;
        List<VringAddr> addrs = new ArrayList<>();
        for (int i = 0; i < rings.length; i++) {
            if (rings[i].started) {
                addrs.add(addr(i, memory));
            }
        }
        return () -> {
            CompletableFuture<Void> f = CompletableFuture.completedFuture(null);
            for (VringAddr a : addrs) {
                f = f.thenCompose(v -> channel.callAck(VhostUserRequest.SET_VRING_ADDR, VhostUserCodec.vringAddr(a)));
            }
            return f;
        };
    }

    /**
     * Hands {@code fd} (ownership taken) and its description back on the next start instead of
     * asking for a new buffer: what QEMU does when it reconnects to a restarted back-end, so the
     * new back-end finds the record of the requests the old one had in flight.
     */
    void reuseInflight(int fd, Inflight desc) {
        if (inflightFd >= 0) {
            FileIo.close(inflightFd);
        }
        inflightFd = fd;
        inflight = desc;
    }

    /** The inflight buffer's fd this front-end holds, or -1. */
    int inflightFd() {
        return inflightFd;
    }

    /**
     * GET_INFLIGHT_FD then SET_INFLIGHT_FD, once, before the first ring starts (libvhost-user needs
     * it before a kick); with a buffer kept from an earlier back-end, SET_INFLIGHT_FD alone.
     */
    private CompletableFuture<Void> setUpInflight(int queueSize) {
        if (inflightDone || !inflightWanted) {
            return CompletableFuture.completedFuture(null);
        }
        inflightDone = true;
        if (inflightFd >= 0 && inflight != null) {
            return channel.callAck(VhostUserRequest.SET_INFLIGHT_FD, VhostUserCodec.inflight(
                    new Inflight(inflight.mmapSize(), inflight.mmapOffset(), rings.length, queueSize)), inflightFd);
        }
        return channel.call(VhostUserRequest.GET_INFLIGHT_FD, VhostUserCodec.inflight(new Inflight(0, 0, rings.length, queueSize)))
                .thenCompose(r -> {
                    // The framer's table made sure the reply carries exactly the one memfd.
                    inflightFd = r.fds()[0];
                    Inflight in = decode(() -> VhostUserCodec.decodeInflight(r));
                    if (in.mmapSize() <= 0) {
                        throw new CompletionException(new IllegalStateException("GET_INFLIGHT_FD reply with mmap_size "
                                + in.mmapSize()));
                    }
                    inflight = in;
                    return channel.callAck(VhostUserRequest.SET_INFLIGHT_FD, VhostUserCodec.inflight(
                            new Inflight(in.mmapSize(), in.mmapOffset(), rings.length, queueSize)), inflightFd);
                });
    }

    /** Marks ring {@code index} stopped and returns the operation that stops it, reporting its next avail index. */
    Supplier<CompletableFuture<Void>> stop(int index, IntConsumer onStopped) {
        rings[index].started = false;
        return () -> channel.call(VhostUserRequest.GET_VRING_BASE, VhostUserCodec.vringState(index, 0)).thenAccept(r -> {
            VhostUserCodec.VringState s = decode(() -> VhostUserCodec.decodeVringState(r));
            if (s.index() != index) {
                throw new CompletionException(new IllegalStateException("GET_VRING_BASE for queue " + index
                        + " answered for queue " + s.index()));
            }
            onStopped.accept(s.num());
        });
    }

    /** Closes every eventfd and the inflight buffer's fd. */
    @Override
    public void close() {
        for (Ring q : rings) {
            if (q.kickFd >= 0) {
                FileIo.close(q.kickFd);
            }
            if (q.callFd >= 0) {
                FileIo.close(q.callFd);
            }
            q.kickFd = q.callFd = -1;
        }
        if (inflightFd >= 0) {
            FileIo.close(inflightFd);
            inflightFd = -1;
        }
    }
}
