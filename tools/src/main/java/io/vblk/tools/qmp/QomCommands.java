package io.vblk.tools.qmp;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.LongNode;
import io.vblk.aio.AioContext;
import io.vblk.aio.AioOptions;
import io.vblk.aio.IoThread;
import io.vblk.tools.qmp.Qmp.Args;

import java.util.concurrent.CompletableFuture;
import java.util.function.BiConsumer;

/**
 * Home thread: the main loop.
 *
 * <p>{@code qom-get} / {@code qom-set} on iothread objects, for the properties QEMU lets a running
 * iothread change: {@code poll-max-ns}, {@code poll-grow}, {@code poll-shrink} and
 * {@code aio-max-batch}. A path is {@code /objects/ID} or the bare id (QEMU's partial path). A set
 * hands the new options to the iothread's own context and answers once it took them; the main
 * loop never waits.
 */
final class QomCommands {
    private static final String[] PROPERTIES = {"poll-max-ns", "poll-grow", "poll-shrink", "aio-max-batch"};

    private final QmpCommands cmds;

    QomCommands(QmpCommands cmds) {
        this.cmds = cmds;
    }

    void register(BiConsumer<String, QmpCommands.Handler> add) {
        add.accept("qom-get", this::get);
        add.accept("qom-set", this::set);
    }

    private IoThread resolve(String path) {
        String id = path.startsWith("/objects/") ? path.substring("/objects/".length()) : path;
        IoThread t = cmds.graph.iothreads().get(id);
        if (t == null) {
            throw new QmpError(QmpError.DEVICE_NOT_FOUND, "Device '" + path + "' not found");
        }
        return t;
    }

    private static void checkProperty(String property) {
        for (String p : PROPERTIES) {
            if (p.equals(property)) {
                return;
            }
        }
        throw QmpError.generic("Property 'iothread." + property + "' not found");
    }

    private CompletableFuture<JsonNode> get(Args a) {
        IoThread t = resolve(a.string("path"));
        String property = a.string("property");
        checkProperty(property);
        AioOptions o = t.ctx().options();
        long v = switch (property) {
            case "poll-max-ns" -> o.pollMaxNs();
            case "poll-grow" -> o.pollGrow();
            case "poll-shrink" -> o.pollShrink();
            default -> o.aioMaxBatch();
        };
        return QmpCommands.done(a, LongNode.valueOf(v));
    }

    private CompletableFuture<JsonNode> set(Args a) {
        IoThread t = resolve(a.string("path"));
        String property = a.string("property");
        checkProperty(property);
        JsonNode value = a.require("value");
        a.finish();
        if (!value.isIntegralNumber()) {
            throw QmpError.generic("Invalid parameter type for 'value', expected: integer");
        }
        long v = value.asLong();
        AioOptions o = t.ctx().options();
        AioOptions n;
        try {
            n = switch (property) {
                case "poll-max-ns" -> new AioOptions(v, o.pollGrow(), o.pollShrink(), o.aioMaxBatch());
                case "poll-grow" -> new AioOptions(o.pollMaxNs(), v, o.pollShrink(), o.aioMaxBatch());
                case "poll-shrink" -> new AioOptions(o.pollMaxNs(), o.pollGrow(), v, o.aioMaxBatch());
                default -> {
                    if (v < 0 || v > Integer.MAX_VALUE) {
                        throw new IllegalArgumentException("aio-max-batch must be 0..1024, got " + v);
                    }
                    yield o.withAioMaxBatch((int) v);
                }
            };
        } catch (IllegalArgumentException e) {
            throw QmpError.generic(e.getMessage());
        }
        AioContext main = cmds.main();
        CompletableFuture<JsonNode> f = new CompletableFuture<>();
        t.ctx().runOn(() -> {
            t.ctx().setOptions(n);
            main.runOn(() -> f.complete(Qmp.JSON.createObjectNode()));
        });
        return f;
    }
}
