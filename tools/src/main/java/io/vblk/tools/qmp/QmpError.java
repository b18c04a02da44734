package io.vblk.tools.qmp;

/**
 * Any thread: immutable.
 *
 * <p>A command's failure as QMP reports it: {@code {"error": {"class": ..., "desc": ...}}}. The
 * classes are QEMU's (qapi/error.json {@code QapiErrorClass}); most errors are
 * {@code GenericError}, as in QEMU, and the message text follows QEMU's for the same failure.
 */
public final class QmpError extends RuntimeException {
    public static final String GENERIC = "GenericError";
    public static final String COMMAND_NOT_FOUND = "CommandNotFound";
    public static final String DEVICE_NOT_FOUND = "DeviceNotFound";

    private final String errorClass;

    public QmpError(String errorClass, String desc) {
        super(desc, null, false, false);
        this.errorClass = errorClass;
    }

    public static QmpError generic(String desc) {
        return new QmpError(GENERIC, desc);
    }

    public String errorClass() {
        return errorClass;
    }
}
