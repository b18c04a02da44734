package io.vblk.tools.bench;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.time.Duration;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

@Timeout(5)
class UnitsTest {

    @Test
    void sizesUseBinarySuffixes() {
        assertThat(Units.parseSize("512")).isEqualTo(512);
        assertThat(Units.parseSize("4k")).isEqualTo(4096);
        assertThat(Units.parseSize("4K")).isEqualTo(4096);
        assertThat(Units.parseSize("64KiB")).isEqualTo(65536);
        assertThat(Units.parseSize("1m")).isEqualTo(1 << 20);
        assertThat(Units.parseSize("2g")).isEqualTo(2L << 30);
        assertThat(Units.formatSize(4096)).isEqualTo("4k");
        assertThat(Units.formatSize(1 << 20)).isEqualTo("1m");
        assertThat(Units.formatSize(1000)).isEqualTo("1000");
    }

    @Test
    void badSizesNameWhatIsAccepted() {
        assertThatThrownBy(() -> Units.parseSize("k")).hasMessageContaining("4k");
        assertThatThrownBy(() -> Units.parseSize("4x")).hasMessageContaining("k, m, g or t");
        assertThatThrownBy(() -> Units.parseSize("99999999999999999999")).hasMessageContaining("too large");
        assertThatThrownBy(() -> Units.parseSize("9000000000000t")).hasMessageContaining("too large");
    }

    @Test
    void durations() {
        assertThat(Units.parseDuration("10s")).isEqualTo(Duration.ofSeconds(10));
        assertThat(Units.parseDuration("500ms")).isEqualTo(Duration.ofMillis(500));
        assertThat(Units.parseDuration("2m")).isEqualTo(Duration.ofMinutes(2));
        assertThat(Units.parseDuration("1.5")).isEqualTo(Duration.ofMillis(1500));
        assertThat(Units.formatDuration(Duration.ofSeconds(10))).isEqualTo("10s");
        assertThat(Units.formatDuration(Duration.ofMillis(250))).isEqualTo("250ms");
        assertThatThrownBy(() -> Units.parseDuration("soon")).hasMessageContaining("500ms, 10s, 2m");
        assertThatThrownBy(() -> Units.parseDuration("3 days")).hasMessageContaining("ms, s, m or h");
        assertThatThrownBy(() -> Units.parseDuration("0s")).hasMessageContaining("out of range");
    }

    @Test
    void progressBarRendersFractionAndRate() {
        assertThat(ProgressBar.render(0.5, 5_000_000_000L, 812_345))
                .isEqualTo("[###############---------------]  50%  5.0s  IOPS 812.3k");
        assertThat(ProgressBar.render(1.2, 0, 2_500_000)).startsWith("[" + "#".repeat(30) + "] 100%");
    }

    @Test
    void jsonEscapesAndNests() {
        String s = new Json().begin().field("a", "x\"y\n").field("n", 3).object("o").field("d", 1.25, 1).end()
                .field("z", (String) null).end().toString();
        assertThat(s).isEqualTo("{\"a\":\"x\\\"y\\n\",\"n\":3,\"o\":{\"d\":1.3},\"z\":null}");
    }
}
