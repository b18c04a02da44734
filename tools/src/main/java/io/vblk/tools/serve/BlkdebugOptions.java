package io.vblk.tools.serve;

import io.vblk.aio.engine.AioMode;
import io.vblk.aio.sys.Errno;
import io.vblk.drivers.BlockIo;
import io.vblk.drivers.fault.BlkdebugRules;
import io.vblk.drivers.fault.BlkdebugRules.Event;
import io.vblk.tools.serve.ServeConfig.Blockdev;
import io.vblk.tools.serve.ServeConfig.BlkdebugNode;
import io.vblk.tools.serve.ServeConfig.FileNode;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Any thread: stateless.
 *
 * <p>{@code --blockdev driver=blkdebug,node-name=N,image=NODE} (or
 * {@code image.driver=file,image.filename=F[,image.aio=...][,image.cache.direct=on|off]}) with QEMU's
 * rule lists: {@code inject-error.I.event/state/iotype/errno/sector/once/immediately} and
 * {@code set-state.I.event/state/new_state} (see {@link BlkdebugRules} for the events vblk raises).
 * {@code errno} is a number as in QEMU, or a name such as ENOSPC. A blkdebug {@code config} file and
 * {@code align} are refused with a message.
 */
final class BlkdebugOptions {
    private static final String IOTYPES = "read, write, write-zeroes, discard, flush";

    private BlkdebugOptions() {
    }

    static BlkdebugNode parse(KeyValueOptions o, String nodeName, Map<String, Blockdev> nodes,
                              Map<String, String> rawAliases) throws ServeOptionException {
        if (o.take("config") != null) {
            throw new ServeOptionException(o.where() + ": config= (a blkdebug rule file) is not supported; give the"
                    + " rules as inject-error.N.* and set-state.N.* keys");
        }
        if (o.take("align") != null) {
            throw new ServeOptionException(o.where() + ": align= is not supported by vblk's blkdebug");
        }
        Blockdev image = image(o, nodeName, nodes, rawAliases);
        List<BlkdebugRules.InjectError> inject = new ArrayList<>();
        for (int i = 0; o.hasPrefix("inject-error." + i + "."); i++) {
            String p = "inject-error." + i + ".";
            Event ev = event(o, p);
            int state = (int) o.takeLong(p + "state", 0, 0, Integer.MAX_VALUE);
            int mask = iotype(o, p + "iotype");
            int errno = errno(o, p + "errno");
            long sector = o.takeLong(p + "sector", -1, -1, Long.MAX_VALUE >> 9);
            boolean once = o.takeBool(p + "once", false);
            boolean immediately = o.takeBool(p + "immediately", false);
            inject.add(new BlkdebugRules.InjectError(ev, state, mask, errno, sector, once, immediately));
        }
        List<BlkdebugRules.SetState> set = new ArrayList<>();
        for (int i = 0; o.hasPrefix("set-state." + i + "."); i++) {
            String p = "set-state." + i + ".";
            Event ev = event(o, p);
            int state = (int) o.takeLong(p + "state", 0, 0, Integer.MAX_VALUE);
            String ns = o.take(p + "new_state");
            if (ns == null) {
                throw new ServeOptionException(o.where() + ": " + p + "new_state is required (the state to move to)");
            }
            int newState;
            try {
                newState = Integer.parseInt(ns);
            } catch (NumberFormatException e) {
                newState = -1;
            }
            if (newState < 0) {
                throw new ServeOptionException(o.where() + ": " + p + "new_state=" + ns + " is not valid; accepts 0.."
                        + Integer.MAX_VALUE);
            }
            set.add(new BlkdebugRules.SetState(ev, state, newState));
        }
        o.finish(); // also names list elements that do not start at 0 or have gaps
        return new BlkdebugNode(nodeName, image, new BlkdebugRules(inject, set));
    }

    private static Blockdev image(KeyValueOptions o, String nodeName, Map<String, Blockdev> nodes,
                                  Map<String, String> rawAliases) throws ServeOptionException {
        String ref = o.take("image");
        if (ref != null) {
            Blockdev b = nodes.get(rawAliases.getOrDefault(ref, ref));
            if (b == null) {
                throw new ServeOptionException(o.where() + ": image=" + ref + " names no earlier --blockdev; accepts a"
                        + " node-name, or image.driver=file,image.filename=PATH");
            }
            return b;
        }
        String driver = o.require("image.driver", "the image: image=NODE, or image.driver=file,image.filename=PATH");
        if (!driver.equals("file") && !driver.equals("host_device")) {
            throw new ServeOptionException(o.where() + ": image.driver=" + driver + " is not supported; accepts file or"
                    + " host_device (or image=NODE for any other node)");
        }
        String filename = o.require("image.filename", "the image file or block device path");
        AioMode aio = AioMode.parse(o.takeChoice("image.aio", AioMode.THREADS.spelling(), AioMode.spellings()));
        boolean direct = o.takeBool("image.cache.direct", false);
        if (aio == AioMode.NATIVE && !direct) {
            throw new ServeOptionException(o.where() + ": image.aio=native requires image.cache.direct=on");
        }
        boolean ro = o.takeBool("read-only", false) | o.takeBool("image.read-only", false);
        return new FileNode(nodeName + ".image", filename, aio, direct, ro);
    }

    private static Event event(KeyValueOptions o, String p) throws ServeOptionException {
        String name = o.require(p + "event", "the blkdebug event: " + Event.names());
        Event ev = Event.byName(name);
        if (ev == null) {
            throw new ServeOptionException(o.where() + ": " + p + "event=" + name + " is not an event vblk raises;"
                    + " accepts " + Event.names());
        }
        return ev;
    }

    private static int iotype(KeyValueOptions o, String key) throws ServeOptionException {
        String v = o.take(key);
        if (v == null) {
            return BlkdebugRules.IOTYPE_DEFAULT;
        }
        int op = switch (v) {
            case "read" -> BlockIo.READ;
            case "write" -> BlockIo.WRITE;
            case "write-zeroes" -> BlockIo.WRITE_ZEROES;
            case "discard" -> BlockIo.DISCARD;
            case "flush" -> BlockIo.FLUSH;
            default -> throw new ServeOptionException(o.where() + ": " + key + "=" + v + " is not supported; accepts "
                    + IOTYPES);
        };
        return 1 << op;
    }

    /** QEMU's errno is a number (default EIO); vblk also takes the names of {@link Errno}. */
    private static int errno(KeyValueOptions o, String key) throws ServeOptionException {
        String v = o.take(key);
        if (v == null) {
            return Errno.EIO;
        }
        try {
            int n = Integer.parseInt(v);
            if (n > 0 && n < 4096) {
                return n;
            }
        } catch (NumberFormatException e) {
            String up = v.toUpperCase(Locale.ROOT);
            for (int n = 1; n < 200; n++) {
                if (Errno.name(n).equals(up)) {
                    return n;
                }
            }
        }
        throw new ServeOptionException(o.where() + ": " + key + "=" + v + " is not valid; accepts an errno number"
                + " 1..4095 (e.g. 5 for EIO, 28 for ENOSPC) or a name such as EIO or ENOSPC");
    }
}
