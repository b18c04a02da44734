package io.vblk.drivers.nbd.server;

import io.vblk.aio.AioContext;
import io.vblk.drivers.BlockDriver;
import io.vblk.drivers.nbd.NbdProtocol;
import io.vblk.drivers.node.BlockNode;
import io.vblk.drivers.node.DrainParent;

import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Home thread: the main loop (the server's context). No locking.
 *
 * <p>One block node offered under a name by an {@link NbdServer} ({@code --export type=nbd}). The
 * handshake runs on the main loop; each client's requests then run on {@link #ioContext()} (the
 * export's IoThread, or the main loop) through a channel of the node. The export is a
 * {@link DrainParent} of its node: a drained section stops every client's request reading on its
 * IoThread and resumes it at the end (seed 003).
 */
public final class NbdExport implements DrainParent {
    private final String id;
    private final String name;
    private final BlockNode node;
    private final AioContext ioContext;
    private final boolean writable;
    private final Set<NbdTransmission> clients = new LinkedHashSet<>();
    private boolean drained;
    private boolean closing;
    private Runnable onClosed;
    private long connections;

    /**
     * @param id        the export's id (QMP, logs)
     * @param name      the NBD export name clients ask for
     * @param ioContext where clients' requests run (the export's IoThread)
     */
    public NbdExport(String id, String name, BlockNode node, AioContext ioContext, boolean writable) {
        if (name.getBytes(java.nio.charset.StandardCharsets.UTF_8).length > 4096) {
            throw new IllegalArgumentException("export " + id + ": name is longer than 4096 bytes (NBD's limit)");
        }
        if (writable && node.driver().readOnly()) {
            throw new IllegalArgumentException("export " + id + ": writable=on but node " + node.name() + " is read-only");
        }
        this.id = id;
        this.name = name;
        this.node = node;
        this.ioContext = ioContext;
        this.writable = writable;
    }

    public String id() {
        return id;
    }

    public String name() {
        return name;
    }

    public BlockNode node() {
        return node;
    }

    public AioContext ioContext() {
        return ioContext;
    }

    public boolean writable() {
        return writable;
    }

    /** Clients connected now (home thread). */
    public int clientCount() {
        return clients.size();
    }

    /** Clients that reached transmission since the export began. Home thread. */
    public long connections() {
        return connections;
    }

    /** The transmission flags this export sends (proto.md "Transmission flags"). Any thread. */
    public int transmissionFlags() {
        BlockDriver d = node.driver();
        int f = NbdProtocol.FLAG_HAS_FLAGS | NbdProtocol.FLAG_SEND_FLUSH | NbdProtocol.FLAG_SEND_FUA
                | NbdProtocol.FLAG_CAN_MULTI_CONN;
        if (!writable) {
            f |= NbdProtocol.FLAG_READ_ONLY;
        } else {
            if (d.supportsDiscard()) {
                f |= NbdProtocol.FLAG_SEND_TRIM;
            }
            if (d.supportsWriteZeroes()) {
                f |= NbdProtocol.FLAG_SEND_WRITE_ZEROES;
            }
        }
        return f;
    }

    /** The smallest request granularity: the driver's alignment (O_DIRECT files need their block size). */
    public int minimumBlock() {
        return Math.max(1, node.driver().alignment());
    }

    boolean closing() {
        return closing;
    }

    void added(NbdTransmission t) {
        node.home().assertHome();
        clients.add(t);
        connections++;
        if (drained) {
            t.ioContext().runOn(() -> t.pauseForDrain(() -> { }));
        }
    }

    void removed(NbdTransmission t) {
        clients.remove(t);
        if (closing && clients.isEmpty() && onClosed != null) {
            Runnable r = onClosed;
            onClosed = null;
            node.detach(this);
            r.run();
        }
    }

    /** Attaches the export to its node as a drain parent. Home thread. */
    void open() {
        node.attach(this);
    }

    /**
     * Takes no client from now on, disconnects the connected ones (each finishes its requests in
     * flight first) and runs {@code onClosed} on this thread once none is left. Home thread.
     */
    public void close(Runnable onClosed) {
        if (closing) {
            if (this.onClosed == null) {
                onClosed.run();
            } else {
                Runnable prev = this.onClosed;
                this.onClosed = () -> {
                    prev.run();
                    onClosed.run();
                };
            }
            return;
        }
        closing = true;
        this.onClosed = onClosed;
        if (clients.isEmpty()) {
            this.onClosed = null;
            node.detach(this);
            onClosed.run();
            return;
        }
        for (NbdTransmission t : List.copyOf(clients)) {
            t.ioContext().runOn(() -> t.disconnect("export " + id + " is being removed"));
        }
    }

    @Override
    public String drainName() {
        return "nbd export " + id;
    }

    @Override
    public void drainedBegin(Runnable stopped) {
        drained = true;
        List<NbdTransmission> now = new ArrayList<>(clients);
        if (now.isEmpty()) {
            stopped.run();
            return;
        }
        AtomicInteger left = new AtomicInteger(now.size());
        for (NbdTransmission t : now) {
            t.ioContext().runOn(() -> t.pauseForDrain(() -> {
                if (left.decrementAndGet() == 0) {
                    stopped.run();
                }
            }));
        }
    }

    @Override
    public void drainedEnd() {
        drained = false;
        for (NbdTransmission t : List.copyOf(clients)) {
            t.ioContext().runOn(t::resumeAfterDrain);
        }
    }

    @Override
    public String toString() {
        return "NbdExport[" + id + " name=" + name + " node=" + node.name() + (writable ? " writable" : "") + "]";
    }
}
