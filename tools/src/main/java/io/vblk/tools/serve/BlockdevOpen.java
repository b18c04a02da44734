package io.vblk.tools.serve;

import io.vblk.aio.AioContext;
import io.vblk.drivers.BlockDriver;
import io.vblk.drivers.file.FileDriver;
import io.vblk.drivers.nbd.client.NbdClientDriver;
import io.vblk.drivers.nullblk.NullDriver;
import io.vblk.drivers.qcow2.Qcow2Driver;
import io.vblk.drivers.rbd.RbdDriver;
import io.vblk.drivers.spec.DriverSpec;
import io.vblk.tools.serve.ServeConfig.BlkdebugNode;
import io.vblk.tools.serve.ServeConfig.Blockdev;
import io.vblk.tools.serve.ServeConfig.FileNode;
import io.vblk.tools.serve.ServeConfig.NbdNode;
import io.vblk.tools.serve.ServeConfig.NullNode;
import io.vblk.tools.serve.ServeConfig.Qcow2Node;
import io.vblk.tools.serve.ServeConfig.RbdNode;

import java.util.Map;

/**
 * Any thread: stateless.
 *
 * <p>How {@code vblk serve} opens the block node of a {@code --blockdev}: a protocol node from its
 * {@link DriverSpec}, a qcow2 node over the driver of its file node.
 */
final class BlockdevOpen {
    private BlockdevOpen() {
    }

    /**
     * A qcow2 node over the driver of its file node (shared, not reopened), opened on the main loop
     * inside a nested wait, as QEMU's blockdev-add opens a qcow2 chain.
     */
    static BlockDriver qcow2(Qcow2Node q, Map<String, BlockDriver> drivers, AioContext main) {
        BlockDriver file = drivers.get(q.file());
        if (q.backingNbd() != null) {
            NbdNode n = q.backingNbd();
            return Qcow2Driver.openWithBacking(file,
                    () -> NbdClientDriver.open(n.server(), n.export(), n.reconnectDelay()),
                    q.readOnly(), main);
        }
        BlockDriver back = q.backing() == null ? null : drivers.get(q.backing());
        return Qcow2Driver.open(file, back, !q.noBacking() && back == null, q.readOnly(), main);
    }

    /** The driver for a block node (DriverSpec is the drivers module's one description of a driver). */
    static DriverSpec spec(Blockdev b) {
        return switch (b) {
            case FileNode f -> new DriverSpec.File(f.filename(), f.aio(),
                    f.cacheDirect() ? FileDriver.Cache.NONE : FileDriver.Cache.WRITEBACK, f.readOnly());
            case NullNode n -> new DriverSpec.Null(n.size(), n.aio() ? NullDriver.Completion.ASYNC : NullDriver.Completion.SYNC,
                    32, n.readOnly(), false); // null-co's default read-zeroes=off, as the parser accepts
            case BlkdebugNode d -> new DriverSpec.Blkdebug(d.rules(), spec(d.image()));
            case RbdNode r -> new DriverSpec.Rbd(new RbdDriver.Options(r.pool(), r.image(), r.namespace(), r.snapshot(),
                    r.conf(), r.user(), r.key(), r.readOnly()));
            case NbdNode n -> new DriverSpec.Nbd(n.server(), n.export(), n.reconnectDelay());
            case Qcow2Node q -> throw new IllegalArgumentException("qcow2 node " + q.nodeName()
                    + " is opened over its file node's driver, not from a spec");
        };
    }
}
