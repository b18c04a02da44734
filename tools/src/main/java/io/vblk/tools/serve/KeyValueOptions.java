package io.vblk.tools.serve;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/**
 * Any thread: confined to its user.
 *
 * <p>One option argument in QEMU's "key=value,key=value" syntax (QEMU's keyval / QemuOpts form, as
 * {@code qemu-storage-daemon --blockdev} and {@code --export} take it): a comma inside a value
 * is written twice ({@code ,,}); an option may name an implicit first key, whose value is given
 * without "key=" ({@code --object iothread,id=io0} means {@code qom-type=iothread}). Keys are
 * taken one by one; whatever is left at the end is an error naming the keys that are accepted.
 */
final class KeyValueOptions {
    private final String option;
    private final String text;
    private final Map<String, String> values;
    private final Set<String> accepted = new TreeSet<>();

    private KeyValueOptions(String option, String text, Map<String, String> values) {
        this.option = option;
        this.text = text;
        this.values = values;
    }

    /**
     * Parses {@code text} given to {@code option} (e.g. "--blockdev").
     *
     * @param implicitKey the key of a leading value without "=", or null when none is allowed
     */
    static KeyValueOptions parse(String option, String text, String implicitKey) throws ServeOptionException {
        if (text.isEmpty()) {
            throw new ServeOptionException(option + ": empty argument; expected key=value[,key=value...]");
        }
        if (text.startsWith("{")) {
            throw new ServeOptionException(option + " " + text + ": the JSON form is not supported; use key=value[,key=value...]");
        }
        Map<String, String> out = new LinkedHashMap<>();
        List<String> parts = split(text);
        for (int i = 0; i < parts.size(); i++) {
            String p = parts.get(i);
            int eq = p.indexOf('=');
            String key;
            String value;
            if (eq < 0) {
                if (i == 0 && implicitKey != null) {
                    key = implicitKey;
                    value = p;
                } else {
                    throw new ServeOptionException(option + " " + text + ": '" + p + "' has no value; expected key=value");
                }
            } else {
                key = p.substring(0, eq);
                value = p.substring(eq + 1);
            }
            if (key.isEmpty()) {
                throw new ServeOptionException(option + " " + text + ": empty key in '" + p + "'");
            }
            if (out.put(key, value) != null) {
                throw new ServeOptionException(option + " " + text + ": " + key + " is given twice");
            }
        }
        return new KeyValueOptions(option, text, out);
    }

    /** Splits at single commas; ",," is a literal comma. */
    private static List<String> split(String text) {
        List<String> parts = new ArrayList<>();
        StringBuilder cur = new StringBuilder();
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (c == ',') {
                if (i + 1 < text.length() && text.charAt(i + 1) == ',') {
                    cur.append(',');
                    i++;
                    continue;
                }
                parts.add(cur.toString());
                cur.setLength(0);
            } else {
                cur.append(c);
            }
        }
        parts.add(cur.toString());
        return parts;
    }

    String option() {
        return option;
    }

    String text() {
        return text;
    }

    /** "--export type=...,id=e0" for messages. */
    String where() {
        return option + " " + text;
    }

    /** Removes and returns {@code key}'s value, or null when absent. */
    String take(String key) {
        accepted.add(key);
        return values.remove(key);
    }

    String require(String key, String accepts) throws ServeOptionException {
        String v = take(key);
        if (v == null || v.isEmpty()) {
            throw new ServeOptionException(where() + ": " + key + " is required (" + accepts + ")");
        }
        return v;
    }

    /** Values of a QAPI list written "key.0=a,key.1=b,..." (consecutive from 0), removed. */
    List<String> takeList(String key) throws ServeOptionException {
        accepted.add(key + ".N");
        List<String> out = new ArrayList<>();
        for (int i = 0; ; i++) {
            String v = values.remove(key + "." + i);
            if (v == null) {
                break;
            }
            out.add(v);
        }
        for (String k : values.keySet()) {
            if (k.startsWith(key + ".")) {
                throw new ServeOptionException(where() + ": " + k + " does not continue the list " + key
                        + ".0, " + key + ".1, ... (indices must start at 0 and have no gaps)");
            }
        }
        return out;
    }

    /** "on"/"off" (also yes/no, true/false as QEMU's keyval accepts), or {@code dflt} when absent. */
    boolean takeBool(String key, boolean dflt) throws ServeOptionException {
        String v = take(key);
        if (v == null) {
            return dflt;
        }
        return switch (v) {
            case "on", "yes", "true" -> true;
            case "off", "no", "false" -> false;
            default -> throw new ServeOptionException(where() + ": " + key + "=" + v + " is not valid; accepts on or off");
        };
    }

    /** A decimal integer in [min, max], or {@code dflt} when absent. */
    long takeLong(String key, long dflt, long min, long max) throws ServeOptionException {
        String v = take(key);
        if (v == null) {
            return dflt;
        }
        long n;
        try {
            n = Long.parseLong(v);
        } catch (NumberFormatException e) {
            throw new ServeOptionException(where() + ": " + key + "=" + v + " is not a number; accepts " + min + ".." + max);
        }
        if (n < min || n > max) {
            throw new ServeOptionException(where() + ": " + key + "=" + v + " is out of range; accepts " + min + ".." + max);
        }
        return n;
    }

    /** A size as QEMU writes it (1G, 512M, 4096, 1.5k; binary units), or {@code dflt} when absent. */
    long takeSize(String key, long dflt) throws ServeOptionException {
        String v = take(key);
        if (v == null) {
            return dflt;
        }
        long n = Sizes.parse(v);
        if (n < 0) {
            throw new ServeOptionException(where() + ": " + key + "=" + v
                    + " is not a size; accepts a number of bytes with an optional suffix k, M, G, T, P or E (e.g. 1G)");
        }
        return n;
    }

    /** A value from a fixed set, or {@code dflt} when absent. */
    String takeChoice(String key, String dflt, String... choices) throws ServeOptionException {
        String v = take(key);
        if (v == null) {
            return dflt;
        }
        for (String c : choices) {
            if (c.equals(v)) {
                return v;
            }
        }
        throw new ServeOptionException(where() + ": " + key + "=" + v + " is not valid; accepts " + String.join(", ", choices));
    }

    /** Whether any key not yet taken starts with {@code prefix} (a QAPI list element, "key.N."). */
    boolean hasPrefix(String prefix) {
        for (String k : values.keySet()) {
            if (k.startsWith(prefix)) {
                return true;
            }
        }
        return false;
    }

    /** Fails naming every key not taken, and the keys this option accepts. */
    void finish() throws ServeOptionException {
        if (!values.isEmpty()) {
            throw new ServeOptionException(where() + ": unknown or unsupported key" + (values.size() > 1 ? "s " : " ")
                    + String.join(", ", values.keySet()) + "; accepted keys: " + String.join(", ", accepted));
        }
    }

    /** QEMU's size syntax (qemu_strtosz): decimal with optional fraction and a binary-unit suffix. */
    static final class Sizes {
        private Sizes() {
        }

        /** Bytes, or -1 when {@code s} is not a size. */
        static long parse(String s) {
            if (s.isEmpty()) {
                return -1;
            }
            char last = s.charAt(s.length() - 1);
            int shift = switch (Character.toUpperCase(last)) {
                case 'B' -> 0;
                case 'K' -> 10;
                case 'M' -> 20;
                case 'G' -> 30;
                case 'T' -> 40;
                case 'P' -> 50;
                case 'E' -> 60;
                default -> -1;
            };
            String num = shift >= 0 ? s.substring(0, s.length() - 1) : s;
            if (shift < 0) {
                shift = 0;
            }
            if (num.isEmpty() || !num.matches("[0-9]+(\\.[0-9]+)?")) {
                return -1;
            }
            try {
                java.math.BigDecimal v = new java.math.BigDecimal(num).multiply(java.math.BigDecimal.valueOf(2).pow(shift));
                if (v.compareTo(java.math.BigDecimal.valueOf(Long.MAX_VALUE)) > 0) {
                    return -1;
                }
                return v.setScale(0, java.math.RoundingMode.DOWN).longValueExact();
            } catch (ArithmeticException e) {
                return -1;
            }
        }
    }
}
