package io.vblk.tools.metrics;

import io.vblk.aio.metrics.Meter;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * docs/grafana/vblk-dashboard.json loads as JSON, every query in it names only meters that exist
 * (vblk's catalogue, or what Micrometer's JVM and process binders register), and every meter of
 * the catalogue has a panel.
 */
class DashboardTest {
    /** PromQL functions, aggregations and keywords that look like names. */
    private static final Set<String> PROMQL = Set.of("sum", "min", "max", "avg", "count", "rate", "irate", "increase",
            "histogram_quantile", "by", "without", "on", "ignoring", "group_left", "group_right", "label_values",
            "and", "or", "unless", "offset", "bool", "topk", "bottomk", "clamp_min", "clamp_max", "abs", "delta");
    private static final Pattern IDENT = Pattern.compile("[a-zA-Z_:][a-zA-Z0-9_:]*");

    @Test
    void everyQueryNamesAnExistingMeterAndEveryMeterHasAPanel() throws Exception {
        Path file = repoRoot().resolve("docs/grafana/vblk-dashboard.json");
        @SuppressWarnings("unchecked")
        Map<String, Object> dash = (Map<String, Object>) MiniJson.parse(Files.readString(file));
        assertThat(dash.get("title")).isEqualTo("vblk");
        assertThat(dash.get("uid")).isNotNull();

        List<String> exprs = new ArrayList<>();
        collect(dash, exprs);
        assertThat(exprs).hasSizeGreaterThan(30);

        Set<String> valid = new HashSet<>();
        for (Meter m : Meter.values()) {
            valid.add(m.prometheusName());
            if (m.kind() == Meter.Kind.HISTOGRAM) {
                valid.add(m.prometheusName() + "_bucket");
                valid.add(m.prometheusName() + "_count");
                valid.add(m.prometheusName() + "_sum");
            }
        }
        try (VblkMetrics metrics = new VblkMetrics()) {
            metrics.bindJvm();
            for (String line : metrics.scrape(null).body().split("\n")) {
                if (!line.startsWith("#") && !line.isBlank()) {
                    valid.add(line.split("[{ ]", 2)[0]);
                }
            }
        }

        Set<String> used = new TreeSet<>();
        for (String e : exprs) {
            Set<String> names = metricNames(e);
            assertThat(names).as("query names no meter: %s", e).isNotEmpty();
            for (String n : names) {
                assertThat(valid).as("query %s names %s, which no meter exports", e, n).contains(n);
            }
            used.addAll(names);
        }
        for (Meter m : Meter.values()) {
            String n = m.prometheusName();
            boolean shown = used.contains(n) || used.contains(n + "_bucket") || used.contains(n + "_count");
            assertThat(shown).as("meter %s (%s) has no panel", m, n).isTrue();
        }
    }

    @Test
    void metricNamesAreFoundInPromql() {
        assertThat(metricNames("histogram_quantile(0.99, sum by (le, op) (rate(vblk_request_latency_seconds_bucket"
                + "{export=~\"$export\",op=\"read\"}[$__rate_interval])))"))
                .containsExactly("vblk_request_latency_seconds_bucket");
        assertThat(metricNames("sum(rate(a_total[1m])) / sum(rate(b_total{x=\"y\"}[1m])) > 0"))
                .containsExactlyInAnyOrder("a_total", "b_total");
        assertThat(metricNames("label_values(vblk_requests_total, export)")).containsExactly("vblk_requests_total");
    }

    /** Metric names in a PromQL expression (or a Grafana label_values query). */
    static Set<String> metricNames(String expr) {
        String e = expr.replaceAll("\"(\\\\.|[^\"\\\\])*\"", "\"\"")   // string literals
                .replaceAll("\\{[^}]*}", " ")                           // label matchers
                .replaceAll("\\[[^]]*]", " ")                           // range selectors
                .replaceAll("\\$\\{?\\w+}?", " ")                       // Grafana variables
                .replaceAll("\\b(by|without|on|ignoring|group_left|group_right)\\s*\\([^)]*\\)", " ");
        // label_values(metric, label): the second argument is a label.
        e = e.replaceAll("label_values\\(\\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\\s*,\\s*\\w+\\s*\\)", "$1");
        Set<String> out = new TreeSet<>();
        Matcher m = IDENT.matcher(e);
        while (m.find()) {
            String id = m.group();
            int before = m.start() - 1;
            boolean inNumber = before >= 0 && (Character.isDigit(e.charAt(before)) || e.charAt(before) == '.');
            if (!PROMQL.contains(id) && !inNumber) {
                out.add(id);
            }
        }
        return out;
    }

    @SuppressWarnings("unchecked")
    private static void collect(Object node, List<String> exprs) {
        if (node instanceof Map<?, ?> map) {
            for (Map.Entry<?, ?> en : map.entrySet()) {
                Object v = en.getValue();
                if (en.getKey().equals("expr") && v instanceof String s) {
                    exprs.add(s);
                } else if (en.getKey().equals("definition") && v instanceof String s) {
                    exprs.add(s);
                } else {
                    collect(v, exprs);
                }
            }
        } else if (node instanceof List<?> list) {
            for (Object o : list) {
                collect(o, exprs);
            }
        }
    }

    private static Path repoRoot() {
        Path p = Path.of("").toAbsolutePath();
        while (p != null && !Files.exists(p.resolve("docs/grafana/vblk-dashboard.json"))) {
            p = p.getParent();
        }
        if (p == null) {
            throw new IllegalStateException("docs/grafana/vblk-dashboard.json not found above " + Path.of("").toAbsolutePath());
        }
        return p;
    }
}
