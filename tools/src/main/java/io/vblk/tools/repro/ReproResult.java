package io.vblk.tools.repro;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Any thread: immutable.
 *
 * <p>What a reproducer saw, printed as the one final line
 * {@code hazard=<name> guard=<on|off> result=<reproduced|held|missed|inconclusive> iterations=N detail=... [k=v ...]}.
 *
 * @param outcome    REPRODUCED: the hazard happened; HELD: it did not happen with the guard on;
 *                   MISSED: the guard was off and the hazard did not show within the bounds;
 *                   INCONCLUSIVE: the run failed for a reason that is not the hazard (an I/O error,
 *                   the workload timing out), so it shows neither; never the expected result
 * @param detail     one human sentence, spaces replaced by '_' when printed
 * @param extra      further key=value facts (e.g. max_depth), printed in insertion order
 */
public record ReproResult(String hazard, boolean guardOn, Outcome outcome, long iterations,
                          String detail, Map<String, String> extra) {

    public enum Outcome { REPRODUCED, HELD, MISSED, INCONCLUSIVE }

    public ReproResult {
        extra = new LinkedHashMap<>(extra);
    }

    public static ReproResult of(String hazard, boolean guardOn, boolean hazardSeen, long iterations,
                                 String detail) {
        Outcome o = hazardSeen ? Outcome.REPRODUCED : (guardOn ? Outcome.HELD : Outcome.MISSED);
        return new ReproResult(hazard, guardOn, o, iterations, detail, Map.of());
    }

    /** A run that failed for a reason that is not the hazard: it shows neither outcome. */
    public static ReproResult inconclusive(String hazard, boolean guardOn, long iterations, String detail) {
        return new ReproResult(hazard, guardOn, Outcome.INCONCLUSIVE, iterations, detail, Map.of());
    }

    public ReproResult with(String key, Object value) {
        Map<String, String> m = new LinkedHashMap<>(extra);
        m.put(key, String.valueOf(value));
        return new ReproResult(hazard, guardOn, outcome, iterations, detail, m);
    }

    /** Reproduced with the guard off, held with it on. */
    public boolean expected() {
        return guardOn ? outcome == Outcome.HELD : outcome == Outcome.REPRODUCED;
    }

    public String line() {
        StringBuilder sb = new StringBuilder()
                .append("hazard=").append(hazard)
                .append(" guard=").append(guardOn ? "on" : "off")
                .append(" result=").append(outcome.name().toLowerCase())
                .append(" iterations=").append(iterations);
        extra.forEach((k, v) -> sb.append(' ').append(k).append('=').append(v.replace(' ', '_')));
        sb.append(" detail=").append(detail.replace(' ', '_'));
        return sb.toString();
    }
}
