package io.vblk.tools.qmp;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.vblk.virtio.blk.BlockIoError;

import java.util.Locale;

/**
 * Any thread: pure functions.
 *
 * <p>The data of QMP events that come from outside the monitor, in QEMU's shapes.
 */
public final class QmpEvents {
    private QmpEvents() {
    }

    /**
     * QEMU's BLOCK_IO_ERROR: {@code device} (the export's device id), {@code node-name},
     * {@code operation} (read / write), {@code action} (ignore / report / stop), {@code nospace}
     * (present, true, only for ENOSPC, as QEMU sends it) and {@code reason} (the error's text).
     */
    public static ObjectNode blockIoError(BlockIoError e) {
        ObjectNode d = Qmp.JSON.createObjectNode();
        d.put("device", e.device());
        d.put("node-name", e.nodeName());
        d.put("operation", e.operation());
        d.put("action", e.action().name().toLowerCase(Locale.ROOT));
        if (e.nospace()) {
            d.put("nospace", true);
        }
        d.put("reason", e.reason());
        return d;
    }
}
