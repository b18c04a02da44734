package io.vblk.tools.serve;

/**
 * Any thread: immutable.
 *
 * <p>A command-line option of {@code vblk serve} is wrong: the message names the option and what it
 * accepts. Start-up stops with it (STYLE rule 10, third tier).
 */
public final class ServeOptionException extends Exception {
    public ServeOptionException(String message) {
        super(message, null, false, false);
    }
}
