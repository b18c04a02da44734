package io.vblk.tools.metrics;

import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class MetricsOptionsTest {

    @Test
    void addressForms() {
        assertThat(MetricsOptions.parseAddress("127.0.0.1:9200"))
                .isEqualTo(new MetricsOptions("m0", "127.0.0.1", 9200, "/metrics"));
        assertThat(MetricsOptions.parseAddress("9300").host()).isEqualTo("127.0.0.1");
        assertThat(MetricsOptions.parseAddress(":9301").port()).isEqualTo(9301);
        assertThat(MetricsOptions.parseAddress("[::1]:9200").host()).isEqualTo("::1");
        assertThat(MetricsOptions.parseAddress("0.0.0.0:9200").socketAddress().getAddress().isAnyLocalAddress()).isTrue();
        assertThat(MetricsOptions.parseAddress("localhost:1").socketAddress().getAddress().isLoopbackAddress()).isTrue();
        assertThat(MetricsOptions.defaults().toObjectString()).isEqualTo("metrics,id=m0,addr=127.0.0.1:9200");
    }

    @Test
    void objectForms() {
        assertThat(MetricsOptions.parseObject("metrics,id=m1,addr=127.0.0.1:9201"))
                .isEqualTo(new MetricsOptions("m1", "127.0.0.1", 9201, "/metrics"));
        assertThat(MetricsOptions.parseObject("metrics,id=m2,host=::1,port=9202,path=/prom"))
                .isEqualTo(new MetricsOptions("m2", "::1", 9202, "/prom"));
        assertThat(MetricsOptions.parseObject("metrics,id=m3"))
                .isEqualTo(new MetricsOptions("m3", "127.0.0.1", 9200, "/metrics"));
        assertThat(MetricsOptions.parseObject("metrics,id=m2,host=::1,port=9202,path=/prom").toObjectString())
                .isEqualTo("metrics,id=m2,addr=[::1]:9202,path=/prom");
    }

    @Test
    void badValuesNameTheOptionAndWhatItAccepts() {
        assertThatThrownBy(() -> MetricsOptions.parseAddress("127.0.0.1:99999"))
                .isInstanceOf(MetricsOptionException.class).hasMessageContaining("--metrics").hasMessageContaining("0..65535");
        assertThatThrownBy(() -> MetricsOptions.parseAddress("host:x"))
                .hasMessageContaining("--metrics").hasMessageContaining("port must be a number");
        assertThatThrownBy(() -> MetricsOptions.parseAddress("::1:9200")).hasMessageContaining("brackets");
        assertThatThrownBy(() -> MetricsOptions.parseAddress("example.org:9200")).hasMessageContaining("IP address");
        assertThatThrownBy(() -> MetricsOptions.parseAddress("300.1.1.1:9200")).hasMessageContaining("not a valid IPv4");
        assertThatThrownBy(() -> MetricsOptions.parseAddress("")).hasMessageContaining("--metrics");
        assertThatThrownBy(() -> MetricsOptions.parseObject("metrics,addr=127.0.0.1:1"))
                .hasMessageContaining("'id' is required");
        assertThatThrownBy(() -> MetricsOptions.parseObject("metrics,id=m0,colour=red"))
                .hasMessageContaining("unknown key 'colour'").hasMessageContaining("keys: id, addr, host, port, path");
        assertThatThrownBy(() -> MetricsOptions.parseObject("metrics,id=m0,addr=:1,port=2"))
                .hasMessageContaining("either addr= or host=/port=");
        assertThatThrownBy(() -> MetricsOptions.parseObject("metrics,id=m0,id=m1")).hasMessageContaining("given twice");
        assertThatThrownBy(() -> MetricsOptions.parseObject("metrics,id=0bad")).hasMessageContaining("metrics id");
        assertThatThrownBy(() -> MetricsOptions.parseObject("metrics,id=m0,path=metrics")).hasMessageContaining("start with '/'");
        assertThatThrownBy(() -> MetricsOptions.parseObject("iothread,id=io0")).hasMessageContaining("--object");
        assertThatThrownBy(() -> MetricsOptions.parseObject("metrics,id")).hasMessageContaining("key=value");
    }
}
