package io.vblk.tools.qmp;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.Channels;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;

/**
 * Home thread: the one thread that uses it (blocking I/O; no context's home thread).
 *
 * <p>A QMP client over a UNIX socket: reads the greeting, sends one JSON object per line and
 * returns the next reply, keeping the events that arrive meanwhile. {@code vblk monitor} and the
 * tests use it against vblk and qemu-storage-daemon alike.
 */
public final class QmpClient implements AutoCloseable {
    private final SocketChannel ch;
    private final BufferedReader in;
    private final OutputStream out;
    private final JsonNode greeting;
    private final Deque<JsonNode> events = new ArrayDeque<>();

    private QmpClient(SocketChannel ch) throws IOException {
        this.ch = ch;
        this.in = new BufferedReader(new InputStreamReader(Channels.newInputStream(ch), StandardCharsets.UTF_8));
        this.out = Channels.newOutputStream(ch);
        this.greeting = readMessage();
    }

    /** Connects and reads the greeting; does not negotiate (see {@link #negotiate}). */
    public static QmpClient connect(Path socket) throws IOException {
        SocketChannel ch = SocketChannel.open(StandardProtocolFamily.UNIX);
        try {
            ch.connect(UnixDomainSocketAddress.of(socket));
            return new QmpClient(ch);
        } catch (IOException | RuntimeException e) {
            ch.close();
            throw e;
        }
    }

    public JsonNode greeting() {
        return greeting;
    }

    /** qmp_capabilities; throws unless it returned. */
    public QmpClient negotiate() throws IOException {
        JsonNode r = execute("qmp_capabilities", null);
        if (!r.has("return")) {
            throw new IOException("qmp_capabilities failed: " + r);
        }
        return this;
    }

    /** Sends {@code {"execute": name, "arguments": args}} and returns the whole reply object. */
    public JsonNode execute(String name, JsonNode args) throws IOException {
        ObjectNode o = Qmp.JSON.createObjectNode();
        o.put("execute", name);
        if (args != null) {
            o.set("arguments", args);
        }
        return request(o);
    }

    /** Sends one JSON value and returns the next reply (events that come first are kept). */
    public JsonNode request(JsonNode message) throws IOException {
        return raw(Qmp.JSON.writeValueAsString(message));
    }

    /** Sends {@code line} as is (plus a newline) and returns the next reply. */
    public JsonNode raw(String line) throws IOException {
        out.write((line + "\n").getBytes(StandardCharsets.UTF_8));
        out.flush();
        return reply();
    }

    /** The next message that is not an event. */
    public JsonNode reply() throws IOException {
        while (true) {
            JsonNode m = readMessage();
            if (m.has("event")) {
                events.add(m);
            } else {
                return m;
            }
        }
    }

    /** Waits for an event named {@code name} (earlier ones kept are checked first). */
    public JsonNode awaitEvent(String name) throws IOException {
        for (JsonNode e : events) {
            if (e.path("event").asText().equals(name)) {
                events.remove(e);
                return e;
            }
        }
        while (true) {
            JsonNode m = readMessage();
            if (m.path("event").asText().equals(name)) {
                return m;
            }
            if (m.has("event")) {
                events.add(m);
            }
        }
    }

    /** The events received so far and not yet taken; clears them. */
    public List<JsonNode> takeEvents() {
        List<JsonNode> l = new ArrayList<>(events);
        events.clear();
        return l;
    }

    /** Writes bytes without waiting for a reply (tests of bad input). */
    public void send(byte[] bytes) throws IOException {
        out.write(bytes);
        out.flush();
    }

    /** The next message, or an {@link IOException} at end of stream. */
    public JsonNode readMessage() throws IOException {
        String line = in.readLine();
        if (line == null) {
            throw new IOException("connection closed by the server");
        }
        return Qmp.JSON.readTree(line);
    }

    @Override
    public void close() throws IOException {
        ch.close();
    }
}
