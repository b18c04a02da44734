package io.vblk.tools.qmp;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;

/**
 * Home thread: the CLI's main thread, which is no context's home thread.
 *
 * <p>{@code vblk monitor SOCKET} (alias {@code vblk qmp}): a QMP client for people. Input is a
 * JSON object or {@code command key=value ...} (values that read as integers or true/false are
 * sent as such; {@code addr.type=unix} nests). Replies and events are printed pretty. With a
 * command after SOCKET it runs that one command and exits (1 if it failed): for scripts.
 * Interactive: {@code history} lists the commands given, {@code !N} repeats one, {@code quit-monitor}
 * or end of input leaves.
 */
@Command(name = "monitor", aliases = "qmp", mixinStandardHelpOptions = true,
        description = {"Talk QMP to a running vblk serve (or qemu-storage-daemon).", "",
                "  vblk monitor /run/vblk-qmp.sock query-block-exports",
                "  vblk monitor /run/vblk-qmp.sock block_resize node-name=disk0 size=2147483648", ""})
public final class MonitorCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Parameters(index = "0", paramLabel = "SOCKET", description = "the monitor's UNIX socket")
    Path socket;

    @Parameters(index = "1..*", arity = "0..*", paramLabel = "COMMAND", description = "one command to run (then exit)")
    List<String> command = new ArrayList<>();

    @Option(names = "--compact", description = "print replies on one line")
    boolean compact;

    @Override
    public Integer call() throws IOException {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        try (QmpClient c = QmpClient.connect(socket)) {
            c.negotiate();
            if (!command.isEmpty()) {
                JsonNode r = c.request(parse(String.join(" ", command)));
                print(out, c.takeEvents());
                out.println(format(r));
                out.flush();
                return r.has("error") ? 1 : 0;
            }
            JsonNode v = c.greeting().path("QMP").path("version");
            out.println("connected to " + socket + " (" + v.path("package").asText() + "); 'help' for the syntax");
            out.flush();
            BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
            List<String> history = new ArrayList<>();
            String line;
            while (prompt(out) && (line = in.readLine()) != null) {
                line = line.strip();
                if (line.isEmpty()) {
                    continue;
                }
                if (line.equals("quit-monitor") || line.equals("exit")) {
                    break;
                }
                if (line.equals("help")) {
                    out.println("  {\"execute\": ..., \"arguments\": {...}}   or   command key=value ...   (history, !N, exit)");
                    continue;
                }
                if (line.equals("history")) {
                    for (int i = 0; i < history.size(); i++) {
                        out.println("  " + (i + 1) + "  " + history.get(i));
                    }
                    continue;
                }
                if (line.matches("!\\d+")) {
                    int n = Integer.parseInt(line.substring(1));
                    if (n < 1 || n > history.size()) {
                        err.println("no command " + n + " in the history");
                        continue;
                    }
                    line = history.get(n - 1);
                    out.println(line);
                }
                history.add(line);
                JsonNode req;
                try {
                    req = parse(line);
                } catch (IllegalArgumentException e) {
                    err.println(e.getMessage());
                    err.flush();
                    continue;
                }
                JsonNode r = c.request(req);
                print(out, c.takeEvents());
                out.println(format(r));
                if (req.path("execute").asText().equals("quit")) {
                    break;
                }
            }
            out.flush();
            return 0;
        }
    }

    private static boolean prompt(PrintWriter out) {
        out.print("(qmp) ");
        out.flush();
        return true;
    }

    private void print(PrintWriter out, List<JsonNode> events) throws IOException {
        for (JsonNode e : events) {
            out.println(format(e));
        }
    }

    private String format(JsonNode n) throws IOException {
        return compact ? Qmp.JSON.writeValueAsString(n) : Qmp.JSON.writerWithDefaultPrettyPrinter().writeValueAsString(n);
    }

    /**
     * A request from one input line: JSON as is, or {@code name key=value ...}. Throws
     * {@link IllegalArgumentException} saying what it accepts.
     */
    static JsonNode parse(String line) {
        String s = line.strip();
        if (s.startsWith("{")) {
            try {
                return Qmp.JSON.readTree(s);
            } catch (JacksonException e) {
                throw new IllegalArgumentException("not valid JSON: " + e.getOriginalMessage());
            }
        }
        String[] words = s.split("\\s+");
        ObjectNode o = Qmp.JSON.createObjectNode();
        o.put("execute", words[0]);
        if (words.length > 1) {
            ObjectNode args = o.putObject("arguments");
            for (int i = 1; i < words.length; i++) {
                int eq = words[i].indexOf('=');
                if (eq <= 0) {
                    throw new IllegalArgumentException("'" + words[i] + "' is not key=value; accepts JSON or: command key=value ...");
                }
                String[] path = words[i].substring(0, eq).split("\\.");
                ObjectNode at = args;
                for (int p = 0; p < path.length - 1; p++) {
                    at = at.has(path[p]) && at.get(path[p]).isObject() ? (ObjectNode) at.get(path[p]) : at.putObject(path[p]);
                }
                String v = words[i].substring(eq + 1);
                String key = path[path.length - 1];
                if (v.matches("-?\\d{1,18}")) {
                    at.put(key, Long.parseLong(v));
                } else if (v.equals("true") || v.equals("false")) {
                    at.put(key, Boolean.parseBoolean(v));
                } else {
                    at.put(key, v);
                }
            }
        }
        return o;
    }
}
