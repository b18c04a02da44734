package io.vblk.drivers.nullblk;

import io.vblk.drivers.BlockDriver;
import io.vblk.drivers.BlockDriverConformance;

import java.nio.file.Path;

/** The driver contract for {@code null} with completion=sync (reads return zeroes). */
class NullSyncConformanceTest extends BlockDriverConformance {
    @Override
    protected BlockDriver openDriver(Path dir, long size, boolean readOnly) {
        return new NullDriver(size, NullDriver.Completion.SYNC, 32, readOnly);
    }

    @Override
    protected boolean persistsData() {
        return false;
    }
}
