package io.vblk.aio.testing;

import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import static org.assertj.core.api.Assertions.assertThat;

class TiersTest {
    private static final Path ROOT = Path.of(System.getProperty("user.dir")).getParent();
    private static final Pattern TAG = Pattern.compile("@(?:org\\.junit\\.jupiter\\.api\\.)?Tag\\(\"([^\"]*)\"\\)");

    @Test
    void everyTagInTheTestSourcesIsATier() throws IOException {
        List<String> unknown = new ArrayList<>();
        Set<String> seen = new LinkedHashSet<>();
        for (Path f : testSources()) {
            Matcher m = TAG.matcher(Files.readString(f));
            while (m.find()) {
                seen.add(m.group(1));
                if (!Tiers.ALL.contains(m.group(1))) {
                    unknown.add(ROOT.relativize(f) + ": @Tag(\"" + m.group(1) + "\")");
                }
            }
        }
        assertThat(unknown).as("tags that are not tiers " + Tiers.ALL).isEmpty();
        assertThat(seen).as("the tiers in use").contains(Tiers.VM, Tiers.REAL, Tiers.STRESS);
    }

    @Test
    void theFastProfileLeavesOutEveryTierAndAPlainBuildNone() throws IOException {
        String pom = Files.readString(ROOT.resolve("pom.xml"));
        Matcher fast = Pattern.compile("<id>fast</id>\\s*<properties><test.excludedGroups>([^<]*)</test.excludedGroups>")
                .matcher(pom.replaceAll("(?s)<!--.*?-->", ""));
        assertThat(fast.find()).as("the fast profile in pom.xml").isTrue();
        assertThat(List.of(fast.group(1).split(","))).containsExactlyInAnyOrderElementsOf(Tiers.ALL);
        assertThat(pom).contains("<test.excludedGroups></test.excludedGroups>");
    }

    /** Every test source file of every module. */
    static List<Path> testSources() throws IOException {
        List<Path> out = new ArrayList<>();
        try (Stream<Path> modules = Files.list(ROOT)) {
            for (Path m : modules.filter(d -> Files.isDirectory(d.resolve("src/test/java"))).toList()) {
                try (Stream<Path> files = Files.walk(m.resolve("src/test/java"))) {
                    files.filter(f -> f.toString().endsWith(".java")).forEach(out::add);
                }
            }
        }
        assertThat(out).as("test sources under " + ROOT).isNotEmpty();
        return out;
    }
}
