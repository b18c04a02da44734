package io.vblk.virtio.vhost;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioOptions;
import io.vblk.aio.IoThread;
import io.vblk.aio.sys.EventFds;
import io.vblk.drivers.BlockDriver;
import io.vblk.drivers.node.BlockNode;
import io.vblk.drivers.spec.DriverSpec;
import io.vblk.guest.BlkWireLayout;
import io.vblk.guest.GuestRam;
import io.vblk.guest.GuestRing;
import io.vblk.guest.vhost.VhostUserFrontend;
import io.vblk.virtio.blk.BlkDevice;
import io.vblk.virtio.blk.BlkDeviceConfig;
import io.vblk.virtio.device.IoThreadMapping;
import io.vblk.virtio.queue.QueueLayout;
import io.vblk.virtio.vhost.socket.VhostUserExport;
import io.vblk.virtio.vhost.wire.VhostUserCodec.MemRegion;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.LinkedBlockingQueue;

/**
 * The set-up the vhost-user tests share: vblk's server (a main loop, I/O threads, a device on a
 * driver, an export listening on a UNIX socket) on one side, and a "fe" loop for the guest
 * harness's low-level {@link VhostUserFrontend} on the other. {@link #close} takes it all down in
 * the order the server needs: exports and devices, then the loops, then the drivers.
 *
 * <p>Home thread: the test thread that builds it (it only starts, awaits and closes the loops; all
 * server state is touched on the main loop, all front-end state on the "fe" loop).
 */
public final class VhostRig implements AutoCloseable {
    /** Little-endian views, as the guest lays out its rings and requests. */
    public static final ValueLayout.OfShort LE16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    public static final ValueLayout.OfInt LE32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    public static final ValueLayout.OfLong LE64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    /** The bound on every wait the rig does. */
    public static final Duration T = Duration.ofSeconds(20);

    /** One served export: its driver, node, device, socket and the reasons its connections closed. */
    public record Served(BlockDriver driver, BlockNode node, BlkDevice device, VhostUserExport export, String sock,
                         BlockingQueue<String> reasons) {
    }

    /**
     * The guest's 4 KiB writes, posted and published one at a time as three descriptors (header,
     * data, status): each keeps its token, head (split) or buffer id (packed) and status address.
     */
    public static final class Writes {
        private final GuestRam ram;
        private final GuestRing ring;
        private final int[] heads;
        private final long[] status;
        private int next;

        /** Up to {@code max} writes on {@code ring} over {@code ram}. */
        public Writes(GuestRam ram, GuestRing ring, int max) {
            this.ram = ram;
            this.ring = ring;
            heads = new int[max];
            status = new long[max];
        }

        /** Posts and publishes a write of {@code fill} to 4 KiB block {@code block}; returns its token. */
        public int post(int block, byte fill) {
            int token = next++;
            long hdr = ram.allocate(16, 16);
            long data = ram.allocate(4096, 4096);
            long st = ram.allocate(1, 1);
            MemorySegment h = ram.segment(hdr, 16);
            h.set(LE32, BlkWireLayout.HDR_TYPE, BlkWireLayout.T_OUT);
            h.set(LE32, BlkWireLayout.HDR_RESERVED, 0);
            h.set(LE64, BlkWireLayout.HDR_SECTOR, block * 8L);
            ram.segment(data, 4096).fill(fill);
            ram.segment(st, 1).set(ValueLayout.JAVA_BYTE, 0, (byte) 0x7f);
            ring.beginChain();
            ring.addBuffer(hdr, 16, false);
            ring.addBuffer(data, 4096, false);
            ring.addBuffer(st, 1, true);
            heads[token] = ring.commitChain(token);
            status[token] = st;
            ring.publish();
            return token;
        }

        /** The head descriptor (split) or buffer id (packed) of write {@code token}. */
        public int head(int token) {
            return heads[token];
        }

        /** The guest address of write {@code token}'s status byte. */
        public long status(int token) {
            return status[token];
        }
    }

    private final Path dir;
    private final IoThread control = IoThread.start("main-loop", AioOptions.DEFAULT);
    private final List<IoThread> ioThreads = new ArrayList<>();
    private final List<Served> served = new ArrayList<>();
    private IoThread fe;

    /** A main loop; sockets go in {@code dir}. */
    public VhostRig(Path dir) {
        this.dir = dir;
    }

    /** A sparse file of {@code bytes} at {@code dir/disk.img}. */
    public static Path image(Path dir, long bytes) throws IOException {
        Path img = dir.resolve("disk.img");
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
            f.setLength(bytes);
        }
        return img;
    }

    /** The byte at offset 100 of 4 KiB block {@code block} of the file {@code img}. */
    public static byte readBlock(Path img, int block) throws IOException {
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "r")) {
            f.seek(block * 4096L + 100);
            return f.readByte();
        }
    }

    /** {@link #serve(String, String, String, int, int)} on {@code vblk.sock}, node named after the device. */
    public Served serve(String driverSpec, int queues, int ioThreadCount) {
        return serve("vblk.sock", driverSpec, "vda", queues, ioThreadCount);
    }

    /**
     * Opens {@code driverSpec}, starts {@code ioThreadCount} new I/O threads ("io0", "io1", ... in
     * the order the rig starts them), and serves device "vda" with {@code queues} queues over them
     * on {@code dir/sockName}, on a node named {@code nodeName}.
     */
    public Served serve(String sockName, String driverSpec, String nodeName, int queues, int ioThreadCount) {
        List<AioContext> ctxs = new ArrayList<>();
        for (int i = 0; i < ioThreadCount; i++) {
            IoThread t = IoThread.start("io" + ioThreads.size(), AioOptions.DEFAULT);
            ioThreads.add(t);
            ctxs.add(t.ctx());
        }
        BlockDriver driver = DriverSpec.open(driverSpec);
        String sock = dir.resolve(sockName).toString();
        BlockingQueue<String> reasons = new LinkedBlockingQueue<>();
        AioContext c = control.ctx();
        Served s = AioContext.await(c.callOn(() -> {
            BlockNode node = new BlockNode(nodeName, driver, c);
            BlkDevice device = new BlkDevice("vda", node, new BlkDeviceConfig().numQueues(queues)
                    .ioThreads(IoThreadMapping.roundRobin(ctxs)), c);
            VhostUserExport e = VhostUserExport.listen("vda", c, device, sock);
            e.onConnectionClosed(reasons::add);
            return new Served(driver, node, device, e, sock, reasons);
        }), T);
        served.add(s);
        return s;
    }

    /** The main loop's context. */
    public AioContext control() {
        return control.ctx();
    }

    /** The front-end's loop, started on first use. */
    public IoThread frontEnd() {
        if (fe == null) {
            fe = IoThread.start("fe", AioOptions.DEFAULT);
        }
        return fe;
    }

    /** Connects a front-end (default options) on the "fe" loop to {@code sock}. */
    public VhostUserFrontend connect(String sock) {
        return AioContext.await(VhostUserFrontend.connect(frontEnd().ctx(), sock, VhostUserFrontend.Options.defaults()), T);
    }

    /**
     * Starts queue 0 of {@code f}: driver features, the guest's memory table, the ring at
     * {@code ring} resuming at {@code base}, fresh kick/call eventfds. Call on {@code f}'s loop;
     * completes when the back-end has answered all of it.
     */
    public static CompletableFuture<Void> startQueue0(VhostUserFrontend f, GuestRam ram, QueueLayout ring, long features,
                                                      int base) {
        f.setDriverFeatures(features);
        f.setMemoryTable(List.of(new MemRegion(ram.gpaBase(), ram.size(), ram.hostAddress(), 0)), new int[]{ram.fd()});
        f.configureQueue(0, new QueueLayout(ring.size(), ring.descAddr(), ring.availAddr(), ring.usedAddr(), base));
        f.setQueueFds(0, EventFds.eventfd(0, EventFds.EFD_NONBLOCK | EventFds.EFD_CLOEXEC),
                EventFds.eventfd(0, EventFds.EFD_NONBLOCK | EventFds.EFD_CLOEXEC));
        f.startQueue(0, () -> { });
        return f.settled();
    }

    /** {@link #startQueue0} from the test thread, awaited. */
    public void start(VhostUserFrontend f, GuestRam ram, QueueLayout ring, long features, int base) {
        awaitOnFe(() -> startQueue0(f, ram, ring, features, base));
    }

    /** Kicks queue 0 of {@code f}. */
    public void kick(VhostUserFrontend f) {
        AioContext.await(frontEnd().ctx().callOn(() -> EventFds.eventfdWrite(f.kickFd(0), 1)), T);
    }

    /** Runs {@code op} on the "fe" loop and returns its result, awaited. */
    public <R> R onFe(Callable<R> op) {
        return AioContext.await(frontEnd().ctx().callOn(op), T);
    }

    /** Runs {@code op} on the "fe" loop and waits (bounded) for the future it returns. */
    public <R> R awaitOnFe(Callable<CompletableFuture<R>> op) {
        return AioContext.await(frontEnd().ctx().callOn(op).thenCompose(x -> x), T);
    }

    /** Closes {@code f} on its loop. */
    public void close(VhostUserFrontend f) {
        onFe(() -> {
            f.close();
            return null;
        });
    }

    @Override
    public void close() {
        for (Served s : served) {
            CompletableFuture<Void> idle = new CompletableFuture<>();
            AioContext.await(control.ctx().callOn(() -> {
                s.export().close(() -> s.device().close(() -> idle.complete(null)));
                return null;
            }), T);
            AioContext.await(idle, T);
        }
        if (fe != null) {
            fe.close();
        }
        for (int i = ioThreads.size() - 1; i >= 0; i--) {
            ioThreads.get(i).close();
        }
        control.close();
        served.forEach(s -> s.driver().close());
    }
}
