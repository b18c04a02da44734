package io.vblk.drivers.spec;

import io.vblk.aio.engine.AioMode;
import io.vblk.aio.sys.Errno;
import io.vblk.drivers.BlockDriver;
import io.vblk.drivers.BlockIo;
import io.vblk.drivers.fault.FaultRule;
import io.vblk.drivers.file.FileDriver;
import io.vblk.drivers.nullblk.NullDriver;

import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class DriverSpecTest {

    @Test
    void nullForms() {
        assertThat(DriverSpec.parse("null")).isEqualTo(new DriverSpec.Null(1L << 30, NullDriver.Completion.SYNC, 32, false));
        assertThat(DriverSpec.parse("null:size=64M,completion=async,max-batch=8,ro=on"))
                .isEqualTo(new DriverSpec.Null(64L << 20, NullDriver.Completion.ASYNC, 8, true));
        assertThat(DriverSpec.parse("null:read-zeroes=off"))
                .isEqualTo(new DriverSpec.Null(1L << 30, NullDriver.Completion.SYNC, 32, false, false));
        try (BlockDriver d = DriverSpec.open("null:size=1G,completion=async")) {
            assertThat(d.kind()).isEqualTo("null");
            assertThat(d.length()).isEqualTo(1L << 30);
        }
    }

    @Test
    void fileForms() {
        assertThat(DriverSpec.parse("file:/img/a.raw")).isEqualTo(
                new DriverSpec.File("/img/a.raw", AioMode.THREADS, FileDriver.Cache.WRITEBACK, false));
        assertThat(DriverSpec.parse("file:/img/a.raw,aio=native,cache=none,ro=on")).isEqualTo(
                new DriverSpec.File("/img/a.raw", AioMode.NATIVE, FileDriver.Cache.NONE, true));
        assertThat(DriverSpec.parse("file:path=disk,,1.raw,aio=threads")).isEqualTo(
                new DriverSpec.File("disk,1.raw", AioMode.THREADS, FileDriver.Cache.WRITEBACK, false));
        // QEMU's spelling, with and without the host page cache.
        assertThat(DriverSpec.parse("file:/img/a.raw,aio=io_uring")).isEqualTo(
                new DriverSpec.File("/img/a.raw", AioMode.IO_URING, FileDriver.Cache.WRITEBACK, false));
        assertThat(DriverSpec.parse("file:/img/a.raw,aio=io_uring,cache=none")).isEqualTo(
                new DriverSpec.File("/img/a.raw", AioMode.IO_URING, FileDriver.Cache.NONE, false));
    }

    @Test
    void faultForm() {
        DriverSpec s = DriverSpec.parse(
                "fault:seed=7;rule=op:write+discard,range:0-1M,error:ENOSPC;rule=op:read,nth:3,short:512;"
                        + "rule=prob:0.25,count:4,delay:5ms;inner=fault:rule=error:EIO;inner=null:size=8M");
        assertThat(s).isInstanceOf(DriverSpec.Fault.class);
        DriverSpec.Fault f = (DriverSpec.Fault) s;
        assertThat(f.seed()).isEqualTo(7);
        assertThat(f.rules()).hasSize(3);
        FaultRule r0 = f.rules().get(0);
        assertThat(r0.opMask()).isEqualTo(FaultRule.opBit(BlockIo.WRITE) | FaultRule.opBit(BlockIo.DISCARD));
        assertThat(r0.rangeEnd()).isEqualTo(1L << 20);
        assertThat(r0.errno()).isEqualTo(Errno.ENOSPC);
        assertThat(f.rules().get(1).nth()).isEqualTo(3);
        assertThat(f.rules().get(1).shortBytes()).isEqualTo(512);
        assertThat(f.rules().get(2).delayNanos()).isEqualTo(5_000_000);
        assertThat(f.rules().get(2).count()).isEqualTo(4);
        assertThat(f.inner()).isInstanceOf(DriverSpec.Fault.class);
        assertThat(((DriverSpec.Fault) f.inner()).inner()).isEqualTo(
                new DriverSpec.Null(8L << 20, NullDriver.Completion.SYNC, 32, false));
    }

    @Test
    void errorsNameTheKeyAndWhatItAccepts() {
        assertThatThrownBy(() -> DriverSpec.parse("null:size=1X"))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("'null:size=1X'").hasMessageContaining("size: '1X'")
                .hasMessageContaining("K, M, G or T");
        assertThatThrownBy(() -> DriverSpec.parse("null:colour=red"))
                .hasMessageContaining("unknown key 'colour'").hasMessageContaining("size, completion, max-batch, ro");
        assertThatThrownBy(() -> DriverSpec.parse("null:completion=maybe"))
                .hasMessageContaining("completion: 'maybe'").hasMessageContaining("sync or async");
        assertThatThrownBy(() -> DriverSpec.parse("file:/x,aio=posix"))
                .hasMessageContaining("aio: 'posix'").hasMessageContaining("threads, native or io_uring");
        assertThatThrownBy(() -> DriverSpec.parse("file:/x,cache=directsync"))
                .hasMessageContaining("cache: 'directsync'").hasMessageContaining("none or writeback");
        assertThatThrownBy(() -> DriverSpec.parse("file:")).hasMessageContaining("needs a path");
        assertThatThrownBy(() -> DriverSpec.parse("qcow2:/x")).hasMessageContaining("unknown driver 'qcow2'")
                .hasMessageContaining("null, file, fault");
        assertThatThrownBy(() -> DriverSpec.parse("fault:rule=op:read,error:EIO"))
                .hasMessageContaining("inner=SPEC");
        assertThatThrownBy(() -> DriverSpec.parse("fault:rule=op:read;inner=null"))
                .hasMessageContaining("no action");
        assertThatThrownBy(() -> DriverSpec.parse("fault:rule=op:write,short:5;inner=null"))
                .hasMessageContaining("reads only");
        assertThatThrownBy(() -> DriverSpec.parse("fault:rule=error:EIO,delay:1ms;inner=null"))
                .hasMessageContaining("exactly one action");
        assertThatThrownBy(() -> DriverSpec.parse("fault:rule=error:EWHAT;inner=null"))
                .hasMessageContaining("error: 'EWHAT'").hasMessageContaining("EIO, ENOSPC");
        assertThatThrownBy(() -> DriverSpec.parse("fault:rule=prob:2,error:EIO;inner=null"))
                .hasMessageContaining("prob: '2'");
        assertThatThrownBy(() -> DriverSpec.parse("fault:rule=delay:5,op:read;inner=null"))
                .hasMessageContaining("needs a unit");
        assertThatThrownBy(() -> DriverSpec.parse("fault:rule=range:5M-1M,error:EIO;inner=null"))
                .hasMessageContaining("END must be greater");
        assertThatThrownBy(() -> DriverSpec.parse("fault:rule=error:EIO;inner=null:size=-1"))
                .hasMessageContaining("size: '-1'");
        assertThatThrownBy(() -> DriverSpec.open("file:/nonexistent/dir/x.img"))
                .hasMessageContaining("/nonexistent/dir/x.img").hasMessageContaining("ENOENT");
    }

    @Test
    void rbdForms() {
        assertThat(DriverSpec.parse("rbd:pool=p,image=i")).isEqualTo(
                new DriverSpec.Rbd(new io.vblk.drivers.rbd.RbdDriver.Options("p", "i", null, null, null, null, null, false)));
        assertThat(DriverSpec.parse("rbd:pool=p,image=i,namespace=n,snapshot=s,conf=/c,user=u,ro=on")).isEqualTo(
                new DriverSpec.Rbd(new io.vblk.drivers.rbd.RbdDriver.Options("p", "i", "n", "s", "/c", "u", null, true)));
        assertThatThrownBy(() -> DriverSpec.parse("rbd:pool=p")).hasMessageContaining("rbd needs pool and image");
        assertThatThrownBy(() -> DriverSpec.parse("rbd:pool=p,image=i,colour=red"))
                .hasMessageContaining("unknown key 'colour' for driver rbd");
        assertThatThrownBy(() -> DriverSpec.parse("rbd:pool=,image=i")).hasMessageContaining("pool must not be empty");
    }
}
