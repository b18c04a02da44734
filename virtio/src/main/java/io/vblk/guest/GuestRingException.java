package io.vblk.guest;

/**
 * Any thread.
 *
 * <p>The device broke the virtqueue rules as the guest sees them (a used element naming a chain
 * that is not in flight, a used index running ahead of what was posted). A real guest would mark
 * the device broken; the harness fails the run with this message.
 */
public final class GuestRingException extends RuntimeException {
    public GuestRingException(String message) {
        super(message);
    }
}
