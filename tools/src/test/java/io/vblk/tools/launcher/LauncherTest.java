package io.vblk.tools.launcher;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.jar.Attributes;
import java.util.jar.JarEntry;
import java.util.jar.JarOutputStream;
import java.util.jar.Manifest;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The repository's launchers: {@code ./mvn25} never writes escape codes (a real Maven run), and
 * {@code ./vblk} on a fresh copy builds once under its lock when two first runs start together,
 * finds JDK 25 by running the candidates, and stops on a machine that is not x86_64 Linux. The
 * build is a stub {@code mvn} on PATH that waits for the test's go-ahead and writes a probe jar,
 * so the second launcher provably waits on the lock while the first builds.
 */
@Timeout(value = 3, unit = TimeUnit.MINUTES)
class LauncherTest {
    private static final Path ROOT = Path.of(System.getProperty("user.dir")).getParent();
    private static final Duration WAIT = Duration.ofSeconds(60);
    private static final String PROBE_OUTPUT = "launcher-probe";

    @TempDir
    Path tmp;

    /** The program in the probe jar: prints a marker and its arguments. */
    public static final class Probe {
        public static void main(String[] args) {
            System.out.println(PROBE_OUTPUT + " " + String.join(" ", args));
        }
    }

    /**
     * One real Maven run, not quiet and asking for colour: Maven 3.8's jansi writes its reset codes
     * whatever the flags (-B and -q included), so this run would show both those and the colours.
     */
    @Test
    void mvn25NeverWritesEscapeCodes() throws Exception {
        List<String> cmd = List.of(ROOT.resolve("mvn25").toString(), "-o", "-N", "validate", "-Dstyle.color=always");
        Run r = Run.start(new ProcessBuilder(cmd).directory(ROOT.toFile()), tmp.resolve("mvn.out"));
        assertThat(r.await()).as("exit of %s:\n%s", cmd, r.output()).isZero();
        assertThat(r.output()).as("output of %s", cmd).contains("BUILD SUCCESS").doesNotContain("\u001b");
    }

    @Test
    void twoFirstRunsBuildOnceAndALaterChangeRebuilds() throws Exception {
        Path repo = freshCopy();
        Path stub = stubMvn();
        Path log = tmp.resolve("builds.log");

        Run a = launch(repo, stub, "vblk", "a", "--help");
        a.awaitStderrLine("vblk: building");
        Run b = launch(repo, stub, "vblk", "b", "--help");
        b.awaitStderrLine("vblk: waiting for another build to finish");
        letTheBuildFinish();
        for (Run r : List.of(a, b)) {
            assertThat(r.await()).as("exit, output:\n%s", r.output()).isZero();
            assertThat(r.stdout()).isEqualTo(PROBE_OUTPUT + " --help\n");
            assertThat(r.output()).doesNotContain("\u001b");
        }
        assertThat(b.output()).doesNotContain("vblk: building");
        assertThat(Files.readAllLines(log)).hasSize(1).allMatch(l -> l.contains("-q -B -DskipTests package")
                && l.contains("-Dstyle.color=never") && l.contains("-Djansi.noreset=true"));

        Run c = launch(repo, stub, "vblk", "c", "--version");
        assertThat(c.await()).isZero();
        assertThat(c.stdout()).isEqualTo(PROBE_OUTPUT + " --version\n");
        assertThat(c.output()).doesNotContain("vblk: building").doesNotContain("waiting");
        assertThat(Files.readAllLines(log)).hasSize(1);

        // A source newer than the jar: the next run builds again.
        Path jar = repo.resolve("tools/target/vblk.jar");
        Files.setLastModifiedTime(repo.resolve("tools/src/main/java/Source.java"),
                FileTime.fromMillis(Files.getLastModifiedTime(jar).toMillis() + 10_000));
        Run d = launch(repo, stub, "vblk", "d", "--help");
        d.awaitStderrLine("vblk: building");
        letTheBuildFinish();
        assertThat(d.await()).as("exit, output:\n%s", d.output()).isZero();
        assertThat(Files.readAllLines(log)).hasSize(2);
    }

    @Test
    void stopsOnAMachineThatIsNotX86_64Linux() throws Exception {
        Path repo = freshCopy();
        Path stub = stubMvn();
        script(stub.resolve("uname"), """
                case "$1" in -s) echo Linux ;; -m) echo aarch64 ;; *) echo Linux ;; esac
                """);
        for (String launcher : List.of("vblk", "mvn25")) {
            Run r = launch(repo, stub, launcher, launcher, "--help");
            assertThat(r.await()).isEqualTo(1);
            assertThat(r.output()).contains("vblk runs only on x86_64 Linux, and this machine is Linux aarch64")
                    .contains("syscall numbers").contains("O_DIRECT").contains("struct layouts");
        }
        assertThat(tmp.resolve("builds.log")).doesNotExist();
    }

    @Test
    void findsJdk25ByRunningTheCandidates() throws Exception {
        Path repo = freshCopy();
        Path stub = stubMvn();
        Path jdk17 = fakeJdk("jdk17", 17);
        Path jdk26 = fakeJdk("jdk26", 26);
        Path jdk26b = fakeJdk("jdk26b", 26);
        String env = repo.resolve("scripts/jdk25-env.sh").toString();

        // $JAVA25_HOME that is too old is passed over, with a warning; $JAVA_HOME is next.
        Run r = Run.start(bash(stub, ". " + env + " && echo \"home=$JAVA_HOME\"",
                Map.of("JAVA25_HOME", jdk17.toString(), "JAVA_HOME", jdk26.toString())), tmp.resolve("env1.out"));
        assertThat(r.await()).isZero();
        assertThat(r.stdout()).isEqualTo("home=" + jdk26.toRealPath() + "\n");
        assertThat(r.output()).contains("JAVA25_HOME=" + jdk17 + " is not a JDK 25 or newer");

        // Neither set: update-alternatives' java comes before the JVM folders.
        script(stub.resolve("update-alternatives"), """
                [ "$2" = java ] && echo %s/bin/java
                [ "$2" = javac ] && echo %s/bin/javac
                exit 0
                """.formatted(jdk17, jdk26b));
        r = Run.start(bash(stub, "unset JAVA_HOME JAVA25_HOME; . " + env + " && echo \"home=$JAVA_HOME\"", Map.of()),
                tmp.resolve("env2.out"));
        assertThat(r.await()).isZero();
        assertThat(r.stdout()).isEqualTo("home=" + jdk26b.toRealPath() + "\n");
    }

    // ---------------------------------------------------------------- helpers

    /** The launcher scripts in an empty repository with one source file and no build output. */
    private Path freshCopy() throws IOException {
        Path repo = Files.createDirectories(tmp.resolve("repo"));
        for (String f : List.of("vblk", "mvn25", "scripts/jdk25-env.sh", "scripts/platform.sh")) {
            Files.createDirectories(repo.resolve(f).getParent());
            Files.copy(ROOT.resolve(f), repo.resolve(f));
        }
        Files.writeString(repo.resolve("pom.xml"), "<project/>\n");
        Files.createDirectories(repo.resolve("tools/src/main/java"));
        Files.writeString(repo.resolve("tools/src/main/java/Source.java"), "class Source {}\n");
        return repo;
    }

    /**
     * A bin directory with a stub {@code mvn}: logs its arguments and MAVEN_OPTS, waits for a line
     * on the go-ahead FIFO (bounded), then writes the probe jar where the build puts vblk.jar.
     */
    private Path stubMvn() throws Exception {
        Path bin = Files.createDirectories(tmp.resolve("bin"));
        if (Files.exists(bin.resolve("mvn"))) {
            return bin;
        }
        Path fifo = tmp.resolve("go");
        assertThat(new ProcessBuilder("mkfifo", fifo.toString()).start().waitFor()).isZero();
        writeProbeJar(tmp.resolve("probe.jar"));
        script(bin.resolve("mvn"), """
                echo "$* MAVEN_OPTS=$MAVEN_OPTS" >> %1$s/builds.log
                exec 3<>%1$s/go
                read -r -t 60 -u 3 line || { echo "stub mvn: no go-ahead" >&2; exit 1; }
                mkdir -p tools/target
                cp %1$s/probe.jar tools/target/vblk.jar
                """.formatted(tmp));
        return bin;
    }

    private void letTheBuildFinish() throws IOException {
        Files.writeString(tmp.resolve("go"), "go\n");
    }

    private static void writeProbeJar(Path jar) throws IOException {
        Manifest mf = new Manifest();
        mf.getMainAttributes().put(Attributes.Name.MANIFEST_VERSION, "1.0");
        mf.getMainAttributes().put(Attributes.Name.MAIN_CLASS, Probe.class.getName());
        String entry = Probe.class.getName().replace('.', '/') + ".class";
        try (JarOutputStream out = new JarOutputStream(Files.newOutputStream(jar), mf);
             InputStream in = Probe.class.getClassLoader().getResourceAsStream(entry)) {
            out.putNextEntry(new JarEntry(entry));
            in.transferTo(out);
            out.closeEntry();
        }
    }

    /** A JDK directory whose java, run as the lookup runs it, says specification version {@code v}. */
    private Path fakeJdk(String name, int v) throws IOException {
        Path home = Files.createDirectories(tmp.resolve(name).resolve("bin"));
        script(home.resolve("java"), "echo '    java.specification.version = " + v + "' >&2\n");
        script(home.resolve("javac"), "exit 0\n");
        return home.getParent();
    }

    private static void script(Path f, String body) throws IOException {
        Files.writeString(f, "#!/usr/bin/env bash\n" + body);
        Files.setPosixFilePermissions(f, PosixFilePermissions.fromString("rwxr-xr-x"));
    }

    /** Runs {@code launcher} (vblk or mvn25) of {@code repo} with the stub directory first on PATH. */
    private Run launch(Path repo, Path stub, String launcher, String name, String... args) throws IOException {
        List<String> cmd = new ArrayList<>(List.of(repo.resolve(launcher).toString()));
        cmd.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(cmd).directory(tmp.toFile());
        pb.environment().put("PATH", stub + ":" + System.getenv("PATH"));
        pb.environment().remove("MAVEN_OPTS");
        return Run.start(pb, tmp.resolve(name + ".out"));
    }

    private static ProcessBuilder bash(Path stub, String script, Map<String, String> env) {
        ProcessBuilder pb = new ProcessBuilder("bash", "-c", script);
        pb.environment().put("PATH", stub + ":" + System.getenv("PATH"));
        pb.environment().putAll(env);
        return pb;
    }

    /** A started process: stdout to a file, stderr lines read as they come. */
    private static final class Run {
        private final Process process;
        private final Path stdoutFile;
        private final StringBuffer stderr = new StringBuffer();
        private final BlockingQueue<String> lines = new LinkedBlockingQueue<>();
        private final Thread reader;

        private Run(ProcessBuilder pb, Path stdoutFile) throws IOException {
            this.stdoutFile = stdoutFile;
            this.process = pb.redirectOutput(stdoutFile.toFile()).start();
            this.reader = Thread.ofPlatform().daemon().start(() -> {
                try (BufferedReader br = new BufferedReader(
                        new InputStreamReader(process.getErrorStream(), StandardCharsets.UTF_8))) {
                    for (String l; (l = br.readLine()) != null; ) {
                        stderr.append(l).append('\n');
                        lines.add(l);
                    }
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
            });
        }

        static Run start(ProcessBuilder pb, Path stdoutFile) throws IOException {
            return new Run(pb, stdoutFile);
        }

        void awaitStderrLine(String prefix) throws InterruptedException {
            long deadline = System.nanoTime() + WAIT.toNanos();
            while (true) {
                String l = lines.poll(Math.max(1, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
                assertThat(l).as("a stderr line starting %s within %s; stderr so far:\n%s", prefix, WAIT, stderr)
                        .isNotNull();
                if (l.startsWith(prefix)) {
                    return;
                }
            }
        }

        /** The exit status, once the process ended and its stderr is read to the end. */
        int await() throws InterruptedException {
            if (!process.waitFor(WAIT.toSeconds(), TimeUnit.SECONDS)) {
                process.destroyForcibly();
                throw new AssertionError("not finished within " + WAIT + "; stderr:\n" + stderr);
            }
            reader.join(WAIT);
            assertThat(reader.isAlive()).as("stderr reader done").isFalse();
            return process.exitValue();
        }

        String stdout() throws IOException {
            return Files.readString(stdoutFile);
        }

        /** stdout and stderr; complete once {@link #await} returned. */
        String output() throws IOException {
            return stdout() + stderr;
        }
    }
}
