package io.vblk.tools.serve;

/**
 * Any thread; the handler runs on the JVM's signal dispatcher thread.
 *
 * <p>SIGTERM, SIGINT and SIGHUP handling for the daemon through {@code sun.misc.Signal} (module
 * jdk.unsupported): the handler only releases the main thread, which then shuts down in order and
 * returns exit status 0. A JVM shutdown hook could not: the JVM reports 143 for a SIGTERM exit
 * whatever the hook does. A second signal while shutting down is ignored; the bound on the
 * shutdown keeps it finite.
 */
final class Signals {
    private Signals() {
    }

    /**
     * SIGUSR2: resume every device stopped by an I/O error (werror / rerror = stop), the daemon's
     * stand-in for QMP {@code cont}. The handler only hands over to the devices' control context.
     */
    static void onResume(Runnable r) {
        sun.misc.Signal.handle(new sun.misc.Signal("USR2"), s -> r.run());
    }

    static void onTerminate(Runnable r) {
        for (String name : new String[]{"TERM", "INT", "HUP"}) {
            sun.misc.Signal.handle(new sun.misc.Signal(name), s -> r.run());
        }
    }
}
