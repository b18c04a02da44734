package io.vblk.tools.qmp;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** Any thread (test code). The --chardev/--monitor options and the client's key=value input. */
class MonitorSpecTest {
    @Test
    void pathAndInheritedFdMonitors() {
        List<MonitorSpec> l = MonitorSpec.parse(List.of("socket,id=m0,path=/run/q.sock,server=on,wait=off",
                "socket,id=m1,fd=3,server=on", "socket,id=m2,addr.type=fd,addr.str=4,server=on"),
                List.of("chardev=m0", "chardev=m1,mode=control", "chardev=m2"));
        assertThat(l).containsExactly(new MonitorSpec("m0", "/run/q.sock", -1), new MonitorSpec("m1", null, 3),
                new MonitorSpec("m2", null, 4));
    }

    @Test
    void badOptionsNameTheOptionAndWhatItAccepts() {
        assertThatThrownBy(() -> MonitorSpec.parse(List.of("socket,id=m0,path=/x,server=off"), List.of("chardev=m0")))
                .hasMessageContaining("server=on is required");
        assertThatThrownBy(() -> MonitorSpec.parse(List.of("socket,id=m0,path=/x,server=on"), List.of("chardev=m9")))
                .hasMessageContaining("--monitor chardev=m9").hasMessageContaining("unused: m0");
        assertThatThrownBy(() -> MonitorSpec.parse(List.of("pty,id=m0"), List.of()))
                .hasMessageContaining("only the socket backend");
        assertThatThrownBy(() -> MonitorSpec.parse(List.of("socket,id=m0,fd=x,server=on"), List.of("chardev=m0")))
                .hasMessageContaining("not a file descriptor number");
    }

    @Test
    void clientInputIsJsonOrCommandWithKeyValues() {
        assertThat(MonitorCommand.parse("block-export-add id=e1 addr.type=unix addr.path=/s writable=true num-queues=2").toString())
                .isEqualTo("{\"execute\":\"block-export-add\",\"arguments\":{\"id\":\"e1\",\"addr\":{\"type\":\"unix\","
                        + "\"path\":\"/s\"},\"writable\":true,\"num-queues\":2}}");
        assertThat(MonitorCommand.parse("{\"execute\": \"quit\"}").get("execute").asText()).isEqualTo("quit");
        assertThatThrownBy(() -> MonitorCommand.parse("query-version oops")).hasMessageContaining("is not key=value");
    }
}
