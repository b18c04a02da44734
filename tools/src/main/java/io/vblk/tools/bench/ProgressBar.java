package io.vblk.tools.bench;

import java.io.PrintStream;
import java.util.Locale;

/**
 * Home thread: the thread that runs the bench (it samples and draws). No locking.
 *
 * <p>A one-line progress bar on a terminal, redrawn in place with a carriage return:
 * {@code [##########----------]  50%  5.0s  IOPS 812.3k}. Written here instead of pulling in a
 * library for one line (and its terminal-detection dependency).
 */
public final class ProgressBar {
    private static final int WIDTH = 30;

    private final PrintStream out;
    private final boolean enabled;
    private long lastDone;
    private long lastNanos;
    private double rate;
    private int lastLength;

    /** Draws on {@code out} only when {@code enabled} (a terminal, or forced on). */
    public ProgressBar(PrintStream out, boolean enabled) {
        this.out = out;
        this.enabled = enabled;
    }

    /** True when stderr is a terminal (so the in-place redraw is useful). */
    public static boolean stderrIsTerminal() {
        java.io.Console c = System.console();
        return c != null && c.isTerminal();
    }

    public boolean enabled() {
        return enabled;
    }

    /**
     * Redraws with {@code fraction} (0..1) done, {@code done} requests after {@code elapsedNanos}.
     * The rate is over the interval since the previous update.
     */
    public void update(double fraction, long done, long elapsedNanos) {
        if (!enabled) {
            return;
        }
        long dt = elapsedNanos - lastNanos;
        if (dt > 0 && lastNanos > 0) {
            rate = (done - lastDone) * 1e9 / dt;
        } else if (elapsedNanos > 0) {
            rate = done * 1e9 / elapsedNanos;
        }
        lastDone = done;
        lastNanos = elapsedNanos;
        String line = render(fraction, elapsedNanos, rate);
        StringBuilder sb = new StringBuilder("\r").append(line);
        for (int i = line.length(); i < lastLength; i++) {
            sb.append(' ');
        }
        lastLength = line.length();
        out.print(sb);
        out.flush();
    }

    /** Erases the bar so the report starts on a clean line. */
    public void finish() {
        if (!enabled || lastLength == 0) {
            return;
        }
        out.print("\r" + " ".repeat(lastLength) + "\r");
        out.flush();
        lastLength = 0;
    }

    static String render(double fraction, long elapsedNanos, double iops) {
        double f = Math.max(0, Math.min(1, fraction));
        int filled = (int) Math.round(f * WIDTH);
        return "[" + "#".repeat(filled) + "-".repeat(WIDTH - filled) + "] "
                + String.format(Locale.ROOT, "%3d%%  %.1fs  IOPS %s", (int) Math.floor(f * 100), elapsedNanos / 1e9,
                human(iops));
    }

    static String human(double v) {
        if (v >= 1e6) {
            return String.format(Locale.ROOT, "%.2fM", v / 1e6);
        }
        if (v >= 1e3) {
            return String.format(Locale.ROOT, "%.1fk", v / 1e3);
        }
        return String.format(Locale.ROOT, "%.0f", v);
    }
}
