package io.vblk.tools.metrics;

/**
 * Any thread.
 *
 * <p>A bad metrics option: the message names the option and what it accepts; start-up stops with it.
 */
public final class MetricsOptionException extends IllegalArgumentException {
    private static final long serialVersionUID = 1L;

    public MetricsOptionException(String message) {
        super(message);
    }
}
