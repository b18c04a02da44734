package io.vblk.tools.serve;

import io.vblk.virtio.blk.BlkDeviceConfig;
import io.vblk.aio.engine.AioMode;
import io.vblk.drivers.fault.BlkdebugRules;
import io.vblk.virtio.blk.ErrorPolicy;
import java.util.List;
import java.util.Map;

/**
 * Any thread: immutable.
 *
 * <p>What {@code vblk serve} was asked to run, checked: block nodes, IoThreads and exports, with
 * every cross-reference resolved (an export's node and IoThreads exist, ids are unique).
 */
public record ServeConfig(List<Blockdev> blockdevs, List<IoThreadSpec> iothreads, List<ExportSpec> exports,
                          String pidfile, io.vblk.drivers.nbd.NbdAddress nbdServer, List<NbdExportSpec> nbdExports,
                          Map<String, byte[]> secrets) {

    public ServeConfig(List<Blockdev> blockdevs, List<IoThreadSpec> iothreads, List<ExportSpec> exports, String pidfile) {
        this(blockdevs, iothreads, exports, pidfile, null, List.of(), Map.of());
    }

    @Override
    public String toString() {
        return "ServeConfig[blockdevs=" + blockdevs + ", iothreads=" + iothreads + ", exports=" + exports + ", pidfile="
                + pidfile + ", nbdServer=" + nbdServer + ", nbdExports=" + nbdExports + ", secrets=" + secrets.keySet() + "]";
    }

    /**
     * {@code --export type=nbd,id=E,node-name=N[,name=NAME][,writable=on][,iothread=I]}: served by the
     * {@code --nbd-server}; {@code name} defaults to the node-name, as in QEMU.
     */
    public record NbdExportSpec(String id, String nodeName, String name, boolean writable, String iothread) {
    }

    /** {@code driver=nbd}: an NBD export as a node (QEMU's BlockdevOptionsNbd). */
    public record NbdNode(String nodeName, io.vblk.drivers.nbd.NbdAddress server, String export, int reconnectDelay)
            implements Blockdev {
        @Override
        public boolean readOnly() {
            return false;
        }
    }

    /** A block node ({@code --blockdev}). */
    public sealed interface Blockdev permits FileNode, NullNode, BlkdebugNode, RbdNode, NbdNode, Qcow2Node {
        String nodeName();

        boolean readOnly();
    }

    /**
     * {@code driver=file} (a regular file or block device).
     *
     * @param aio         the engine, QEMU's aio= (its default is threads)
     * @param cacheDirect O_DIRECT (cache.direct=on)
     */
    public record FileNode(String nodeName, String filename, AioMode aio, boolean cacheDirect, boolean readOnly)
            implements Blockdev {
    }

    /** {@code driver=null-co} (completes at once) or {@code null-aio} (completes from a bottom half). */
    public record NullNode(String nodeName, boolean aio, long size, boolean readOnly)
            implements Blockdev {
    }

    /**
     * {@code driver=rbd}: a Ceph RBD image through librbd, with qemu-storage-daemon's option names
     * ({@code namespace}, {@code snapshot}, {@code conf}, {@code user}, {@code keySecret} may be null).
     *
     * @param key the cephx key from the secret object {@code keySecret} names (base64), or null
     */
    public record RbdNode(String nodeName, String pool, String image, String namespace, String snapshot, String conf,
                          String user, String keySecret, String key, boolean readOnly) implements Blockdev {
        /** The image as {@code rbd} names it. */
        public String describe() {
            return pool + "/" + (namespace == null ? "" : namespace + "/") + image + (snapshot == null ? "" : "@" + snapshot);
        }

        /** Without the key. */
        @Override
        public String toString() {
            return "RbdNode[" + nodeName + ", " + describe() + ", conf=" + conf + ", user=" + user + ", key-secret="
                    + keySecret + ", read-only=" + readOnly + "]";
        }
    }

    /**
     * {@code driver=blkdebug}: QEMU's error injection over {@code image} (an earlier node, or a file
     * given inline as {@code image.driver=file,image.filename=...}).
     */
    public record BlkdebugNode(String nodeName, Blockdev image, BlkdebugRules rules) implements Blockdev {
        @Override
        public boolean readOnly() {
            return image.readOnly();
        }
    }

    /**
     * {@code driver=qcow2}: a qcow2 image over the earlier node {@code file}, with its backing from
     * the node {@code backing}, or (null) the backing file the image names; {@code noBacking}
     * ({@code backing=null}) reads unallocated clusters as zeroes; {@code backingNbd} non-null: a
     * backing node defined inline ({@code backing.driver=nbd,backing.server.type=...}), opened inside
     * the qcow2 open on the main loop (seed 004's setting when the server is this daemon's own).
     */
    public record Qcow2Node(String nodeName, String file, String backing, boolean noBacking, boolean readOnly,
                            NbdNode backingNbd) implements Blockdev {
        public Qcow2Node(String nodeName, String file, String backing, boolean noBacking, boolean readOnly) {
            this(nodeName, file, backing, noBacking, readOnly, null);
        }
    }

    /**
     * {@code --object iothread,...}: an IoThread and its polling/batching knobs (QEMU's defaults),
     * and the CPUs it is bound to ({@code cpu-affinity}; null: unpinned).
     */
    public record IoThreadSpec(String id, long pollMaxNs, long pollGrow, long pollShrink, int aioMaxBatch,
                               java.util.BitSet cpuAffinity) {
    }

    /** Where an export listens: a socket path it creates, or a listening fd it was given. */
    public sealed interface Address permits UnixPath, InheritedFd {
        String describe();
    }

    public record UnixPath(String path) implements Address {
        @Override
        public String describe() {
            return "unix:" + path;
        }
    }

    public record InheritedFd(int fd) implements Address {
        @Override
        public String describe() {
            return "fd:" + fd;
        }
    }

    /**
     * {@code --export type=vhost-user-blk,...}.
     *
     * @param iothreads ids of the IoThreads its queues run on, queue i on {@code iothreads[i % n]};
     *                  empty: every queue on the main loop
     */
    public record ExportSpec(String id, String nodeName, Address address, boolean writable, int numQueues,
                             int logicalBlockSize, List<String> iothreads, ErrorPolicy werror, ErrorPolicy rerror,
                             int submitBatch) {
        /** With QEMU's default error policies (werror=enospc, rerror=report) and the default submit-batch. */
        public ExportSpec(String id, String nodeName, Address address, boolean writable, int numQueues,
                          int logicalBlockSize, List<String> iothreads) {
            this(id, nodeName, address, writable, numQueues, logicalBlockSize, iothreads, ErrorPolicy.DEFAULT_WRITE,
                    ErrorPolicy.DEFAULT_READ, BlkDeviceConfig.DEFAULT_SUBMIT_BATCH);
        }

        /** The IoThread id of queue {@code q}, or null for the main loop. */
        public String iothreadOf(int q) {
            return iothreads.isEmpty() ? null : iothreads.get(q % iothreads.size());
        }
    }

    public Blockdev node(String nodeName) {
        for (Blockdev b : blockdevs) {
            if (b.nodeName().equals(nodeName)) {
                return b;
            }
        }
        return null;
    }
}
