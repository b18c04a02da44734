package io.vblk.drivers.fault;

import io.vblk.drivers.BlockDriver;
import io.vblk.drivers.BlockDriverConformance;
import io.vblk.drivers.spec.DriverSpec;
import io.vblk.drivers.TestImages;

import java.nio.file.Path;

/**
 * The driver contract for {@code fault} whose rules never fire (probability 0, and a range past the
 * end), wrapping a file: the wrapper must be transparent.
 */
class FaultPassThroughConformanceTest extends BlockDriverConformance {
    @Override
    protected BlockDriver openDriver(Path dir, long size, boolean readOnly) {
        String img = TestImages.create(dir, "img", size);
        return DriverSpec.open("fault:seed=3;rule=prob:0,error:EIO;rule=range:1T-2T,delay:1s;inner=file:" + img
                + ",aio=native,cache=none" + (readOnly ? ",ro=on" : ""));
    }
}
