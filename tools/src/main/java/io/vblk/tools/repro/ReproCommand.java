package io.vblk.tools.repro;

import io.vblk.tools.version.VblkVersion;
import io.vblk.aio.engine.AioMode;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.time.Duration;
import java.util.List;
import java.util.concurrent.Callable;

/**
 * Home thread: the CLI's main thread.
 *
 * <p>{@code vblk repro <hazard>|all --guard=on|off}: runs a seed hazard's scenario and prints the one
 * result line; exit 0 when the result is the expected one (reproduced with the guard off, held
 * with it on), 1 otherwise.
 *
 * <p>Runs on the CLI's main thread.
 */
@Command(name = "repro", mixinStandardHelpOptions = true, versionProvider = VblkVersion.class,
        description = {"Reproduce a seed hazard with its guard off, or show it held with the guard on.",
                "Hazards: lost-wakeup, cross-thread-completion, nested-wait-deadlock, submit-recursion, drain-leak;",
                "'all' runs each with the guard off and then on."})
public final class ReproCommand implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "HAZARD", description = "a hazard name, or 'all'")
    String hazard;

    @Option(names = "--guard", paramLabel = "on|off", description = "guard state (default: on)")
    String guard = "on";

    @Option(names = "--iterations", description = "upper bound on iterations (default: ${DEFAULT-VALUE})")
    int iterations = ReproOptions.defaults().iterations();

    @Option(names = "--time-limit", description = "wall-clock bound, e.g. 30s (default: 30s)")
    String timeLimit = "30s";

    @Option(names = "--hang-after", description = "no progress for this long counts as a hang (default: 2s)")
    String hangAfter = "2s";

    @Option(names = "--seed", description = "random seed (default: ${DEFAULT-VALUE})")
    long seed = 1;

    @Option(names = "--aio", paramLabel = "native|io_uring",
            description = "engine of submit-recursion's file scenario and of cross-thread-completion (default: native)")
    String aio = "native";

    @Option(names = "--mode", paramLabel = "loop|section|mirror|vhost-user|nbd-qcow2|rbd",
            description = "the scenario: submit-recursion's closed I/O loop (loop) or a mirror job (mirror);"
                    + " drain-leak's held drained section (section) or the real mirror pivot (mirror);"
                    + " cross-thread-completion on the rbd driver (rbd: needs --image and a Ceph cluster);"
                    + " nested-wait-deadlock's stand-in open of a vhost-user export (vhost-user) or the seed's"
                    + " setting, a qcow2 node backed by the daemon's own NBD export (nbd-qcow2)."
                    + " Default: loop, section, the file engine and vhost-user")
    String mode = "";

    @Option(names = "--image", paramLabel = "POOL/IMAGE",
            description = "with --mode rbd: an existing RBD image of at least 128 KiB (read only, never written)")
    String image;

    @Option(names = "--conf", paramLabel = "PATH",
            description = "with --mode rbd: the cluster's ceph.conf (default: librados' search, e.g. /etc/ceph/ceph.conf)")
    String conf;

    @Option(names = "--user", paramLabel = "NAME", description = "with --mode rbd: connect as client.NAME (default: admin)")
    String user;

    @Override
    public Integer call() throws Exception {
        ReproOptions opts = new ReproOptions(positive("--iterations", iterations),
                Durations.parse("--time-limit", timeLimit), Durations.parse("--hang-after", hangAfter), seed);
        List<Repro> chosen;
        if (hazard.equals("all")) {
            chosen = Repros.all();
        } else {
            Repro r = Repros.byName(hazard);
            if (r == null) {
                throw new picocli.CommandLine.ParameterException(new picocli.CommandLine(this),
                        "unknown hazard '" + hazard + "'; choose one of " + names() + " or all");
            }
            chosen = List.of(r);
        }
        checkMode();
        SubmitRecursionRepro recursion = submitRecursion();
        Repro crossThread = "rbd".equals(mode) ? rbdCrossThread() : new CrossThreadCompletionRepro(recursion.aio());
        DrainLeakRepro drainLeak = new DrainLeakRepro(drainLeakMode());
        NestedWaitDeadlockRepro nestedWait = new NestedWaitDeadlockRepro(mode.equals("nbd-qcow2")
                ? NestedWaitDeadlockRepro.Mode.NBD_QCOW2 : NestedWaitDeadlockRepro.Mode.VHOST_USER);
        chosen = chosen.stream().map(r -> r instanceof SubmitRecursionRepro ? recursion
                : r instanceof CrossThreadCompletionRepro ? crossThread
                : r instanceof DrainLeakRepro ? drainLeak
                : r instanceof NestedWaitDeadlockRepro ? nestedWait : r).toList();
        boolean allExpected = true;
        for (Repro r : chosen) {
            boolean[] guards = hazard.equals("all") ? new boolean[] {false, true} : new boolean[] {parseGuard()};
            for (boolean g : guards) {
                ReproResult res;
                try {
                    res = r.run(g, opts);
                } catch (Exception e) {
                    // Not the hazard's doing (a missing file system feature, a refused syscall...).
                    res = ReproResult.inconclusive(r.hazard(), g, 0, "the run failed: " + e);
                }
                System.out.println(res.line());
                allExpected &= res.expected();
            }
        }
        return allExpected ? 0 : 1;
    }

    private SubmitRecursionRepro submitRecursion() {
        try {
            return new SubmitRecursionRepro(AioMode.parse(aio), mode.equals("mirror"));
        } catch (IllegalArgumentException e) {
            throw new picocli.CommandLine.ParameterException(new picocli.CommandLine(this),
                    "--aio accepts native or io_uring, got '" + aio + "'");
        }
    }

    private void checkMode() {
        if (!List.of("", "loop", "section", "mirror", "vhost-user", "nbd-qcow2", "rbd").contains(mode)) {
            throw new picocli.CommandLine.ParameterException(new picocli.CommandLine(this),
                    "--mode accepts loop, section, mirror, vhost-user, nbd-qcow2 or rbd, got '" + mode + "'");
        }
        if (mode.equals("rbd") && !hazard.equals("cross-thread-completion") && !hazard.equals("all")) {
            throw new picocli.CommandLine.ParameterException(new picocli.CommandLine(this),
                    "--mode rbd is cross-thread-completion's; " + hazard + " does not take it");
        }
    }

    private DrainLeakRepro.Mode drainLeakMode() {
        return mode.equals("mirror") ? DrainLeakRepro.Mode.MIRROR : DrainLeakRepro.Mode.SECTION;
    }

    /** {@code --mode rbd}: seed 002 on the rbd driver, on {@code --image POOL/IMAGE}. */
    private Repro rbdCrossThread() {
        if (image == null || !image.matches("[^/@]+/[^/@]+")) {
            throw new picocli.CommandLine.ParameterException(new picocli.CommandLine(this),
                    "--mode rbd needs --image POOL/IMAGE (an existing image), got " + (image == null ? "none" : "'" + image + "'"));
        }
        int slash = image.indexOf('/');
        return new CrossThreadCompletionRbdRepro(new io.vblk.drivers.rbd.RbdDriver.Options(image.substring(0, slash),
                image.substring(slash + 1), null, null, conf, user, null, true));
    }

    private boolean parseGuard() {
        return switch (guard) {
            case "on" -> true;
            case "off" -> false;
            default -> throw new picocli.CommandLine.ParameterException(new picocli.CommandLine(this),
                    "--guard accepts on or off, got '" + guard + "'");
        };
    }

    private int positive(String opt, int v) {
        if (v <= 0) {
            throw new picocli.CommandLine.ParameterException(new picocli.CommandLine(this),
                    opt + " must be a positive integer, got " + v);
        }
        return v;
    }

    private static String names() {
        return String.join(", ", Repros.all().stream().map(Repro::hazard).toList());
    }

    /** Durations written as 500ms, 2s, 1m. */
    static final class Durations {
        private Durations() {
        }

        static Duration parse(String option, String s) {
            try {
                if (s.endsWith("ms")) {
                    return Duration.ofMillis(Long.parseLong(s.substring(0, s.length() - 2)));
                }
                if (s.endsWith("s")) {
                    return Duration.ofSeconds(Long.parseLong(s.substring(0, s.length() - 1)));
                }
                if (s.endsWith("m")) {
                    return Duration.ofMinutes(Long.parseLong(s.substring(0, s.length() - 1)));
                }
            } catch (NumberFormatException e) {
                // fall through to the error below
            }
            throw new IllegalArgumentException(option + " accepts a duration like 500ms, 2s or 1m, got '" + s + "'");
        }
    }
}
