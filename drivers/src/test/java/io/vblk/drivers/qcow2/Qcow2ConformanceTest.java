package io.vblk.drivers.qcow2;

import io.vblk.aio.engine.AioMode;
import io.vblk.drivers.BlockDriver;
import io.vblk.drivers.BlockDriverConformance;
import io.vblk.drivers.file.FileDriver;

import java.nio.file.Files;
import java.nio.file.Path;

import org.junit.jupiter.api.Tag;

/**
 * The driver contract for {@code qcow2} over {@code file}, on an image made by qemu-img with 4 KiB
 * clusters (so the contract's 4 KiB discards cover whole clusters, which is what qcow2 discards).
 */
@Tag("real")
class Qcow2ConformanceTest extends BlockDriverConformance {
    @Override
    protected BlockDriver openDriver(Path dir, long size, boolean readOnly) {
        Path img = dir.resolve("img.qcow2");
        if (!Files.exists(img)) {
            QemuImg.create(img, size, "cluster_size=4096");
        }
        FileDriver f = FileDriver.open(img.toString(), AioMode.THREADS, FileDriver.Cache.WRITEBACK, readOnly);
        Qcow2Driver q = Qcow2Driver.open(f, null, true, ctx);
        return new ClosingBoth(q, f);
    }

    /** Closes the qcow2 driver, then the file under it (the conformance suite closes one driver). Any thread. */
    static final class ClosingBoth extends io.vblk.drivers.ForwardingBlockDriver {
        private final BlockDriver file;

        ClosingBoth(BlockDriver qcow2, BlockDriver file) {
            super(qcow2);
            this.file = file;
        }

        @Override
        public io.vblk.drivers.BlockChannel openChannel(io.vblk.aio.AioContext c) {
            return inner.openChannel(c);
        }

        @Override
        public void close() {
            inner.close();
            file.close();
        }
    }
}
