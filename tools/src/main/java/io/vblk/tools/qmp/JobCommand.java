package io.vblk.tools.qmp;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * Home thread: the CLI's main thread, which is no context's home thread (a {@code --wait} reads
 * events on one virtual thread while this one waits for it, bounded by {@code --timeout}).
 *
 * <p>{@code vblk job SOCKET VERB [ARGS]}: the block jobs of a running {@code vblk serve} (or
 * qemu-storage-daemon) for scripts, over its QMP monitor with {@link QmpClient} — the verbs of
 * {@link JobCommands} with one line of output each and an exit status: 0 done, 1 the daemon
 * refused or the job failed (its message on stderr), 2 bad usage, 3 {@code --wait} timed out.
 */
@Command(name = "job", mixinStandardHelpOptions = true,
        description = {"Block jobs of a running vblk serve, over its QMP monitor (for scripts).", "",
                "  vblk job SOCK list                          ID TYPE STATUS CURRENT/TOTAL [ERROR], one per line",
                "  vblk job SOCK mirror SRC DST [--job-id ID] [--speed B] [--granularity B] [--wait]   --wait: until ready",
                "  vblk job SOCK backup SRC DST [--job-id ID] [--speed B] [--wait]                    --wait: until it ends",
                "  vblk job SOCK complete|cancel|pause|resume|finalize|dismiss ID [--wait]",
                "  vblk job SOCK set-speed ID BYTES_PER_SECOND", "",
                "Exit status: 0 done, 1 refused or the job failed, 2 bad usage, 3 --wait timed out.", ""})
public final class JobCommand implements Callable<Integer> {
    private static final Set<String> VERBS = Set.of("complete", "cancel", "pause", "resume", "finalize", "dismiss");

    @Spec
    CommandSpec spec;

    @Parameters(index = "0", paramLabel = "SOCKET", description = "the monitor's UNIX socket")
    Path socket;

    @Parameters(index = "1", paramLabel = "VERB", description = "list, mirror, backup, complete, cancel, pause, resume, "
            + "finalize, dismiss, set-speed")
    String verb;

    @Parameters(index = "2..*", arity = "0..*", paramLabel = "ARG")
    List<String> args = new ArrayList<>();

    @Option(names = "--job-id", description = "the new job's id (mirror, backup; default: the source node)")
    String jobId;

    @Option(names = "--speed", description = "bytes per second, 0 for no limit (mirror, backup)")
    Long speed;

    @Option(names = "--granularity", description = "the mirror's chunk size in bytes")
    Long granularity;

    @Option(names = "--wait", description = "mirror: until ready; backup, complete, cancel: until the job ends")
    boolean await;

    @Option(names = "--timeout", defaultValue = "600", description = "seconds --wait waits (default 600)")
    long timeoutSeconds;

    @Override
    public Integer call() throws Exception {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        String usage = usageError();
        if (usage != null) {
            err.println("vblk job: " + usage + " (see vblk job --help)");
            err.flush();
            return 2;
        }
        try (QmpClient c = QmpClient.connect(socket).negotiate()) {
            if (verb.equals("list")) {
                JsonNode r = c.execute("query-jobs", null);
                if (r.has("error")) {
                    return refused(err, r);
                }
                for (JsonNode j : r.get("return")) {
                    out.println(j.path("id").asText() + " " + j.path("type").asText() + " " + j.path("status").asText() + " "
                            + j.path("current-progress").asLong() + "/" + j.path("total-progress").asLong()
                            + (j.has("error") ? " " + j.get("error").asText() : ""));
                }
                out.flush();
                return 0;
            }
            String id;
            JsonNode r;
            ObjectNode a = Qmp.JSON.createObjectNode();
            switch (verb) {
                case "mirror", "backup" -> {
                    id = jobId != null ? jobId : args.get(0);
                    a.put("job-id", id);
                    a.put("device", args.get(0));
                    a.put("target", args.get(1));
                    a.put("sync", "full");
                    if (speed != null) {
                        a.put("speed", speed);
                    }
                    if (granularity != null) {
                        a.put("granularity", granularity);
                    }
                    r = c.execute("blockdev-" + verb, a);
                }
                case "set-speed" -> {
                    id = args.get(0);
                    a.put("device", id);
                    a.put("speed", Long.parseLong(args.get(1)));
                    r = c.execute("block-job-set-speed", a);
                }
                default -> {
                    id = args.get(0);
                    a.put("id", id);
                    r = c.execute("job-" + verb, a);
                }
            }
            if (r.has("error")) {
                return refused(err, r);
            }
            if (!await || !Set.of("mirror", "backup", "complete", "cancel").contains(verb)) {
                out.println(id + " " + verb + ": ok");
                out.flush();
                return 0;
            }
            return awaitEnd(c, id, out, err);
        }
    }

    /** Waits for the event that ends {@code --wait} (bounded by {@code --timeout}); prints and returns the status. */
    private int awaitEnd(QmpClient c, String id, PrintWriter out, PrintWriter err) throws Exception {
        boolean untilReady = verb.equals("mirror");
        CompletableFuture<JsonNode> ev = new CompletableFuture<>();
        Thread reader = Thread.ofVirtual().name("vblk job --wait").start(() -> {
            try {
                List<JsonNode> kept = new ArrayList<>(c.takeEvents()); // those that came with the reply first
                while (true) {
                    JsonNode e = kept.isEmpty() ? c.readMessage() : kept.removeFirst();
                    String name = e.path("event").asText();
                    if (!e.path("data").path("device").asText().equals(id)) {
                        continue;
                    }
                    if (name.equals("BLOCK_JOB_COMPLETED") || name.equals("BLOCK_JOB_CANCELLED")
                            || (untilReady && name.equals("BLOCK_JOB_READY"))) {
                        ev.complete(e);
                        return;
                    }
                }
            } catch (IOException | RuntimeException e) {
                ev.completeExceptionally(e);
            }
        });
        JsonNode e;
        try {
            e = ev.get(timeoutSeconds, TimeUnit.SECONDS);
        } catch (TimeoutException t) {
            c.close(); // ends the reader's blocking read
            reader.join(TimeUnit.SECONDS.toMillis(10));
            err.println("vblk job: " + id + ": no end of " + verb + " within " + timeoutSeconds + " s");
            err.flush();
            return 3;
        } catch (ExecutionException x) {
            err.println("vblk job: " + id + ": " + x.getCause().getMessage());
            err.flush();
            return 1;
        }
        String name = e.get("event").asText();
        JsonNode d = e.get("data");
        if (name.equals("BLOCK_JOB_COMPLETED") && d.has("error")) {
            err.println("vblk job: " + id + ": failed: " + d.get("error").asText());
            err.flush();
            return 1;
        }
        String what = switch (name) {
            case "BLOCK_JOB_READY" -> "ready";
            case "BLOCK_JOB_CANCELLED" -> "cancelled";
            default -> "completed";
        };
        out.println(id + " " + what + " " + d.path("offset").asLong() + "/" + d.path("len").asLong());
        out.flush();
        return name.equals("BLOCK_JOB_CANCELLED") && !verb.equals("cancel") ? 1 : 0;
    }

    private static int refused(PrintWriter err, JsonNode r) {
        err.println("vblk job: " + r.path("error").path("desc").asText(r.toString()));
        err.flush();
        return 1;
    }

    /** What is wrong with the verb and its arguments, or null. */
    private String usageError() {
        int want = switch (verb) {
            case "list" -> 0;
            case "mirror", "backup", "set-speed" -> 2;
            default -> VERBS.contains(verb) ? 1 : -1;
        };
        if (want < 0) {
            return "unknown verb '" + verb + "'";
        }
        if (args.size() != want) {
            return verb + " takes " + want + " argument" + (want == 1 ? "" : "s") + ", got " + args.size();
        }
        if (verb.equals("set-speed") && !args.get(1).matches("\\d{1,18}")) {
            return "set-speed: '" + args.get(1) + "' is not a number of bytes per second";
        }
        if (granularity != null && !verb.equals("mirror")) {
            return "--granularity is for mirror only";
        }
        if (timeoutSeconds <= 0) {
            return "--timeout must be positive";
        }
        return null;
    }
}
