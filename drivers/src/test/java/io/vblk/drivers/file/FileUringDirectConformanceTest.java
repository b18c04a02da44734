package io.vblk.drivers.file;

import io.vblk.aio.engine.AioMode;
import io.vblk.drivers.BlockDriver;
import io.vblk.drivers.BlockDriverConformance;
import io.vblk.drivers.TestImages;

import java.nio.file.Path;

/** The driver contract for {@code file} with aio=io_uring, cache=none. */
class FileUringDirectConformanceTest extends BlockDriverConformance {
    @Override
    protected BlockDriver openDriver(Path dir, long size, boolean readOnly) {
        return FileDriver.open(TestImages.create(dir, "img", size), AioMode.IO_URING, FileDriver.Cache.NONE, readOnly);
    }
}
