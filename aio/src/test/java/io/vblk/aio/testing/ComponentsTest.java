package io.vblk.aio.testing;

import io.vblk.aio.testing.Components.Component;
import org.junit.jupiter.api.Test;
import org.opentest4j.AssertionFailedError;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.regex.Pattern;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class ComponentsTest {
    private static final Component SH = new Component("sh", "dash");
    private static final Component MISSING = new Component("vblk-no-such-program", "vblk-no-such-package");
    private static final Component MISSING_TOO = new Component("vblk-no-such-tool", "vblk-other-package");

    @Test
    void findsAnInstalledProgram() {
        assertThat(Components.require(SH)).isAbsolute();
        assertThat(Components.require(SH).getFileName()).hasToString("sh");
        assertThat(Files.isExecutable(Components.require(SH))).isTrue();
        assertThat(Components.require(List.of(SH, SH))).hasSize(2);
    }

    @Test
    void aMissingProgramFailsTheTestNamingItsPackageAndTheInstallScript() {
        assertThat(Components.find(MISSING)).isEmpty();
        assertThatThrownBy(() -> Components.require(MISSING))
                .isInstanceOf(AssertionFailedError.class)
                .hasMessageContaining("vblk-no-such-program is not installed")
                .hasMessageContaining("apt-get install vblk-no-such-package")
                .hasMessageContaining(Components.INSTALL_SCRIPT);
    }

    @Test
    void everyMissingProgramIsNamedAtOnce() {
        assertThatThrownBy(() -> Components.require(List.of(SH, MISSING, MISSING_TOO)))
                .isInstanceOf(AssertionFailedError.class)
                .hasMessageContaining("vblk-no-such-program, vblk-no-such-tool are not installed")
                .hasMessageContaining("apt-get install vblk-no-such-package vblk-other-package");
    }

    @Test
    void aComponentIsAProgramNameNotAPath() {
        assertThatThrownBy(() -> new Component("/usr/bin/fio", "fio")).isInstanceOf(IllegalArgumentException.class);
    }

    /** Tests only find components: no test source starts apt-get, apt or dpkg as a command. */
    @Test
    void noTestSourceRunsAPackageManager() throws IOException {
        Pattern command = Pattern.compile("\"(apt-get|apt|dpkg|aptitude)\"");
        for (Path f : TiersTest.testSources()) {
            assertThat(command.matcher(Files.readString(f)).find()).as("%s runs a package manager", f).isFalse();
        }
    }
}
