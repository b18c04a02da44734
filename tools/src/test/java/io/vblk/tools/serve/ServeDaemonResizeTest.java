package io.vblk.tools.serve;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** {@link ServeDaemon#resize}, the entry point QMP {@code block_resize} calls: results and QEMU's error messages. */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class ServeDaemonResizeTest {
    @TempDir
    Path dir;

    private static CompletableFuture<Long> resize(ServeDaemon d, String node, long bytes) {
        CompletableFuture<Long> f = new CompletableFuture<>();
        d.resize(node, bytes, (size, e) -> {
            if (e != null) {
                f.completeExceptionally(e);
            } else {
                f.complete(size);
            }
        });
        return f;
    }

    @Test
    void resizesANodeAndRefusesUnknownNodesAndNegativeSizes() throws Exception {
        ServeConfig cfg = ServeOptionParser.parse(List.of("driver=null-co,node-name=n0,size=64M"), List.of(),
                List.of("type=vhost-user-blk,id=e0,node-name=n0,addr.type=unix,addr.path=" + dir.resolve("s.sock")), null);
        ServeDaemon d = ServeDaemon.start(cfg);
        try {
            assertThat(resize(d, "n0", 128L << 20).get(30, TimeUnit.SECONDS)).isEqualTo(128L << 20);
            assertThatThrownBy(() -> resize(d, "nope", 1L << 20).get(30, TimeUnit.SECONDS))
                    .isInstanceOf(ExecutionException.class).cause()
                    .isInstanceOf(IllegalArgumentException.class).hasMessage("Cannot find device='' nor node-name='nope'");
            assertThatThrownBy(() -> resize(d, "n0", -1).get(30, TimeUnit.SECONDS))
                    .cause().hasMessage("Parameter 'size' expects a >0 size");
        } finally {
            assertThat(d.shutdown(Duration.ofSeconds(30))).isTrue();
        }
    }
}
