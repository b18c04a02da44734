package io.vblk.tools.qmp;

import com.fasterxml.jackson.databind.JsonNode;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Any thread (test code).
 *
 * <p>The scripted QMP session every server must answer alike: run against vblk and against
 * qemu-storage-daemon, each started with node n0 (null-co, 64 MiB) and iothread io0, and its
 * replies' shapes compared line by line. Each line is sent as is; {@code DIR} is replaced by the
 * server's directory. A line starting with {@code event } waits for that event instead.
 */
final class QmpScript {
    static final List<String> LINES = List.of(
            "{\"execute\": \"query-version\"}",
            "{\"execute\": \"qmp_capabilities\", \"id\": 1}",
            "{\"execute\": \"qmp_capabilities\"}",
            "{\"execute\": \"no-such-command\", \"id\": \"x\"}",
            "[1]",
            "{\"execute\": 1}",
            "{\"foo\": 1}",
            "{\"execute\": \"query-version\", \"arguments\": []}",
            "{\"execute\": \"query-version\", \"arguments\": {\"x\": 1}}",
            "{\"execute\": \"query-version\", \"id\": [1, {\"a\": 2}]}",
            "{\"execute\": \"query-commands\"}",
            "{\"execute\": \"blockdev-add\", \"arguments\": {\"driver\": \"null-co\", \"node-name\": \"n1\", \"size\": 1048576}}",
            "{\"execute\": \"blockdev-add\", \"arguments\": {\"driver\": \"null-co\", \"node-name\": \"n1\", \"size\": 1048576}}",
            "{\"execute\": \"blockdev-add\", \"arguments\": {\"driver\": \"null-co\", \"node-name\": \"n2\", \"size\": \"big\"}}",
            "{\"execute\": \"blockdev-add\", \"arguments\": {\"node-name\": \"n2\"}}",
            "{\"execute\": \"blockdev-add\", \"arguments\": {\"driver\": \"file\", \"node-name\": \"f0\", \"filename\": \"DIR/img.raw\"}}",
            "{\"execute\": \"query-named-block-nodes\"}",
            "{\"execute\": \"query-block\"}",
            "{\"execute\": \"query-blockstats\"}",
            "{\"execute\": \"query-blockstats\", \"arguments\": {\"query-nodes\": true}}",
            "{\"execute\": \"object-add\", \"arguments\": {\"qom-type\": \"iothread\", \"id\": \"io1\", \"poll-max-ns\": 0}}",
            "{\"execute\": \"object-add\", \"arguments\": {\"qom-type\": \"iothread\", \"id\": \"io1\"}}",
            // Secret objects (the rbd driver's key-secret): add, duplicate, bad arguments, an id an iothread has, delete.
            "{\"execute\": \"object-add\", \"arguments\": {\"qom-type\": \"secret\", \"id\": \"sec0\", \"data\": \"QUJD\", \"format\": \"base64\"}}",
            "{\"execute\": \"object-add\", \"arguments\": {\"qom-type\": \"secret\", \"id\": \"sec0\", \"data\": \"x\"}}",
            "{\"execute\": \"object-add\", \"arguments\": {\"qom-type\": \"secret\", \"id\": \"sec1\", \"data\": \"x\", \"file\": \"DIR/k\"}}",
            "{\"execute\": \"object-add\", \"arguments\": {\"qom-type\": \"secret\", \"id\": \"sec1\", \"file\": \"DIR/no-such-key\"}}",
            "{\"execute\": \"object-add\", \"arguments\": {\"qom-type\": \"secret\", \"id\": \"io1\", \"data\": \"x\"}}",
            "{\"execute\": \"object-del\", \"arguments\": {\"id\": \"sec0\"}}",
            "{\"execute\": \"object-del\", \"arguments\": {\"id\": \"sec0\"}}",
            "{\"execute\": \"block-export-add\", \"arguments\": {\"type\": \"vhost-user-blk\", \"id\": \"e1\", \"node-name\": \"n1\","
                    + " \"addr\": {\"type\": \"unix\", \"path\": \"DIR/e1.sock\"}, \"writable\": true}}",
            "{\"execute\": \"block-export-add\", \"arguments\": {\"type\": \"vhost-user-blk\", \"id\": \"e1\", \"node-name\": \"n1\","
                    + " \"addr\": {\"type\": \"unix\", \"path\": \"DIR/e9.sock\"}}}",
            "{\"execute\": \"block-export-add\", \"arguments\": {\"type\": \"vhost-user-blk\", \"id\": \"e2\", \"node-name\": \"zz\","
                    + " \"addr\": {\"type\": \"unix\", \"path\": \"DIR/e2.sock\"}}}",
            "{\"execute\": \"query-block-exports\"}",
            "{\"execute\": \"blockdev-del\", \"arguments\": {\"node-name\": \"n1\"}}",
            "{\"execute\": \"blockdev-del\", \"arguments\": {\"node-name\": \"zz\"}}",
            "{\"execute\": \"blockdev-del\"}",
            // A file node both servers resize (vblk's null node takes resizes too; QEMU's null-co refuses them).
            "{\"execute\": \"block_resize\", \"arguments\": {\"node-name\": \"f0\", \"size\": 2097152}}",
            "{\"execute\": \"block_resize\", \"arguments\": {\"node-name\": \"n1\", \"size\": -1}}",
            "{\"execute\": \"block_resize\", \"arguments\": {\"node-name\": \"zz\", \"size\": 1}}",
            "{\"execute\": \"block_resize\", \"arguments\": {\"node-name\": \"n1\", \"size\": \"1G\"}}",
            "{\"execute\": \"block-export-del\", \"arguments\": {\"id\": 1}}",
            "{\"execute\": \"block-export-del\", \"arguments\": {\"id\": \"e1\"}}",
            "event BLOCK_EXPORT_DELETED",
            "{\"execute\": \"block-export-del\", \"arguments\": {\"id\": \"e1\"}}",
            "{\"execute\": \"object-del\", \"arguments\": {\"id\": \"io1\"}}",
            "{\"execute\": \"object-del\", \"arguments\": {\"id\": \"io1\"}}",
            "{\"execute\": \"blockdev-del\", \"arguments\": {\"node-name\": \"n1\"}}",
            "{\"execute\": \"blockdev-del\", \"arguments\": {\"node-name\": \"f0\"}}",
            "{\"execute\": \"query-named-block-nodes\"}");

    private QmpScript() {
    }

    /** Runs the script on a fresh connection; returns one shape per line. */
    static List<String> run(Path socket, Path dir) throws IOException {
        List<String> shapes = new ArrayList<>();
        try (QmpClient c = QmpClient.connect(socket)) {
            // Capabilities offered may differ (qemu-storage-daemon offers "oob", vblk none): the array's shape is kept.
            com.fasterxml.jackson.databind.node.ObjectNode g = c.greeting().deepCopy();
            ((com.fasterxml.jackson.databind.node.ObjectNode) g.get("QMP")).putArray("capabilities");
            shapes.add("greeting " + QmpShapes.shape(g));
            for (String line : LINES) {
                JsonNode r;
                try {
                    r = line.startsWith("event ") ? c.awaitEvent(line.substring(6)) : c.raw(line.replace("DIR", dir.toString()));
                } catch (IOException e) {
                    shapes.add(line + "\n    => connection lost: " + e.getMessage());
                    break;
                }
                shapes.add(line + "\n    => " + QmpShapes.shape(r));
            }
        }
        return shapes;
    }
}
