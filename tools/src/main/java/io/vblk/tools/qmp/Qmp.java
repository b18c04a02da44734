package io.vblk.tools.qmp;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.util.HashSet;
import java.util.Iterator;
import java.util.Set;

/**
 * Any thread: stateless (Jackson's {@link ObjectMapper} is thread-safe once configured).
 *
 * <p>What every part of the monitor shares: the JSON mapper, the event envelope and QAPI's argument
 * checks with QEMU's messages ({@link Args}).
 */
public final class Qmp {
    public static final ObjectMapper JSON = new ObjectMapper();

    private Qmp() {
    }

    /** {@code {"event": NAME, "data": DATA, "timestamp": {"seconds", "microseconds"}}} (qmp-spec.rst 2.3). */
    static ObjectNode event(String name, JsonNode data) {
        ObjectNode o = JSON.createObjectNode();
        long micros = System.currentTimeMillis() * 1000;
        ObjectNode ts = o.putObject("timestamp");
        ts.put("seconds", micros / 1_000_000);
        ts.put("microseconds", micros % 1_000_000);
        o.put("event", name);
        if (data != null) {
            o.set("data", data);
        }
        return o;
    }

    /** qmp_capabilities' one argument, {@code enable}: vblk offers no capability (no "oob"). */
    static void checkCapabilities(ObjectNode args) {
        Args a = new Args(args);
        JsonNode en = a.optional("enable");
        a.finish();
        if (en != null) {
            if (!en.isArray()) {
                throw QmpError.generic("Invalid parameter type for 'enable', expected: array");
            }
            for (JsonNode c : en) {
                throw QmpError.generic("Parameter 'enable' does not accept value '" + c.asText() + "'");
            }
        }
    }

    /**
     * A command's arguments, checked as QEMU's generated visitors check them: a missing mandatory
     * member, a member of the wrong JSON type and a member nobody took each fail with QEMU's text.
     */
    public static final class Args {
        private final ObjectNode o;
        private final Set<String> taken = new HashSet<>();

        public Args(ObjectNode o) {
            this.o = o;
        }

        public JsonNode optional(String key) {
            taken.add(key);
            JsonNode n = o.get(key);
            return n == null || n.isNull() ? null : n;
        }

        /** True when {@code key} is given as JSON null (QEMU's "no backing": {@code "backing": null}). */
        public boolean isNull(String key) {
            taken.add(key);
            JsonNode n = o.get(key);
            return n != null && n.isNull();
        }

        public JsonNode require(String key) {
            JsonNode n = optional(key);
            if (n == null) {
                throw QmpError.generic("Parameter '" + key + "' is missing");
            }
            return n;
        }

        public String string(String key) {
            return text(key, require(key));
        }

        public String optString(String key) {
            JsonNode n = optional(key);
            return n == null ? null : text(key, n);
        }

        public long integer(String key) {
            return number(key, require(key));
        }

        public Long optInteger(String key) {
            JsonNode n = optional(key);
            return n == null ? null : number(key, n);
        }

        public boolean bool(String key, boolean dflt) {
            JsonNode n = optional(key);
            if (n == null) {
                return dflt;
            }
            if (!n.isBoolean()) {
                throw wrongType(key, "boolean");
            }
            return n.asBoolean();
        }

        public Args object(String key) {
            JsonNode n = require(key);
            if (!n.isObject()) {
                throw wrongType(key, "object");
            }
            return new Args((ObjectNode) n);
        }

        /** Fails on the first member no one took: "Parameter 'x' is unexpected". */
        public void finish() {
            for (Iterator<String> it = o.fieldNames(); it.hasNext(); ) {
                String k = it.next();
                if (!taken.contains(k)) {
                    throw QmpError.generic("Parameter '" + k + "' is unexpected");
                }
            }
        }

        private static String text(String key, JsonNode n) {
            if (!n.isTextual()) {
                throw wrongType(key, "string");
            }
            return n.asText();
        }

        private static long number(String key, JsonNode n) {
            if (!n.isIntegralNumber() || !n.canConvertToLong()) {
                throw wrongType(key, "integer");
            }
            return n.asLong();
        }

        private static QmpError wrongType(String key, String type) {
            return QmpError.generic("Invalid parameter type for '" + key + "', expected: " + type);
        }
    }
}
