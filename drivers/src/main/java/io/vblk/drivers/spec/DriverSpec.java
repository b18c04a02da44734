package io.vblk.drivers.spec;

import io.vblk.aio.engine.AioMode;
import io.vblk.aio.sys.Errno;
import io.vblk.drivers.BlockDriver;
import io.vblk.drivers.BlockIo;
import io.vblk.drivers.fault.BlkdebugRules;
import io.vblk.drivers.fault.FaultDriver;
import io.vblk.drivers.fault.FaultRule;
import io.vblk.drivers.file.FileDriver;
import io.vblk.drivers.nbd.NbdAddress;
import io.vblk.drivers.nbd.client.NbdClientDriver;
import io.vblk.drivers.nullblk.NullDriver;
import io.vblk.drivers.rbd.RbdDriver;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Any thread.
 *
 * <p>A driver described by one string, as given on the command line. Parsing checks everything and
 * fails with an {@link IllegalArgumentException} that quotes the spec, names the bad key and says
 * what it accepts; {@link #open()} then opens the driver.
 *
 * <h2>Syntax</h2>
 * <pre>
 *   null[:KEY=VALUE,...]
 *       size=SIZE                 device size (default 1G)
 *       completion=sync|async     sync: completes on the submitting stack, like null-co (default);
 *                                 async: completes from a bottom half, like null-aio
 *       max-batch=N               requests per submission batch (default 32)
 *       ro=off|on                 read-only: writes, discard and write-zeroes fail with EROFS
 *       read-zeroes=on|off        reads fill their buffers with zeroes (default on), or leave them
 *                                 untouched (QEMU null-co's default read-zeroes=off)
 *
 *   file:PATH[,KEY=VALUE,...]     (or file:path=PATH,...; write ",," for a comma inside PATH)
 *       aio=threads|native|io_uring  worker pool (default), Linux native AIO or io_uring
 *       cache=writeback|none      page cache (default) or O_DIRECT
 *       ro=off|on                 read-only (default off)
 *
 *   fault:[seed=N;]rule=RULE[;rule=RULE...];inner=SPEC
 *       seed=N                    seed of the probability draws (default 1)
 *       rule=RULE                 a comma-separated list of KEY:VALUE, matched in order:
 *           op:OPS                read, write, flush, discard, write-zeroes, secure-erase or any; several
 *                                 joined with '+' (default any)
 *           range:START-END       byte range the request must overlap, END exclusive (default all)
 *           nth:N                 only the N-th matching request (1-based)
 *           every:N               every N-th matching request
 *           prob:P                fire with probability P in 0..1 (seeded)
 *           count:N               fire at most N times
 *         and exactly one action:
 *           error:ERRNO           complete with -ERRNO: EIO, ENOSPC, EROFS, EINVAL, EOPNOTSUPP, EPERM,
 *                                 ENOMEM, or a number
 *           short:BYTES           reads transfer only BYTES (op must be read)
 *           delay:DURATION        hold the request DURATION before passing it on (ns, us, ms, s)
 *       inner=SPEC                the wrapped driver; must come last (it may contain ';')
 *
 *   rbd:pool=P,image=I[,KEY=VALUE,...]   a Ceph RBD image through librbd (Debian's librbd1)
 *       namespace=NS              the pool's RADOS namespace
 *       snapshot=SNAP             serve the snapshot (read-only)
 *       conf=PATH                 ceph.conf (default: librados' search: $CEPH_CONF, /etc/ceph/ceph.conf, ...)
 *       user=NAME                 connect as client.NAME (default admin)
 *       ro=off|on                 read-only: rbd_open_read_only, no exclusive lock
 *   nbd:server.type=unix,server.path=P | server.type=inet,server.host=H[,server.port=N][,KEY=VALUE,...]
 *       export=NAME               the export to open (default: the empty name)
 *       reconnect-delay=S         seconds requests wait for a lost connection to come back (default 0)
 *
 *   SIZE: a byte count with an optional K, M, G or T suffix (powers of 1024), e.g. 4096, 64M, 1G.
 * </pre>
 * Example: {@code fault:seed=7;rule=op:write,range:0-1M,error:ENOSPC;rule=op:read,nth:3,short:512;inner=null:size=64M}
 */
public sealed interface DriverSpec {
    /** Opens the driver this spec describes. */
    BlockDriver open();

    /** @param readZeroes reads fill their buffers with zeroes (false: QEMU null-co's read-zeroes=off) */
    record Null(long size, NullDriver.Completion completion, int maxBatch, boolean readOnly, boolean readZeroes)
            implements DriverSpec {
        public Null(long size, NullDriver.Completion completion, int maxBatch, boolean readOnly) {
            this(size, completion, maxBatch, readOnly, true);
        }

        @Override
        public BlockDriver open() {
            return new NullDriver(size, completion, maxBatch, readOnly, readZeroes);
        }
    }

    record File(String path, AioMode aio, FileDriver.Cache cache, boolean readOnly) implements DriverSpec {
        @Override
        public BlockDriver open() {
            return FileDriver.open(path, aio, cache, readOnly);
        }
    }

    record Fault(long seed, List<FaultRule> rules, DriverSpec inner) implements DriverSpec {
        @Override
        public BlockDriver open() {
            return new FaultDriver(inner.open(), rules, seed);
        }
    }

    /** QEMU's blkdebug over {@code image} ({@code vblk serve --blockdev driver=blkdebug}). */
    record Blkdebug(BlkdebugRules rules, DriverSpec image) implements DriverSpec {
        @Override
        public BlockDriver open() {
            return new FaultDriver(image.open(), List.of(), 1, rules);
        }
    }

    record Rbd(RbdDriver.Options options) implements DriverSpec {
        @Override
        public BlockDriver open() {
            return RbdDriver.open(options);
        }
    }

    /** An NBD export, QEMU's {@code driver=nbd} (see {@link NbdClientDriver}). */
    record Nbd(NbdAddress server, String export, int reconnectDelaySeconds) implements DriverSpec {
        @Override
        public BlockDriver open() {
            return NbdClientDriver.open(server, export, reconnectDelaySeconds);
        }
    }

    /** Parses {@code spec}; see the class comment for the syntax. */
    static DriverSpec parse(String spec) {
        return Parser.parse(spec, spec);
    }

    /** Parses and opens. */
    static BlockDriver open(String spec) {
        return parse(spec).open();
    }

    /** The syntax parser; package-private helpers. Any thread. */
    final class Parser {
        private Parser() {
        }

        static DriverSpec parse(String spec, String whole) {
            if (spec == null || spec.isBlank()) {
                throw bad(whole, "empty driver spec; use null[:...], file:PATH[,...] or fault:...;inner=SPEC");
            }
            int colon = spec.indexOf(':');
            String kind = colon < 0 ? spec : spec.substring(0, colon);
            String rest = colon < 0 ? "" : spec.substring(colon + 1);
            return switch (kind) {
                case "null" -> parseNull(rest, whole);
                case "file" -> parseFile(rest, whole);
                case "fault" -> parseFault(rest, whole);
                case "rbd" -> parseRbd(rest, whole);
                case "nbd" -> parseNbd(rest, whole);
                default -> throw bad(whole, "unknown driver '" + kind + "'; accepted: null, file, fault, rbd, nbd");
            };
        }

        private static DriverSpec parseNull(String rest, String whole) {
            long size = 1L << 30;
            NullDriver.Completion completion = NullDriver.Completion.SYNC;
            int maxBatch = 32;
            boolean ro = false;
            boolean readZeroes = true;
            for (Map.Entry<String, String> e : keyValues(rest, whole, "null").entrySet()) {
                String v = e.getValue();
                switch (e.getKey()) {
                    case "size" -> size = size(v, whole, "size");
                    case "completion" -> completion = switch (v) {
                        case "sync" -> NullDriver.Completion.SYNC;
                        case "async" -> NullDriver.Completion.ASYNC;
                        default -> throw bad(whole, "completion: '" + v + "' is not accepted; use sync or async");
                    };
                    case "max-batch" -> maxBatch = (int) number(v, whole, "max-batch", 1, 1024);
                    case "ro" -> ro = onOff(v, whole, "ro");
                    case "read-zeroes" -> readZeroes = onOff(v, whole, "read-zeroes");
                    default -> throw bad(whole, "unknown key '" + e.getKey()
                            + "' for driver null; accepted: size, completion, max-batch, ro, read-zeroes");
                }
            }
            return new Null(size, completion, maxBatch, ro, readZeroes);
        }

        private static DriverSpec parseFile(String rest, String whole) {
            List<String> items = splitEscapedCommas(rest);
            String path = null;
            AioMode aio = AioMode.THREADS;
            FileDriver.Cache cache = FileDriver.Cache.WRITEBACK;
            boolean ro = false;
            for (int i = 0; i < items.size(); i++) {
                String item = items.get(i);
                int eq = item.indexOf('=');
                if (i == 0 && !item.startsWith("path=") && (eq < 0 || item.contains("/"))) {
                    path = item;
                    continue;
                }
                if (eq < 0) {
                    throw bad(whole, "'" + item + "' is not KEY=VALUE; accepted keys: path, aio, cache, ro");
                }
                String k = item.substring(0, eq);
                String v = item.substring(eq + 1);
                switch (k) {
                    case "path" -> path = v;
                    case "aio" -> {
                        try {
                            aio = AioMode.parse(v);
                        } catch (IllegalArgumentException e) {
                            throw bad(whole, e.getMessage());
                        }
                    }
                    case "cache" -> cache = switch (v) {
                        case "none" -> FileDriver.Cache.NONE;
                        case "writeback" -> FileDriver.Cache.WRITEBACK;
                        default -> throw bad(whole, "cache: '" + v + "' is not accepted; use none or writeback");
                    };
                    case "ro" -> ro = onOff(v, whole, "ro");
                    default -> throw bad(whole, "unknown key '" + k + "' for driver file; accepted: path, aio, cache, ro");
                }
            }
            if (path == null || path.isEmpty()) {
                throw bad(whole, "file needs a path: file:PATH[,aio=...,cache=...,ro=...]");
            }
            return new File(path, aio, cache, ro);
        }

        private static DriverSpec parseRbd(String rest, String whole) {
            Map<String, String> kv = keyValues(rest, whole, "rbd");
            boolean ro = false;
            for (Map.Entry<String, String> e : kv.entrySet()) {
                switch (e.getKey()) {
                    case "pool", "image", "namespace", "snapshot", "conf", "user" -> {
                        if (e.getValue().isEmpty()) {
                            throw bad(whole, e.getKey() + " must not be empty");
                        }
                    }
                    case "ro" -> ro = onOff(e.getValue(), whole, "ro");
                    default -> throw bad(whole, "unknown key '" + e.getKey()
                            + "' for driver rbd; accepted: pool, image, namespace, snapshot, conf, user, ro");
                }
            }
            if (!kv.containsKey("pool") || !kv.containsKey("image")) {
                throw bad(whole, "rbd needs pool and image: rbd:pool=P,image=I[,namespace=...,snapshot=...,conf=...,user=...]");
            }
            return new Rbd(new RbdDriver.Options(kv.get("pool"), kv.get("image"), kv.get("namespace"), kv.get("snapshot"),
                    kv.get("conf"), kv.get("user"), null, ro));
        }

        private static DriverSpec parseNbd(String rest, String whole) {
            String type = null;
            String path = null;
            String host = null;
            int port = NbdAddress.DEFAULT_PORT;
            String export = "";
            int delay = 0;
            for (Map.Entry<String, String> e : keyValues(rest, whole, "nbd").entrySet()) {
                String v = e.getValue();
                switch (e.getKey()) {
                    case "server.type" -> type = v;
                    case "server.path" -> path = v;
                    case "server.host" -> host = v;
                    case "server.port" -> port = (int) number(v, whole, "server.port", 1, 65535);
                    case "export" -> export = v;
                    case "reconnect-delay" -> delay = (int) number(v, whole, "reconnect-delay", 0, 3600);
                    default -> throw bad(whole, "unknown key '" + e.getKey() + "' for driver nbd; accepted: server.type,"
                            + " server.path, server.host, server.port, export, reconnect-delay");
                }
            }
            NbdAddress server;
            if ("unix".equals(type)) {
                if (path == null || path.isEmpty()) {
                    throw bad(whole, "server.type=unix needs server.path=SOCKET");
                }
                server = new NbdAddress.Unix(path);
            } else if ("inet".equals(type)) {
                if (host == null || host.isEmpty()) {
                    throw bad(whole, "server.type=inet needs server.host=HOST (and server.port=N, default 10809)");
                }
                server = new NbdAddress.Inet(host, port);
            } else {
                throw bad(whole, "server.type: " + (type == null ? "missing" : "'" + type + "' is not accepted")
                        + "; use unix (with server.path) or inet (with server.host, server.port)");
            }
            return new Nbd(server, export, delay);
        }

        private static DriverSpec parseFault(String rest, String whole) {
            int at = rest.startsWith("inner=") ? 0 : rest.indexOf(";inner=");
            if (at < 0) {
                throw bad(whole, "fault needs inner=SPEC as its last field: fault:rule=...;inner=null");
            }
            String head = at == 0 ? "" : rest.substring(0, at);
            String innerSpec = rest.substring(at == 0 ? "inner=".length() : at + ";inner=".length());
            long seed = 1;
            List<FaultRule> rules = new ArrayList<>();
            if (!head.isEmpty()) {
                for (String field : head.split(";", -1)) {
                    int eq = field.indexOf('=');
                    String k = eq < 0 ? field : field.substring(0, eq);
                    String v = eq < 0 ? "" : field.substring(eq + 1);
                    switch (k) {
                        case "seed" -> seed = number(v, whole, "seed", Long.MIN_VALUE, Long.MAX_VALUE);
                        case "rule" -> rules.add(rule(v, whole));
                        default -> throw bad(whole, "unknown field '" + k + "' for driver fault; accepted: seed, rule, inner");
                    }
                }
            }
            return new Fault(seed, rules, parse(innerSpec, whole));
        }

        private static FaultRule rule(String body, String whole) {
            int ops = FaultRule.ALL_OPS;
            long start = 0;
            long end = Long.MAX_VALUE;
            long nth = 0;
            long every = 0;
            double prob = 1;
            long count = 0;
            FaultRule.Action action = null;
            int errno = 0;
            long shortBytes = 0;
            long delay = 0;
            if (body.isEmpty()) {
                throw bad(whole, "empty rule; e.g. rule=op:read,error:EIO");
            }
            for (String part : body.split(",", -1)) {
                int c = part.indexOf(':');
                if (c < 0) {
                    throw bad(whole, "rule item '" + part + "' is not KEY:VALUE");
                }
                String k = part.substring(0, c);
                String v = part.substring(c + 1);
                switch (k) {
                    case "op" -> ops = ops(v, whole);
                    case "range" -> {
                        int dash = v.indexOf('-');
                        if (dash <= 0) {
                            throw bad(whole, "range: '" + v + "' is not START-END (sizes, END exclusive)");
                        }
                        start = size(v.substring(0, dash), whole, "range start");
                        end = size(v.substring(dash + 1), whole, "range end");
                        if (end <= start) {
                            throw bad(whole, "range: END must be greater than START in '" + v + "'");
                        }
                    }
                    case "nth" -> nth = number(v, whole, "nth", 1, Long.MAX_VALUE);
                    case "every" -> every = number(v, whole, "every", 1, Long.MAX_VALUE);
                    case "count" -> count = number(v, whole, "count", 1, Long.MAX_VALUE);
                    case "prob" -> {
                        try {
                            prob = Double.parseDouble(v);
                        } catch (NumberFormatException e) {
                            prob = -1;
                        }
                        if (!(prob >= 0 && prob <= 1)) {
                            throw bad(whole, "prob: '" + v + "' is not a probability in 0..1");
                        }
                    }
                    case "error", "short", "delay" -> {
                        if (action != null) {
                            throw bad(whole, "a rule takes exactly one action (error, short or delay); '" + body + "' has more");
                        }
                        switch (k) {
                            case "error" -> {
                                action = FaultRule.Action.ERROR;
                                errno = errno(v, whole);
                            }
                            case "short" -> {
                                action = FaultRule.Action.SHORT;
                                shortBytes = size(v, whole, "short");
                            }
                            default -> {
                                action = FaultRule.Action.DELAY;
                                delay = duration(v, whole);
                            }
                        }
                    }
                    default -> throw bad(whole, "unknown rule key '" + k
                            + "'; accepted: op, range, nth, every, prob, count, error, short, delay");
                }
            }
            if (action == null) {
                throw bad(whole, "rule '" + body + "' has no action; add error:ERRNO, short:BYTES or delay:DURATION");
            }
            if (action == FaultRule.Action.SHORT && ops != FaultRule.opBit(BlockIo.READ)) {
                throw bad(whole, "short: applies to reads only; add op:read to rule '" + body + "'");
            }
            return new FaultRule(ops, start, end, nth, every, prob, count, action, errno, shortBytes, delay);
        }

        private static int ops(String v, String whole) {
            int mask = 0;
            for (String o : v.split("\\+", -1)) {
                mask |= switch (o) {
                    case "read" -> FaultRule.opBit(BlockIo.READ);
                    case "write" -> FaultRule.opBit(BlockIo.WRITE);
                    case "flush" -> FaultRule.opBit(BlockIo.FLUSH);
                    case "discard" -> FaultRule.opBit(BlockIo.DISCARD);
                    case "write-zeroes" -> FaultRule.opBit(BlockIo.WRITE_ZEROES);
                    case "secure-erase" -> FaultRule.opBit(BlockIo.SECURE_ERASE);
                    case "any" -> FaultRule.ALL_OPS;
                    default -> throw bad(whole, "op: '" + o
                            + "' is not accepted; use read, write, flush, discard, write-zeroes, secure-erase or any (join with +)");
                };
            }
            return mask;
        }

        private static int errno(String v, String whole) {
            int e = switch (v.toUpperCase(Locale.ROOT)) {
                case "EIO" -> Errno.EIO;
                case "ENOSPC" -> Errno.ENOSPC;
                case "EROFS" -> Errno.EROFS;
                case "EINVAL" -> Errno.EINVAL;
                case "EOPNOTSUPP", "ENOTSUP" -> Errno.EOPNOTSUPP;
                case "EPERM" -> Errno.EPERM;
                case "ENOMEM" -> Errno.ENOMEM;
                default -> {
                    try {
                        yield Integer.parseInt(v);
                    } catch (NumberFormatException ex) {
                        yield -1;
                    }
                }
            };
            if (e <= 0 || e > 4095) {
                throw bad(whole, "error: '" + v + "' is not accepted; use EIO, ENOSPC, EROFS, EINVAL, EOPNOTSUPP,"
                        + " EPERM, ENOMEM or an errno number 1..4095");
            }
            return e;
        }

        /** Parses KEY=VALUE,KEY=VALUE (duplicate keys refused). */
        private static Map<String, String> keyValues(String rest, String whole, String kind) {
            Map<String, String> m = new LinkedHashMap<>();
            if (rest.isEmpty()) {
                return m;
            }
            for (String item : rest.split(",", -1)) {
                int eq = item.indexOf('=');
                if (eq <= 0) {
                    throw bad(whole, "'" + item + "' is not KEY=VALUE in the " + kind + " options");
                }
                if (m.put(item.substring(0, eq), item.substring(eq + 1)) != null) {
                    throw bad(whole, "key '" + item.substring(0, eq) + "' given twice");
                }
            }
            return m;
        }

        /** Splits on ',' where ",," stands for a literal comma. */
        static List<String> splitEscapedCommas(String s) {
            List<String> out = new ArrayList<>();
            if (s.isEmpty()) {
                return out;
            }
            StringBuilder cur = new StringBuilder();
            for (int i = 0; i < s.length(); i++) {
                char ch = s.charAt(i);
                if (ch == ',') {
                    if (i + 1 < s.length() && s.charAt(i + 1) == ',') {
                        cur.append(',');
                        i++;
                    } else {
                        out.add(cur.toString());
                        cur.setLength(0);
                    }
                } else {
                    cur.append(ch);
                }
            }
            out.add(cur.toString());
            return out;
        }

        /** A byte count with an optional K/M/G/T (1024-based) suffix. */
        static long size(String v, String whole, String key) {
            String t = v.trim();
            long mult = 1;
            if (!t.isEmpty()) {
                char last = Character.toUpperCase(t.charAt(t.length() - 1));
                int shift = switch (last) {
                    case 'K' -> 10;
                    case 'M' -> 20;
                    case 'G' -> 30;
                    case 'T' -> 40;
                    default -> 0;
                };
                if (shift > 0) {
                    mult = 1L << shift;
                    t = t.substring(0, t.length() - 1);
                }
            }
            try {
                long n = Long.parseLong(t);
                if (n < 0 || n > Long.MAX_VALUE / mult) {
                    throw new NumberFormatException();
                }
                return n * mult;
            } catch (NumberFormatException e) {
                throw bad(whole, key + ": '" + v + "' is not a size; use a byte count with an optional K, M, G or T suffix");
            }
        }

        static long number(String v, String whole, String key, long min, long max) {
            try {
                long n = Long.parseLong(v.trim());
                if (n < min || n > max) {
                    throw new NumberFormatException();
                }
                return n;
            } catch (NumberFormatException e) {
                throw bad(whole, key + ": '" + v + "' is not a whole number in " + min + ".." + max);
            }
        }

        static long duration(String v, String whole) {
            String t = v.trim();
            long unit;
            String num;
            if (t.endsWith("ns")) {
                unit = 1;
                num = t.substring(0, t.length() - 2);
            } else if (t.endsWith("us")) {
                unit = 1_000;
                num = t.substring(0, t.length() - 2);
            } else if (t.endsWith("ms")) {
                unit = 1_000_000;
                num = t.substring(0, t.length() - 2);
            } else if (t.endsWith("s")) {
                unit = 1_000_000_000;
                num = t.substring(0, t.length() - 1);
            } else {
                throw bad(whole, "delay: '" + v + "' needs a unit: ns, us, ms or s (e.g. 5ms)");
            }
            try {
                long n = Long.parseLong(num);
                if (n <= 0 || n > Long.MAX_VALUE / unit) {
                    throw new NumberFormatException();
                }
                return n * unit;
            } catch (NumberFormatException e) {
                throw bad(whole, "delay: '" + v + "' is not a positive duration (e.g. 200us, 5ms, 1s)");
            }
        }

        private static boolean onOff(String v, String whole, String key) {
            return switch (v) {
                case "on", "true", "yes" -> true;
                case "off", "false", "no" -> false;
                default -> throw bad(whole, key + ": '" + v + "' is not accepted; use on or off");
            };
        }

        private static IllegalArgumentException bad(String whole, String msg) {
            return new IllegalArgumentException("driver '" + whole + "': " + msg);
        }
    }
}
