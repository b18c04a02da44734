package io.vblk.tools.qmp;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.vblk.aio.AioContext;
import io.vblk.aio.FdHandler;
import io.vblk.aio.Timer;
import io.vblk.aio.sys.Errno;
import io.vblk.aio.sys.FileIo;

import java.io.ByteArrayOutputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.util.Iterator;
import java.util.Map;

/**
 * Home thread: the main loop. No locking.
 *
 * <p>One QMP client on a monitor socket (docs/interop/qmp-spec.rst): the greeting, capabilities
 * negotiation, then one command at a time — each line is one JSON object, its reply goes out
 * before the next line is read (in-band commands run in order, as in QEMU), and an asynchronous
 * command (one that hands over to an IoThread) keeps the line reader paused, never the loop.
 * Events go to a client once it has left negotiation. A line over {@link #MAX_LINE} closes the
 * connection with a log line; any other bad input gets an error reply and the connection stays.
 */
final class QmpConnection {
    private static final System.Logger LOG = System.getLogger(QmpConnection.class.getName());
    /** The longest request line: 1 MiB (vblk's limit; QEMU's lexer stops at 64 MiB tokens). */
    static final int MAX_LINE = 1 << 20;
    private static final int CHUNK = 64 * 1024;
    /** Retry interval for output the socket did not take (EAGAIN): 1 ms. */
    private static final long WRITE_RETRY_NS = 1_000_000;

    private final String name;
    private final AioContext ctx;
    private final int fd;
    private final QmpServer server;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment io = arena.allocate(CHUNK);
    private final ByteArrayOutputStream line = new ByteArrayOutputStream();
    private final ByteArrayOutputStream pending = new ByteArrayOutputStream();
    private final ByteArrayOutputStream output = new ByteArrayOutputStream();
    private final Timer writeRetry;
    private FdHandler handler;
    private boolean negotiated;
    private boolean busy;
    private boolean closed;

    QmpConnection(String name, AioContext ctx, int fd, QmpServer server) {
        this.name = name;
        this.ctx = ctx;
        this.fd = fd;
        this.server = server;
        this.writeRetry = ctx.timer(name + " write retry", this::flush);
    }

    void start() {
        ctx.assertHome();
        send(server.greeting());
        handler = ctx.addFdHandler(name, fd, ignored -> readable());
    }

    boolean negotiated() {
        return negotiated;
    }

    boolean closed() {
        return closed;
    }

    String name() {
        return name;
    }

    private void readable() {
        while (!closed) {
            long n = FileIo.read(fd, io.address(), CHUNK);
            if (n == -Errno.EAGAIN) {
                return;
            }
            if (n <= 0) {
                close(n == 0 ? "client closed the connection" : "read failed: " + Errno.name((int) -n));
                return;
            }
            byte[] b = io.asSlice(0, n).toArray(ValueLayout.JAVA_BYTE);
            pending.write(b, 0, b.length);
            processPending();
        }
    }

    /** Splits the bytes received into lines and runs them, one command at a time. */
    private void processPending() {
        while (!busy && !closed && pending.size() > 0) {
            byte[] b = pending.toByteArray();
            pending.reset();
            int nl = -1;
            for (int i = 0; i < b.length; i++) {
                if (b[i] == '\n') {
                    nl = i;
                    break;
                }
            }
            int take = nl < 0 ? b.length : nl;
            if (line.size() + take > MAX_LINE) {
                LOG.log(System.Logger.Level.WARNING, () -> name + ": request line over " + MAX_LINE + " bytes; closing the connection");
                close("request line over " + MAX_LINE + " bytes");
                return;
            }
            line.write(b, 0, take);
            if (nl < 0) {
                return;
            }
            pending.write(b, nl + 1, b.length - nl - 1);
            String text = line.toString(StandardCharsets.UTF_8).strip();
            line.reset();
            if (!text.isEmpty()) {
                request(text);
            }
        }
    }

    private void request(String text) {
        JsonNode req;
        try {
            req = Qmp.JSON.readTree(text);
        } catch (JacksonException e) {
            reply(null, null, QmpError.generic("JSON parse error, " + e.getOriginalMessage()));
            return;
        }
        if (!(req instanceof ObjectNode o)) {
            reply(null, null, QmpError.generic("QMP input must be a JSON object"));
            return;
        }
        JsonNode id = o.get("id");
        for (Iterator<Map.Entry<String, JsonNode>> it = o.properties().iterator(); it.hasNext(); ) {
            String k = it.next().getKey();
            if (!k.equals("execute") && !k.equals("arguments") && !k.equals("id") && !k.equals("exec-oob")) {
                reply(id, null, QmpError.generic("QMP input member '" + k + "' is unexpected"));
                return;
            }
        }
        JsonNode exec = o.get("execute");
        if (exec == null) {
            reply(id, null, QmpError.generic(o.has("exec-oob") ? "Out-of-band execution is not enabled"
                    : "QMP input lacks member 'execute'"));
            return;
        }
        if (!exec.isTextual()) {
            reply(id, null, QmpError.generic("QMP input member 'execute' must be a string"));
            return;
        }
        JsonNode args = o.get("arguments");
        if (args != null && !args.isObject()) {
            reply(id, null, QmpError.generic("QMP input member 'arguments' must be an object"));
            return;
        }
        String cmd = exec.asText();
        ObjectNode a = args == null ? Qmp.JSON.createObjectNode() : (ObjectNode) args;
        if (!negotiated) {
            if (!cmd.equals("qmp_capabilities")) {
                reply(id, null, new QmpError(QmpError.COMMAND_NOT_FOUND, "Expecting capabilities negotiation with 'qmp_capabilities'"));
                return;
            }
            try {
                Qmp.checkCapabilities(a);
            } catch (QmpError e) {
                reply(id, null, e);
                return;
            }
            negotiated = true;
            reply(id, Qmp.JSON.createObjectNode(), null);
            return;
        }
        if (cmd.equals("qmp_capabilities")) {
            reply(id, null, new QmpError(QmpError.COMMAND_NOT_FOUND, "Capabilities negotiation is already complete, command ignored"));
            return;
        }
        busy = true;
        server.commands().execute(cmd, a).whenComplete((r, t) -> ctx.runOn(() -> {
            busy = false;
            if (t != null) {
                Throwable c = t instanceof java.util.concurrent.CompletionException && t.getCause() != null ? t.getCause() : t;
                reply(id, null, c instanceof QmpError q ? q : QmpError.generic(String.valueOf(c.getMessage())));
            } else {
                reply(id, r, null);
            }
            processPending();
        }));
    }

    private void reply(JsonNode id, JsonNode result, QmpError error) {
        if (closed) {
            return; // the client left mid-command: the command ran, the reply has nobody to go to
        }
        ObjectNode o = Qmp.JSON.createObjectNode();
        if (error != null) {
            ObjectNode e = o.putObject("error");
            e.put("class", error.errorClass());
            e.put("desc", error.getMessage());
        } else {
            o.set("return", result);
        }
        if (id != null) {
            o.set("id", id);
        }
        send(o);
    }

    /** Queues one JSON object (a reply, an event, the greeting) as one line. */
    void send(JsonNode message) {
        if (closed) {
            return;
        }
        try {
            output.write(Qmp.JSON.writeValueAsBytes(message));
        } catch (java.io.IOException e) {
            throw new IllegalStateException("QMP message not serialisable: " + e.getMessage(), e);
        }
        output.write('\r');
        output.write('\n');
        flush();
    }

    private void flush() {
        if (closed || output.size() == 0 || writeRetry.isArmed()) {
            return;
        }
        byte[] b = output.toByteArray();
        int off = 0;
        while (off < b.length) {
            int len = Math.min(CHUNK, b.length - off);
            MemorySegment.copy(b, off, io, ValueLayout.JAVA_BYTE, 0, len);
            long n = FileIo.write(fd, io.address(), len);
            if (n == -Errno.EAGAIN) {
                break;
            }
            if (n < 0) {
                close("write failed: " + Errno.name((int) -n));
                return;
            }
            off += (int) n;
        }
        output.reset();
        output.write(b, off, b.length - off);
        if (output.size() > 0) {
            writeRetry.armIn(WRITE_RETRY_NS);
        }
    }

    /** Closes the connection; the monitor and the daemon carry on. Home thread. */
    void close(String reason) {
        if (closed) {
            return;
        }
        closed = true;
        writeRetry.cancel();
        if (handler != null) {
            handler.remove();
        }
        FileIo.close(fd);
        LOG.log(System.Logger.Level.INFO, () -> name + ": closed (" + reason + ")");
        server.connectionClosed(this);
        arena.close();
    }
}
