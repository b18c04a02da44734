package io.vblk.tools.qmp;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.vblk.drivers.node.BlockNode;
import io.vblk.tools.qmp.Qmp.Args;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;

/**
 * Home thread: the main loop. No locking.
 *
 * <p>The run state (QEMU's {@code RunState}) behind stop / cont / query-status. {@code stop}
 * begins a drained section of every node — every device stops taking guest requests and the ones
 * in flight finish — and answers once the nodes are quiet (a future completed by the IoThreads'
 * hand-overs, never a wait on this loop); {@code cont} ends those sections (the queues re-read
 * their rings, so no kick is lost) and then runs every registered resume hook (an error policy's
 * device resume, {@code werror=stop}). STOP and RESUME are emitted as QEMU emits them.
 */
final class RunState {
    private final DaemonGraph graph;
    private final QmpServer server;
    private final List<Runnable> resumeHooks = new ArrayList<>();
    /** The nodes this state drained, so cont ends exactly those sections. */
    private final List<BlockNode> drained = new ArrayList<>();
    private boolean running = true;
    /** Why it is not running: "paused" (stop) or "io-error" (an error policy stopped a device). */
    private String stoppedStatus = "paused";

    RunState(DaemonGraph graph, QmpServer server) {
        this.graph = graph;
        this.server = server;
    }

    void addResumeHook(Runnable hook) {
        resumeHooks.add(hook);
    }

    boolean running() {
        return running;
    }

    CompletableFuture<JsonNode> query(Args a) {
        ObjectNode o = Qmp.JSON.createObjectNode();
        o.put("status", running ? "running" : stoppedStatus);
        o.put("singlestep", false);
        o.put("running", running);
        return QmpCommands.done(a, o);
    }

    /**
     * An error policy stopped a device (werror / rerror = stop): as QEMU's vm_stop(RUN_STATE_IO_ERROR),
     * the run state becomes io-error and STOP follows the BLOCK_IO_ERROR event; {@code cont} resumes.
     */
    void ioErrorStop() {
        if (!running) {
            return;
        }
        running = false;
        stoppedStatus = "io-error";
        server.emit("STOP", null);
    }

    CompletableFuture<JsonNode> stop(Args a) {
        a.finish();
        if (!running) {
            return CompletableFuture.completedFuture(Qmp.JSON.createObjectNode());
        }
        running = false;
        stoppedStatus = "paused";
        List<CompletableFuture<Void>> quiet = new ArrayList<>();
        for (BlockNode n : graph.nodes().values()) {
            drained.add(n);
            quiet.add(n.drainedBegin());
        }
        return CompletableFuture.allOf(quiet.toArray(new CompletableFuture<?>[0])).thenApply(v -> {
            server.emit("STOP", null);
            return Qmp.JSON.createObjectNode();
        });
    }

    CompletableFuture<JsonNode> cont(Args a) {
        a.finish();
        if (running) {
            return CompletableFuture.completedFuture(Qmp.JSON.createObjectNode());
        }
        running = true;
        for (BlockNode n : drained) {
            if (graph.nodes().get(n.name()) == n) {
                n.drainedEnd();
            }
        }
        drained.clear();
        for (Runnable r : List.copyOf(resumeHooks)) {
            r.run();
        }
        server.emit("RESUME", null);
        return CompletableFuture.completedFuture(Qmp.JSON.createObjectNode());
    }
}
