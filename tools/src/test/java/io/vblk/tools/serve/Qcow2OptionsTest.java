package io.vblk.tools.serve;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** {@code --blockdev driver=qcow2,...}: what parses, and the message for each mistake. */
@Timeout(value = 10, unit = TimeUnit.SECONDS)
class Qcow2OptionsTest {
    private static final String EXPORT = "type=vhost-user-blk,id=e0,node-name=q0,addr.type=unix,addr.path=/tmp/x.sock";

    private static ServeConfig parse(List<String> blockdevs, List<String> objects, String export) throws Exception {
        return ServeOptionParser.parse(blockdevs, objects, List.of(export), null);
    }

    private static String error(List<String> blockdevs, List<String> objects, String export) {
        return assertThatThrownBy(() -> parse(blockdevs, objects, export)).isInstanceOf(ServeOptionException.class)
                .actual().getMessage();
    }

    @Test
    void qcow2OverAFileNodeWithAndWithoutBacking() throws Exception {
        ServeConfig c = parse(List.of("driver=file,node-name=f0,filename=/img", "driver=file,node-name=b0,filename=/base",
                "driver=qcow2,node-name=q0,file=f0,backing=b0"), List.of(), EXPORT);
        assertThat(c.node("q0")).isEqualTo(new ServeConfig.Qcow2Node("q0", "f0", "b0", false, false));
        c = parse(List.of("driver=file,node-name=f0,filename=/img,read-only=on", "driver=qcow2,node-name=q0,file=f0,backing=null"),
                List.of(), EXPORT);
        assertThat(c.node("q0")).isEqualTo(new ServeConfig.Qcow2Node("q0", "f0", null, true, true));
        c = parse(List.of("driver=file,node-name=f0,filename=/img", "driver=qcow2,node-name=q0,file=f0"), List.of(), EXPORT);
        assertThat(c.node("q0")).isEqualTo(new ServeConfig.Qcow2Node("q0", "f0", null, false, false));
    }

    @Test
    void anInlineNbdBackingIsParsedWithItsServerAndExport() throws Exception {
        ServeConfig c = parse(List.of("driver=file,node-name=f0,filename=/img", "driver=qcow2,node-name=q0,file=f0,"
                + "backing.driver=nbd,backing.server.type=unix,backing.server.path=/tmp/n.sock,backing.export=base"),
                List.of(), EXPORT);
        assertThat(c.node("q0")).isEqualTo(new ServeConfig.Qcow2Node("q0", "f0", null, false, false,
                new ServeConfig.NbdNode("q0-backing", new io.vblk.drivers.nbd.NbdAddress.Unix("/tmp/n.sock"), "base", 0)));
        assertThat(error(List.of("driver=file,node-name=f0,filename=/img", "driver=qcow2,node-name=q0,file=f0,"
                + "backing.driver=file,backing.filename=/x"), List.of(), EXPORT))
                .contains("backing.driver=file is not supported inline").contains("accepts backing.driver=nbd");
        assertThat(error(List.of("driver=file,node-name=f0,filename=/img", "driver=qcow2,node-name=q0,file=f0,"
                + "backing.driver=nbd,backing=f0,backing.server.type=unix,backing.server.path=/s"), List.of(), EXPORT))
                .contains("either backing=NODE or backing.driver=nbd");
        assertThat(error(List.of("driver=file,node-name=f0,filename=/img", "driver=qcow2,node-name=q0,file=f0,"
                + "backing.driver=nbd"), List.of(), EXPORT)).contains("backing.server.type");
    }

    @Test
    void mistakesNameTheOptionAndWhatItAccepts() {
        assertThat(error(List.of("driver=qcow2,node-name=q0"), List.of(), EXPORT))
                .contains("file").contains("node-name of the node holding the image");
        assertThat(error(List.of("driver=qcow2,node-name=q0,file=f9"), List.of(), EXPORT))
                .contains("file=f9 names no earlier --blockdev");
        assertThat(error(List.of("driver=file,node-name=f0,filename=/img", "driver=qcow2,node-name=q0,file=f0,backing=zz"),
                List.of(), EXPORT)).contains("backing=zz names no earlier --blockdev").contains("or null");
        assertThat(error(List.of("driver=file,node-name=f0,filename=/img", "driver=qcow2,node-name=q0,file=f0,cache=x"),
                List.of(), EXPORT)).contains("cache");
        assertThat(error(List.of("driver=file,node-name=f0,filename=/img", "driver=qcow2,node-name=q0,file=f0"),
                List.of("iothread,id=a", "iothread,id=b"), EXPORT + ",iothread.0=a,iothread.1=b"))
                .contains("qcow2, which vblk serves from one IoThread");
    }
}
