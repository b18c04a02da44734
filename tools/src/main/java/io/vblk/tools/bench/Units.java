package io.vblk.tools.bench;

import java.time.Duration;
import java.util.Locale;

/**
 * Any thread: pure functions.
 *
 * <p>Parsing of the sizes and durations {@code vblk bench} takes on its command line, with errors
 * that name what is accepted.
 */
public final class Units {
    private Units() {
    }

    /**
     * A byte count: a number with an optional binary suffix k/K/KiB (1024), m/M/MiB, g/G/GiB,
     * t/T/TiB; no suffix or "b" means bytes. fio's convention: "4k" is 4096.
     */
    public static long parseSize(String text) {
        String s = text.trim();
        String lower = s.toLowerCase(Locale.ROOT);
        int end = 0;
        while (end < lower.length() && Character.isDigit(lower.charAt(end))) {
            end++;
        }
        if (end == 0) {
            throw new IllegalArgumentException("'" + text + "' is not a size; use e.g. 512, 4k, 64KiB, 1m, 2g");
        }
        long n;
        try {
            n = Long.parseLong(lower.substring(0, end));
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("'" + text + "' is too large a size");
        }
        int shift = switch (lower.substring(end)) {
            case "", "b" -> 0;
            case "k", "kb", "kib" -> 10;
            case "m", "mb", "mib" -> 20;
            case "g", "gb", "gib" -> 30;
            case "t", "tb", "tib" -> 40;
            default -> throw new IllegalArgumentException("'" + text + "' has an unknown unit; use k, m, g or t"
                    + " (powers of 1024)");
        };
        if (n > (Long.MAX_VALUE >> shift)) {
            throw new IllegalArgumentException("'" + text + "' is too large a size");
        }
        return n << shift;
    }

    /** A duration: a number with ms, s, m or h ("10s", "500ms", "2m"); a bare number is seconds. */
    public static Duration parseDuration(String text) {
        String s = text.trim().toLowerCase(Locale.ROOT);
        int end = 0;
        while (end < s.length() && (Character.isDigit(s.charAt(end)) || s.charAt(end) == '.')) {
            end++;
        }
        if (end == 0) {
            throw new IllegalArgumentException("'" + text + "' is not a duration; use e.g. 500ms, 10s, 2m");
        }
        double v;
        try {
            v = Double.parseDouble(s.substring(0, end));
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("'" + text + "' is not a duration; use e.g. 500ms, 10s, 2m");
        }
        double nanosPerUnit = switch (s.substring(end)) {
            case "ms" -> 1e6;
            case "", "s" -> 1e9;
            case "m", "min" -> 60e9;
            case "h" -> 3600e9;
            default -> throw new IllegalArgumentException("'" + text + "' has an unknown unit; use ms, s, m or h");
        };
        double nanos = v * nanosPerUnit;
        if (nanos <= 0 || nanos > Long.MAX_VALUE) {
            throw new IllegalArgumentException("'" + text + "' is out of range");
        }
        return Duration.ofNanos((long) nanos);
    }

    /** "4k" style for a byte count that is a whole number of KiB/MiB/GiB, else bytes. */
    public static String formatSize(long bytes) {
        String[] units = {"", "k", "m", "g", "t"};
        int u = 0;
        long v = bytes;
        while (u < units.length - 1 && v != 0 && v % 1024 == 0) {
            v /= 1024;
            u++;
        }
        return v + units[u];
    }

    /** "10s", "500ms" for a duration. */
    public static String formatDuration(Duration d) {
        long ms = d.toMillis();
        return ms % 1000 == 0 ? ms / 1000 + "s" : ms + "ms";
    }
}
