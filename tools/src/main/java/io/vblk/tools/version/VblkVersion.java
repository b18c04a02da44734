package io.vblk.tools.version;

import picocli.CommandLine.IVersionProvider;

/**
 * Any thread (immutable).
 *
 * <p>The one version string every {@code vblk} command prints for {@code --version} / {@code -V}:
 * the jar manifest's Implementation-Version when the build wrote one, else the source's.
 */
public final class VblkVersion implements IVersionProvider {
    /** The project's version, as in the poms. */
    static final String SOURCE_VERSION = "0.1.0";

    /** "vblk 0.1.0". */
    public static String line() {
        String v = VblkVersion.class.getPackage().getImplementationVersion();
        return "vblk " + (v == null || v.isBlank() ? SOURCE_VERSION : v);
    }

    @Override
    public String[] getVersion() {
        return new String[] {line()};
    }
}
