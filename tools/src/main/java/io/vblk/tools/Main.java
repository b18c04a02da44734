package io.vblk.tools;

import io.vblk.tools.version.VblkVersion;
import io.vblk.tools.bench.BenchCommand;
import io.vblk.tools.qmp.JobCommand;
import io.vblk.tools.qmp.MonitorCommand;
import io.vblk.tools.repro.ReproCommand;
import io.vblk.tools.serve.ServeCommand;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/**
 * Home thread: the CLI's main thread, which is no context's home thread.
 *
 * <p>The {@code vblk} command: one entry point with sub-commands.
 *
 * <p>Runs on the CLI's main thread, which is no context's home thread.
 */
@Command(name = "vblk", mixinStandardHelpOptions = true, versionProvider = VblkVersion.class,
        description = "A virtio-blk disk controller emulator and vhost-user-blk backend.",
        subcommands = {ServeCommand.class, BenchCommand.class, ReproCommand.class, DemoCommand.class,
                MonitorCommand.class, JobCommand.class})
public final class Main implements Runnable {
    public static void main(String[] args) {
        System.exit(run(args));
    }

    /** Runs the command line and returns its exit code (tests call this). */
    public static int run(String... args) {
        CommandLine cl = new CommandLine(new Main());
        cl.setParameterExceptionHandler((ex, args1) -> {
            // A bad option: one line naming it and where to read more, not the whole usage.
            CommandLine cmd = ex.getCommandLine();
            String name = cmd.getCommandSpec().qualifiedName();
            cmd.getErr().println(name + ": " + ex.getMessage() + " (see " + name + " --help)");
            return cmd.getCommandSpec().exitCodeOnInvalidInput();
        });
        cl.setExecutionExceptionHandler((ex, cmd, parsed) -> {
            if (ex instanceof IllegalArgumentException) {
                // Bad input named by whoever checked it: one line, no stack trace.
                cmd.getErr().println("vblk: " + ex.getMessage());
                return 2;
            }
            throw ex;
        });
        return cl.execute(args);
    }

    @Override
    public void run() {
        new CommandLine(this).usage(System.out);
    }
}
