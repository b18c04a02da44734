package io.vblk.tools.bench;

import java.util.Locale;

/**
 * Home thread: the thread that builds the report. Not thread-safe.
 *
 * <p>A small JSON object writer for {@code vblk bench --json}: one flat or nested object, fields in
 * insertion order, numbers printed without exponent where that is exact.
 */
final class Json {
    private final StringBuilder sb = new StringBuilder();
    private boolean first = true;

    Json begin() {
        sb.append('{');
        first = true;
        return this;
    }

    Json end() {
        sb.append('}');
        first = false;
        return this;
    }

    Json object(String key) {
        key(key);
        sb.append('{');
        first = true;
        return this;
    }

    Json field(String key, String value) {
        key(key);
        if (value == null) {
            sb.append("null");
        } else {
            string(value);
        }
        return this;
    }

    Json field(String key, long value) {
        key(key);
        sb.append(value);
        return this;
    }

    Json field(String key, boolean value) {
        key(key);
        sb.append(value);
        return this;
    }

    /** A double with {@code decimals} places; NaN and infinities become null. */
    Json field(String key, double value, int decimals) {
        key(key);
        if (Double.isNaN(value) || Double.isInfinite(value)) {
            sb.append("null");
        } else {
            sb.append(String.format(Locale.ROOT, "%." + decimals + "f", value));
        }
        return this;
    }

    Json nullField(String key) {
        key(key);
        sb.append("null");
        return this;
    }

    private void key(String key) {
        if (!first) {
            sb.append(',');
        }
        first = false;
        string(key);
        sb.append(':');
    }

    private void string(String s) {
        sb.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> sb.append("\\\"");
                case '\\' -> sb.append("\\\\");
                case '\n' -> sb.append("\\n");
                case '\r' -> sb.append("\\r");
                case '\t' -> sb.append("\\t");
                default -> {
                    if (c < 0x20) {
                        sb.append(String.format(Locale.ROOT, "\\u%04x", (int) c));
                    } else {
                        sb.append(c);
                    }
                }
            }
        }
        sb.append('"');
    }

    @Override
    public String toString() {
        return sb.toString();
    }
}
