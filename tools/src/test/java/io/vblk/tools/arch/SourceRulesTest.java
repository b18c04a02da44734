package io.vblk.tools.arch;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Home thread: the test's. No shared state.
 *
 * <p>Rules of STYLE.md and the redesign that the class files cannot show, checked on the main
 * sources of every module: each type's Javadoc says its home thread in its first line, in the fixed
 * vocabulary ("Home thread: ..." or "Any thread ..."); no main source file is over 600 lines; no
 * class on the vhost-user path (the server, its wire and socket packages, the front end) is over
 * 420 lines.
 */
class SourceRulesTest {
    static final List<String> MODULES = List.of("aio", "irqfd", "drivers", "virtio", "tools");
    static final int MAX_LINES = 600;
    static final int MAX_VHOST_LINES = 420;
    private static final Pattern FIRST_JAVADOC_LINE = Pattern.compile("^/\\*\\*\\s*\\n\\s*\\*\\s*(.*)$",
            Pattern.MULTILINE);

    private static final List<Path> SOURCES = new ArrayList<>();

    @BeforeAll
    static void findSources() throws IOException {
        Path root = Path.of("..").toAbsolutePath().normalize();
        for (String m : MODULES) {
            Path dir = root.resolve(m).resolve("src/main/java");
            try (Stream<Path> s = Files.walk(dir)) {
                s.filter(p -> p.toString().endsWith(".java") && !p.endsWith("package-info.java")).forEach(SOURCES::add);
            }
        }
        assertThat(SOURCES).as("main sources found from %s", root).hasSizeGreaterThan(100);
    }

    @Test
    void everyTypeSaysItsHomeThreadFirst() {
        List<String> missing = new ArrayList<>();
        for (Path p : SOURCES) {
            Matcher m = FIRST_JAVADOC_LINE.matcher(read(p));
            String first = m.find() ? m.group(1) : "(no Javadoc)";
            if (!first.startsWith("Home thread") && !first.startsWith("Any thread")) {
                missing.add(p.getFileName() + ": " + first);
            }
        }
        assertThat(missing).as("types whose Javadoc does not start with their home thread (STYLE rule 1)").isEmpty();
    }

    @Test
    void noMainFileIsOverSixHundredLines() {
        List<String> big = new ArrayList<>();
        for (Path p : SOURCES) {
            long n = read(p).lines().count();
            String where = p.toString().replace('\\', '/');
            boolean vhostPath = where.contains("/io/vblk/virtio/vhost/") || where.contains("/io/vblk/guest/vhost/");
            if (n > MAX_LINES || vhostPath && n > MAX_VHOST_LINES) {
                big.add(p.getFileName() + ": " + n + " lines");
            }
        }
        assertThat(big).as("main files over %d lines (vhost-user path: %d)", MAX_LINES, MAX_VHOST_LINES).isEmpty();
    }

    private static String read(Path p) {
        try {
            return Files.readString(p);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
