package io.vblk.tools.repro;

import java.util.ArrayList;
import java.util.List;

/**
 * Any thread: stateless.
 *
 * <p>Every seed hazard's reproducer, in seed order.
 */
public final class Repros {
    private Repros() {
    }

    public static List<Repro> all() {
        List<Repro> l = new ArrayList<>();
        l.add(new SubmitRecursionRepro());
        l.add(new LostWakeupRepro());
        l.add(new CrossThreadCompletionRepro());
        l.add(new DrainLeakRepro());
        l.add(new NestedWaitDeadlockRepro());
        return l;
    }

    public static Repro byName(String hazard) {
        for (Repro r : all()) {
            if (r.hazard().equals(hazard)) {
                return r;
            }
        }
        return null;
    }
}
