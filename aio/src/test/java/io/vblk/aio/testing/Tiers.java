package io.vblk.aio.testing;

import java.util.List;

/**
 * The test tiers: the JUnit tags of tests that a developer may leave out with {@code -Pfast}.
 * A plain {@code ./mvn25 -B verify} (and CI) runs every tier; {@code -Dgroups=TAG} runs one.
 * Write the tag as a literal, {@code @Tag("real")}; {@code TiersTest} checks that every tag in
 * the test sources is one of these and that the fast profile leaves out all of them.
 */
public final class Tiers {
    /** Boots a real VM (QEMU under TCG): minutes. */
    public static final String VM = "vm";
    /** Drives a real daemon: qemu-storage-daemon, Prometheus. */
    public static final String REAL = "real";
    /** Runs for minutes on purpose: the jcstress run, stress tests. */
    public static final String STRESS = "stress";
    /** The older name of {@link #STRESS}, still left out by {@code -Pfast}. */
    public static final String SLOW = "slow";

    public static final List<String> ALL = List.of(VM, REAL, STRESS, SLOW);

    private Tiers() {
    }
}
