package io.vblk.tools.qmp;

import com.fasterxml.jackson.databind.JsonNode;

import java.util.Iterator;
import java.util.Map;
import java.util.TreeMap;

/**
 * Any thread: stateless.
 *
 * <p>The shape of a QMP message, for comparing vblk's replies with qemu-storage-daemon's: the keys
 * and JSON types of every object (sorted), an array as the shape of its first element, the error
 * class kept as a value (error descriptions and other values are left out).
 */
final class QmpShapes {
    private QmpShapes() {
    }

    static String shape(JsonNode n) {
        if (n.has("error") && n.get("error").isObject()) {
            return "{error:{class=" + n.get("error").path("class").asText() + ",desc:string}" + (n.has("id") ? ",id:" + shape(n.get("id")) : "") + "}";
        }
        return of(n);
    }

    private static String of(JsonNode n) {
        if (n.isObject()) {
            Map<String, String> m = new TreeMap<>();
            for (Iterator<Map.Entry<String, JsonNode>> it = n.properties().iterator(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                m.put(e.getKey(), of(e.getValue()));
            }
            StringBuilder b = new StringBuilder("{");
            m.forEach((k, v) -> b.append(b.length() > 1 ? "," : "").append(k).append(':').append(v));
            return b.append('}').toString();
        }
        if (n.isArray()) {
            return n.isEmpty() ? "[]" : "[" + of(n.get(0)) + "]";
        }
        if (n.isIntegralNumber()) {
            return "int";
        }
        if (n.isNumber()) {
            return "number";
        }
        if (n.isBoolean()) {
            return "bool";
        }
        if (n.isTextual()) {
            return "string";
        }
        return "null";
    }
}
