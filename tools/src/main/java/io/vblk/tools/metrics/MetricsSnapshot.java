package io.vblk.tools.metrics;

import io.micrometer.core.instrument.Measurement;
import io.micrometer.core.instrument.Tag;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import io.vblk.aio.metrics.LatencyHistogram;
import io.vblk.aio.metrics.Meter;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * Any thread (stateless). The flat snapshot of a registry behind {@link VblkMetrics#snapshot}:
 * every meter's current value keyed like a Prometheus series, for {@code vblk bench --json}.
 */
final class MetricsSnapshot {
    private MetricsSnapshot() {
    }

    /**
     * Every meter of {@code registry} and every source of the collectors {@code cs}, keyed like a
     * Prometheus series (see {@link VblkMetrics#snapshot}).
     */
    static Map<String, Number> of(PrometheusMeterRegistry registry, List<HistogramCollector> cs, boolean includeJvm) {
        Map<String, Number> out = new TreeMap<>();
        for (io.micrometer.core.instrument.Meter m : registry.getMeters()) {
            String name = m.getId().getName();
            if (!includeJvm && !name.startsWith("vblk.")) {
                continue;
            }
            Meter known = byMeterName(name);
            String base = known != null ? known.prometheusName() : prometheusName(registry, m.getId());
            List<Measurement> ms = new ArrayList<>();
            m.measure().forEach(ms::add);
            for (Measurement x : ms) {
                String key = ms.size() == 1 ? base : base + "_" + x.getStatistic().getTagValueRepresentation();
                put(out, key, m.getId().getTags(), null, x.getValue());
            }
        }
        for (HistogramCollector c : cs) {
            Meter m = c.meter();
            double scale = Meter.Unit.SECONDS.equals(m.baseUnit()) ? 1e-9 : 1.0;
            for (HistogramCollector.Source s : c.sources()) {
                LatencyHistogram.Snapshot snap = s.histogram().snapshot();
                List<Tag> tags = new ArrayList<>();
                for (int i = 0; i < m.tagKeys().size(); i++) {
                    tags.add(Tag.of(m.tagKeys().get(i), s.labelValues().get(i)));
                }
                String n = m.prometheusName();
                put(out, n + "_count", tags, null, snap.count());
                put(out, n + "_sum", tags, null, snap.sum() * scale);
                put(out, n, tags, "0.5", snap.quantile(0.5) * scale);
                put(out, n, tags, "0.99", snap.quantile(0.99) * scale);
                put(out, n, tags, "0.999", snap.quantile(0.999) * scale);
            }
        }
        return out;
    }

    private static void put(Map<String, Number> out, String name, Iterable<Tag> tags, String quantile, Number v) {
        StringBuilder k = new StringBuilder(name).append('{');
        List<Tag> sorted = new ArrayList<>();
        tags.forEach(sorted::add);
        sorted.sort(null);
        boolean first = true;
        for (Tag t : sorted) {
            if (!first) {
                k.append(',');
            }
            first = false;
            k.append(t.getKey()).append('=').append(t.getValue());
        }
        if (quantile != null) {
            k.append(first ? "" : ",").append("quantile=").append(quantile);
        }
        k.append('}');
        out.put(k.toString(), v);
    }

    /** A Micrometer meter's family name as the Prometheus registry writes it. */
    private static String prometheusName(PrometheusMeterRegistry registry, io.micrometer.core.instrument.Meter.Id id) {
        String n = registry.config().namingConvention().name(id.getName(), id.getType(), id.getBaseUnit());
        boolean counter = id.getType() == io.micrometer.core.instrument.Meter.Type.COUNTER;
        return counter && !n.endsWith("_total") ? n + "_total" : n;
    }

    private static Meter byMeterName(String name) {
        for (Meter m : Meter.values()) {
            if (m.meterName().equals(name)) {
                return m;
            }
        }
        return null;
    }
}
