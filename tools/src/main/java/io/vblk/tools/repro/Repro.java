package io.vblk.tools.repro;

/**
 * Any thread that is no context's home thread (the CLI's main thread, a test).
 *
 * <p>One seed hazard as a runnable scenario: with the guard off it must make the hazard happen and
 * detect it within a bounded time (never hang or crash the JVM); with the guard on the same
 * workload must run clean.
 */
public interface Repro {
    /** The name used on the command line, e.g. {@code lost-wakeup}. */
    String hazard();

    /** One line for {@code vblk repro --help}. */
    String description();

    /** Runs the scenario; must return within a bound derived from {@code options}. */
    ReproResult run(boolean guardOn, ReproOptions options) throws Exception;
}
