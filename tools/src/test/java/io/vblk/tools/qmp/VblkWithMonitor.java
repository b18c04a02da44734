package io.vblk.tools.qmp;

import io.vblk.tools.serve.ServeConfig;
import io.vblk.tools.serve.ServeDaemon;
import io.vblk.tools.serve.ServeOptionParser;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;

/**
 * Any thread (test code).
 *
 * <p>A {@code vblk serve} in this process with QMP monitors on real sockets: the daemon as
 * {@link io.vblk.tools.serve.ServeCommand} starts it, plus {@link QmpServer}.
 */
final class VblkWithMonitor implements AutoCloseable {
    final ServeDaemon daemon;
    final QmpServer qmp;
    final CountDownLatch quit = new CountDownLatch(1);

    VblkWithMonitor(List<String> blockdevs, List<String> objects, List<String> exports, Path... monitors) throws Exception {
        ServeConfig cfg = ServeOptionParser.parse(blockdevs, objects, exports, null, true);
        daemon = ServeDaemon.start(cfg);
        List<MonitorSpec> specs = new ArrayList<>();
        for (int i = 0; i < monitors.length; i++) {
            specs.add(new MonitorSpec("m" + i, monitors[i].toString(), -1));
        }
        QmpServer q;
        try {
            q = QmpServer.start(daemon.graph(), specs, quit::countDown);
        } catch (RuntimeException e) {
            daemon.shutdown(Duration.ofSeconds(10));
            throw e;
        }
        qmp = q;
        daemon.attachMonitor(q);
    }

    @Override
    public void close() {
        qmp.close();
        if (!daemon.shutdown(Duration.ofSeconds(20))) {
            throw new AssertionError("vblk serve did not shut down cleanly");
        }
    }
}
