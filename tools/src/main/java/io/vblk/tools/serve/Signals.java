package io.vblk.tools.serve;

import java.io.PrintStream;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.IntConsumer;

/**
 * Any thread; {@link #signalled} runs on the JVM's signal dispatcher thread.
 *
 * <p>SIGTERM, SIGINT and SIGHUP handling for the daemon through {@code sun.misc.Signal} (module
 * jdk.unsupported). The first signal only releases the main thread, which then shuts down in order
 * and returns exit status 0 (a JVM shutdown hook could not: the JVM reports 143 for a SIGTERM exit
 * whatever the hook does). A second signal while that shutdown runs ends the process at once,
 * with a line saying so and the shell's status for death by that signal (128 + its number).
 */
final class Signals {
    private static final String[] NAMES = {"TERM", "INT", "HUP"};

    private final Runnable onFirst;
    private final IntConsumer exitNow;
    private final PrintStream err;
    private final AtomicInteger received = new AtomicInteger();

    Signals(Runnable onFirst, IntConsumer exitNow, PrintStream err) {
        this.onFirst = onFirst;
        this.exitNow = exitNow;
        this.err = err;
    }

    /**
     * SIGUSR2: resume every device stopped by an I/O error (werror / rerror = stop), the daemon's
     * stand-in for QMP {@code cont}. The handler only hands over to the devices' control context.
     */
    static void onResume(Runnable r) {
        sun.misc.Signal.handle(new sun.misc.Signal("USR2"), s -> r.run());
    }

    /** Installs the handlers for the process: {@code onFirst} at the first signal, an immediate halt at the second. */
    static void onTerminate(Runnable onFirst) {
        Signals s = new Signals(onFirst, code -> Runtime.getRuntime().halt(code), System.err);
        for (String name : NAMES) {
            sun.misc.Signal.handle(new sun.misc.Signal(name), sig -> s.signalled(sig.getName(), sig.getNumber()));
        }
    }

    /** One signal arrived: the first starts the orderly shutdown, any later one exits at once. */
    void signalled(String name, int number) {
        if (received.getAndIncrement() == 0) {
            err.println("vblk serve: SIG" + name + ": shutting down (a second signal exits at once)");
            err.flush();
            onFirst.run();
            return;
        }
        err.println("vblk serve: second signal (SIG" + name + ") during shutdown: exiting at once, without"
                + " finishing in-flight requests or flushing");
        err.flush();
        exitNow.accept(128 + number);
    }
}
