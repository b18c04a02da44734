package io.vblk.aio.sys;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioOptions;
import io.vblk.aio.IoThread;
import io.vblk.aio.NanoClock;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.time.Duration;
import java.util.BitSet;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

@Timeout(value = 20, unit = TimeUnit.SECONDS)
class CpuAffinityTest {
    @Test
    void parsesAndFormatsCpuLists() {
        assertThat(CpuAffinity.format(CpuAffinity.parse("1"))).isEqualTo("1");
        assertThat(CpuAffinity.format(CpuAffinity.parse("0-1,3"))).isEqualTo("0-1,3");
        assertThat(CpuAffinity.format(CpuAffinity.parse("3:0-1"))).isEqualTo("0-1,3");
        assertThat(CpuAffinity.format(CpuAffinity.parse("2-2,5-7"))).isEqualTo("2,5-7");
        assertThat(CpuAffinity.parse("0-1,3").cardinality()).isEqualTo(3);
    }

    @Test
    void badListsNameThePartAndWhatIsAccepted() {
        for (String bad : new String[] {"", "a", "1-", "-1", "3-1", "1,,2", "1024", "0x1", "1.5"}) {
            assertThatThrownBy(() -> CpuAffinity.parse(bad)).as(bad)
                    .isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("accepts a CPU list such as 1 or 0-1,3");
        }
        assertThatThrownBy(() -> CpuAffinity.parse("3-1")).hasMessageContaining("3-1").hasMessageContaining("backwards");
    }

    @Test
    void ioThreadBindsItselfAndReadsItBackWithSchedGetaffinity() {
        BitSet allowed = CpuAffinity.ofCurrentThread();
        assertThat(allowed.isEmpty()).isFalse();
        BitSet one = new BitSet();
        one.set(allowed.length() - 1); // the last CPU this process may use
        try (IoThread io = IoThread.start("pinned", NanoClock.SYSTEM, AioOptions.DEFAULT, one)) {
            BitSet seen = AioContext.await(io.ctx().callOn(CpuAffinity::ofCurrentThread), Duration.ofSeconds(5));
            assertThat(seen).isEqualTo(one);
            assertThat(io.cpuAffinity()).isEqualTo(one);
        }
        assertThat(CpuAffinity.ofCurrentThread()).as("the caller's own mask is untouched").isEqualTo(allowed);
        try (IoThread io = IoThread.start("unpinned", NanoClock.SYSTEM, AioOptions.DEFAULT, null)) {
            BitSet seen = AioContext.await(io.ctx().callOn(CpuAffinity::ofCurrentThread), Duration.ofSeconds(5));
            assertThat(seen).isEqualTo(allowed);
            assertThat(io.cpuAffinity()).isNull();
        }
    }

    @Test
    void aCpuOutsideTheProcessMaskIsRefusedWithTheCpusNamed() {
        BitSet allowed = CpuAffinity.ofCurrentThread();
        BitSet bad = CpuAffinity.parse(String.valueOf(CpuAffinity.MAX_CPUS - 1));
        assertThat(allowed.get(CpuAffinity.MAX_CPUS - 1)).isFalse();
        assertThatThrownBy(() -> IoThread.start("bad", NanoClock.SYSTEM, AioOptions.DEFAULT, bad))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("IoThread bad cpu-affinity=1023")
                .hasMessageContaining("CPU 1023 is not available")
                .hasMessageContaining("available: " + CpuAffinity.format(allowed));
        assertThat(CpuAffinity.setCurrentThread(bad)).as("the kernel refuses a mask of no usable CPU")
                .isEqualTo(-Errno.EINVAL);
    }
}
