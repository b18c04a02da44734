package io.vblk.aio.metrics;

import java.util.HashSet;
import java.util.Set;

import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;

class MeterTest {

    @Test
    void namesAreUniqueAndWellFormed() {
        Set<String> names = new HashSet<>();
        Set<String> prom = new HashSet<>();
        for (Meter m : Meter.values()) {
            assertThat(names.add(m.meterName())).as("duplicate %s", m.meterName()).isTrue();
            assertThat(prom.add(m.prometheusName())).as("duplicate %s", m.prometheusName()).isTrue();
            assertThat(m.meterName()).matches("vblk(\\.[a-z0-9]+)+");
            assertThat(m.prometheusName()).matches("[a-z_][a-z0-9_]*");
            assertThat(m.description()).isNotBlank();
            assertThat(m.tagKeys()).isNotEmpty().doesNotHaveDuplicates();
            assertThat(Meter.byPrometheusName(m.prometheusName())).isSameAs(m);
        }
        // A histogram's series must not collide with another meter's family.
        for (Meter m : Meter.values()) {
            if (m.kind() == Meter.Kind.HISTOGRAM) {
                for (String suffix : new String[] {"_bucket", "_count", "_sum"}) {
                    assertThat(prom).doesNotContain(m.prometheusName() + suffix);
                }
            }
        }
    }

    @Test
    void prometheusNamesFollowTheConvention() {
        assertThat(Meter.REQUESTS.prometheusName()).isEqualTo("vblk_requests_total");
        assertThat(Meter.REQUEST_BYTES.prometheusName()).isEqualTo("vblk_request_bytes_total");
        assertThat(Meter.REQUEST_LATENCY.prometheusName()).isEqualTo("vblk_request_latency_seconds");
        assertThat(Meter.LOOP_BLOCKED.prometheusName()).isEqualTo("vblk_loop_blocked_seconds_total");
        assertThat(Meter.AIO_IN_FLIGHT.prometheusName()).isEqualTo("vblk_aio_in_flight");
        assertThat(Meter.Tag.IOTHREAD).isEqualTo("iothread");
        assertThat(Meter.byPrometheusName("nope")).isNull();
    }
}
