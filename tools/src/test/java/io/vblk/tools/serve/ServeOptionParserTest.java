package io.vblk.tools.serve;

import io.vblk.aio.engine.AioMode;
import io.vblk.tools.serve.ServeConfig.ExportSpec;
import io.vblk.tools.serve.ServeConfig.FileNode;
import io.vblk.tools.serve.ServeConfig.NullNode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

@Timeout(value = 10, unit = TimeUnit.SECONDS)
class ServeOptionParserTest {
    private static ServeConfig parse(List<String> blockdevs, List<String> objects, List<String> exports) throws Exception {
        return ServeOptionParser.parse(blockdevs, objects, exports, null);
    }

    private static void fails(List<String> blockdevs, List<String> objects, List<String> exports, String... parts) {
        var a = assertThatThrownBy(() -> parse(blockdevs, objects, exports)).isInstanceOf(ServeOptionException.class);
        for (String p : parts) {
            a.hasMessageContaining(p);
        }
    }

    @Test
    void theQemuStorageDaemonCommandLineFromTheIssueParses() throws Exception {
        ServeConfig c = parse(List.of("driver=null-co,node-name=n0,size=1G"), List.of(),
                List.of("type=vhost-user-blk,id=e0,node-name=n0,addr.type=unix,addr.path=/tmp/x.sock,writable=on,num-queues=1"));
        assertThat(c.blockdevs()).containsExactly(new NullNode("n0", false, 1L << 30, false));
        ExportSpec e = c.exports().getFirst();
        assertThat(e.id()).isEqualTo("e0");
        assertThat(e.address()).isEqualTo(new ServeConfig.UnixPath("/tmp/x.sock"));
        assertThat(e.writable()).isTrue();
        assertThat(e.numQueues()).isEqualTo(1);
        assertThat(e.logicalBlockSize()).isEqualTo(512);
        assertThat(e.iothreadOf(0)).isNull();
    }

    @Test
    void fileNodeIothreadsAndQueueMapping() throws Exception {
        ServeConfig c = parse(
                List.of("driver=file,node-name=disk,filename=/img/a,,b.raw,aio=native,cache.direct=on,read-only=off"),
                List.of("iothread,id=io0,poll-max-ns=0", "iothread,id=io1,aio-max-batch=16"),
                List.of("type=vhost-user-blk,id=e1,node-name=disk,addr.type=fd,addr.str=3,writable=on,num-queues=4,"
                        + "logical-block-size=4096,iothread.0=io0,iothread.1=io1,submit-batch=4"));
        assertThat(c.blockdevs()).containsExactly(new FileNode("disk", "/img/a,b.raw", AioMode.NATIVE, true, false));
        assertThat(c.iothreads().get(0).pollMaxNs()).isZero();
        assertThat(c.iothreads().get(1).aioMaxBatch()).isEqualTo(16);
        ExportSpec e = c.exports().getFirst();
        assertThat(e.address()).isEqualTo(new ServeConfig.InheritedFd(3));
        assertThat(e.logicalBlockSize()).isEqualTo(4096);
        assertThat(e.submitBatch()).isEqualTo(4);
        assertThat(List.of(e.iothreadOf(0), e.iothreadOf(1), e.iothreadOf(2), e.iothreadOf(3)))
                .containsExactly("io0", "io1", "io0", "io1");
    }

    @Test
    void rawOverFileResolvesToTheFileNode() throws Exception {
        ServeConfig c = parse(List.of("driver=file,node-name=f0,filename=/x", "driver=raw,node-name=r0,file=f0"), List.of(),
                List.of("type=vhost-user-blk,id=e0,node-name=r0,addr.type=unix,addr.path=/s"));
        assertThat(c.exports().getFirst().nodeName()).isEqualTo("f0");
    }

    @Test
    void sizesFollowQemuUnits() throws Exception {
        assertThat(KeyValueOptions.Sizes.parse("4096")).isEqualTo(4096);
        assertThat(KeyValueOptions.Sizes.parse("1k")).isEqualTo(1024);
        assertThat(KeyValueOptions.Sizes.parse("512M")).isEqualTo(512L << 20);
        assertThat(KeyValueOptions.Sizes.parse("1.5G")).isEqualTo(3L << 29);
        assertThat(KeyValueOptions.Sizes.parse("2T")).isEqualTo(2L << 40);
        assertThat(KeyValueOptions.Sizes.parse("12x")).isEqualTo(-1);
        assertThat(KeyValueOptions.Sizes.parse("G")).isEqualTo(-1);
        assertThat(KeyValueOptions.Sizes.parse("16E")).isEqualTo(-1);
    }

    private static final List<String> NODE = List.of("driver=null-co,node-name=n0");

    private static List<String> export(String extra) {
        return List.of("type=vhost-user-blk,id=e0,node-name=n0,addr.type=unix,addr.path=/s" + extra);
    }

    @Test
    void aioTakesQemusSpellings() throws Exception {
        for (AioMode m : AioMode.values()) {
            ServeConfig c = parse(List.of("driver=file,node-name=n0,filename=/x,cache.direct=on,aio=" + m.spelling()),
                    List.of(), export(""));
            assertThat(c.blockdevs()).containsExactly(new FileNode("n0", "/x", m, true, false));
        }
    }

    @Test
    void ioUringRunsWithAndWithoutTheHostPageCache() throws Exception {
        // QEMU asks cache.direct=on of aio=native only; io_uring does buffered I/O as well.
        ServeConfig c = parse(List.of("driver=file,node-name=n0,filename=/x,aio=io_uring"), List.of(), export(""));
        assertThat(c.blockdevs()).containsExactly(new FileNode("n0", "/x", AioMode.IO_URING, false, false));
    }

    @Test
    void badBlockdevOptionsNameTheOptionAndWhatItAccepts() {
        fails(List.of("driver=vmdk,node-name=a"), List.of(), export(""), "--blockdev", "driver=vmdk", "accepts file");
        fails(List.of("driver=file,node-name=a"), List.of(), export(""), "filename is required");
        fails(List.of("driver=file,node-name=a,filename=/x,aio=posix"), List.of(), export(""), "aio=posix",
                "accepts threads, native, io_uring");
        fails(List.of("driver=file,node-name=a,filename=/x,aio=native"), List.of(), export(""), "requires cache.direct=on");
        fails(List.of("driver=file,node-name=a,filename=/x,cache.direct=maybe"), List.of(), export(""),
                "cache.direct=maybe", "accepts on or off");
        fails(List.of("driver=null-co,node-name=n0,size=huge"), List.of(), export(""), "size=huge", "is not a size");
        fails(List.of("driver=null-co,node-name=n0,read-zeroes=on"), List.of(), export(""), "read-zeroes=on is not supported",
                "accepts read-zeroes=off");
        fails(List.of("driver=file,node-name=a,filename=/x,cache.no-flush=on"), List.of(), export(""),
                "cache.no-flush=on is not supported");
        fails(List.of("driver=null-co,node-name=n0,colour=red"), List.of(), export(""), "unknown or unsupported key colour",
                "accepted keys");
        fails(List.of("driver=null-co,node-name=0bad"), List.of(), export(""), "node-name=0bad", "not a valid name");
        fails(List.of("driver=null-co,node-name=n0", "driver=null-aio,node-name=n0"), List.of(), export(""),
                "node-name n0 is used by another");
        fails(List.of("{\"driver\":\"null-co\"}"), List.of(), export(""), "JSON form is not supported");
        fails(List.of("driver=null-co,node-name=n0,size=1G,size=2G"), List.of(), export(""), "size is given twice");
    }

    /**
     * {@code key-secret} takes a secret object as QEMU's rbd driver does (qcrypto_secret_lookup_as_base64):
     * the base64 of the secret's bytes, so a cephx key given with format=base64 comes back unchanged and
     * a raw file holds the key's bytes; the value never shows in the configuration's text.
     */
    @Test
    void rbdKeySecretNamesASecretObject(@org.junit.jupiter.api.io.TempDir java.nio.file.Path tmp) throws Exception {
        String key = "AQBzQ1Jp6nLzEhAAIgqUeuKMUfGLxkp9Grp8Gw==";
        java.nio.file.Path raw = tmp.resolve("key.bin");
        java.nio.file.Files.write(raw, java.util.Base64.getDecoder().decode(key));
        java.nio.file.Path text = tmp.resolve("key.txt");
        java.nio.file.Files.writeString(text, key + "\n");
        List<String> e = List.of("type=vhost-user-blk,id=e0,node-name=r0,addr.type=unix,addr.path=/tmp/x",
                "type=vhost-user-blk,id=e1,node-name=r1,addr.type=unix,addr.path=/tmp/y",
                "type=vhost-user-blk,id=e2,node-name=r2,addr.type=unix,addr.path=/tmp/z");
        ServeConfig c = parse(List.of("driver=rbd,node-name=r0,pool=p,image=i,key-secret=s0",
                        "driver=rbd,node-name=r1,pool=p,image=i,key-secret=s1,read-only=on",
                        "driver=rbd,node-name=r2,pool=p,image=i,key-secret=s2,read-only=on"),
                List.of("secret,id=s0,data=" + key + ",format=base64", "iothread,id=io0", "secret,id=s1,file=" + raw,
                        "qom-type=secret,id=s2,file=" + text + ",format=base64"), e);
        for (int i = 0; i < 3; i++) {
            ServeConfig.RbdNode n = (ServeConfig.RbdNode) c.blockdevs().get(i);
            assertThat(n.keySecret()).isEqualTo("s" + i);
            assertThat(n.key()).as("node r%d's key", i).isEqualTo(key);
            assertThat(n.toString()).doesNotContain(key);
        }
        assertThat(c.toString()).doesNotContain(key);
        assertThat(c.iothreads()).hasSize(1);
        assertThat(c.secrets()).containsOnlyKeys("s0", "s1", "s2");
        fails(List.of(), List.of("secret,id=s0"), export(""), "secret s0", "exactly one of 'data' and 'file'");
        fails(List.of(), List.of("secret,id=s0,data=x,file=/y"), export(""), "exactly one of 'data' and 'file'");
        fails(List.of(), List.of("secret,id=s0,data=x,format=hex"), export(""), "format=hex", "raw or base64");
        fails(List.of(), List.of("secret,id=s0,data=@@,format=base64"), export(""), "not valid base64");
        fails(List.of(), List.of("secret,id=s0,file=" + tmp.resolve("nope")), export(""), "cannot read file");
        fails(List.of(), List.of("secret,id=s0,data=x,keyid=master0"), export(""), "keyid");
        fails(List.of(), List.of("secret,id=s0,data=x", "secret,id=s0,data=y"), export(""), "duplicate", "s0");
    }

    @Test
    void rbdNodesTakeQemusOptionNames() throws Exception {
        ServeConfig c = parse(List.of("driver=rbd,node-name=r0,pool=p,image=i,namespace=ns,snapshot=s1,conf=/etc/ceph/x.conf,"
                + "user=vblk,read-only=on"), List.of(), List.of("type=vhost-user-blk,id=e0,node-name=r0,addr.type=unix,addr.path=/tmp/x"));
        assertThat(c.blockdevs()).containsExactly(new ServeConfig.RbdNode("r0", "p", "i", "ns", "s1", "/etc/ceph/x.conf", "vblk", null, null, true));
        assertThat(((ServeConfig.RbdNode) c.blockdevs().get(0)).describe()).isEqualTo("p/ns/i@s1");
        fails(List.of("driver=rbd,node-name=r0,image=i"), List.of(), export(""), "pool is required");
        fails(List.of("driver=rbd,node-name=r0,pool=p"), List.of(), export(""), "image is required");
        fails(List.of("driver=rbd,node-name=r0,pool=p,image=i,snapshot=s"), List.of(), export(""),
                "rbd snapshots are read-only", "read-only=on");
        fails(List.of("driver=rbd,node-name=r0,pool=p,image=i,key-secret=sec0"), List.of(), export(""),
                "key-secret=sec0", "No secret with id 'sec0'", "--object secret");
        fails(List.of("driver=rbd,node-name=r0,pool=p,image=i,user="), List.of(), export(""), "user must not be empty");
        fails(List.of("driver=rbd,node-name=r0,pool=p,image=i,server.0.host=h"), List.of(), export(""), "server.0.host");
    }

    @Test
    void badObjectOptions() {
        fails(NODE, List.of("memory-backend-ram,id=m"), export(""), "--object", "accepts iothread");
        fails(NODE, List.of("iothread"), export(""), "id is required");
        fails(NODE, List.of("iothread,id=io0,poll-max-ns=-1"), export(""), "poll-max-ns=-1", "out of range");
        fails(NODE, List.of("iothread,id=io0", "iothread,id=io0"), export(""), "id io0 is used by another");
    }

    @Test
    void iothreadCpuAffinity() throws Exception {
        ServeConfig c = parse(NODE, List.of("iothread,id=io0,cpu-affinity=0-1:3", "iothread,id=io1"), export(""));
        assertThat(c.iothreads().get(0).cpuAffinity()).isEqualTo(java.util.BitSet.valueOf(new long[] {0b1011}));
        assertThat(c.iothreads().get(1).cpuAffinity()).isNull();
        fails(NODE, List.of("iothread,id=io0,cpu-affinity=x"), export(""), "cpu-affinity=x",
                "accepts a CPU list such as 1 or 0-1,3");
        fails(NODE, List.of("iothread,id=io0,cpu-affinity=3-1"), export(""), "cpu-affinity=3-1", "backwards");
    }

    @Test
    void nbdServerExportsAndNodes() throws Exception {
        ServeConfig c = ServeOptionParser.parse(List.of("driver=null-co,node-name=n0",
                        "driver=nbd,node-name=r0,server.type=inet,server.host=localhost,export=x,reconnect-delay=5"),
                List.of("iothread,id=io0"), List.of("type=nbd,id=e0,node-name=n0,writable=on,iothread=io0",
                        "type=nbd,id=e1,node-name=r0,name=again"), null, false, "addr.type=unix,addr.path=/s");
        assertThat(c.nbdServer()).isEqualTo(new io.vblk.drivers.nbd.NbdAddress.Unix("/s"));
        assertThat(c.nbdExports()).containsExactly(new ServeConfig.NbdExportSpec("e0", "n0", "n0", true, "io0"),
                new ServeConfig.NbdExportSpec("e1", "r0", "again", false, null));
        assertThat(c.node("r0")).isEqualTo(new ServeConfig.NbdNode("r0",
                new io.vblk.drivers.nbd.NbdAddress.Inet("localhost", 10809), "x", 5));
        assertThatThrownBy(() -> ServeOptionParser.parse(NODE, List.of(), List.of(), null, false, "addr.type=tcp"))
                .hasMessageContaining("addr.type=tcp is not supported; accepts unix or inet");
        assertThatThrownBy(() -> ServeOptionParser.parse(List.of("driver=nbd,node-name=r0,server.type=unix"), List.of(),
                List.of(), null, false, "addr.type=unix,addr.path=/s")).hasMessageContaining("server.path");
        assertThatThrownBy(() -> ServeOptionParser.parse(NODE, List.of(), List.of("type=nbd,id=e0,node-name=n0",
                "type=nbd,id=e1,node-name=n0"), null, false, "addr.type=unix,addr.path=/s"))
                .hasMessageContaining("NBD export name 'n0' is used by another --export");
    }

    @Test
    void badExportOptions() {
        fails(NODE, List.of(), List.of("type=nbd,id=e0,node-name=n0"), "type=nbd", "needs --nbd-server");
        fails(NODE, List.of(), List.of("type=vhost-user-blk-pci,id=e0,node-name=n0"), "accepts vhost-user-blk or nbd");
        fails(NODE, List.of(), List.of("type=vhost-user-blk,id=e0,node-name=zz,addr.type=unix,addr.path=/s"),
                "node-name=zz names no --blockdev", "accepts one of n0");
        fails(NODE, List.of(), List.of("type=vhost-user-blk,id=e0,node-name=n0,addr.type=inet,addr.host=x"),
                "addr.type=inet", "accepts unix or fd");
        fails(NODE, List.of(), List.of("type=vhost-user-blk,id=e0,node-name=n0,addr.type=fd,addr.str=x"),
                "addr.str=x", "non-negative integer");
        fails(NODE, List.of(), export(",num-queues=0"), "num-queues=0", "accepts 1..64");
        fails(NODE, List.of(), export(",logical-block-size=1000"), "logical-block-size=1000", "power of two");
        fails(NODE, List.of(), export(",logical-block-size=256"), "logical-block-size=256", "accepts 512..65536");
        fails(NODE, List.of(), export(",submit-batch=-1"), "submit-batch=-1", "accepts 0..1024");
        fails(NODE, List.of(), export(",iothread=io9"), "iothread io9 is not defined", "none is defined");
        fails(NODE, List.of("iothread,id=io0"), export(",iothread.0=io0,iothread.2=io0"), "iothread.2 does not continue");
        fails(NODE, List.of("iothread,id=io0"), export(",iothread=io0,iothread.0=io0"), "either iothread=I or the list");
        fails(List.of("driver=null-co,node-name=n0,read-only=on"), List.of(), export(",writable=on"),
                "writable=on but node n0 is read-only");
        fails(NODE, List.of(), List.of(export("").getFirst(), export("").getFirst().replace("id=e0", "id=e1")),
                "address unix:/s is used by another --export");
        fails(NODE, List.of(), List.of(), "no --export given");
    }
}
