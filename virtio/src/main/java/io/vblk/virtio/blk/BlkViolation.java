package io.vblk.virtio.blk;

/**
 * Any thread: constants.
 *
 * <p>Framing errors of a virtio-blk request that leave the device no way to answer it with a status
 * byte; like a broken ring, they put the device into DEVICE_NEEDS_RESET (2.1.2). Everything else
 * wrong with a request gets a status byte instead (5.2.6).
 */
public enum BlkViolation {
    /** 5.2.6: every request starts with the 16-byte type/reserved/sector header. */
    MISSING_HEADER("5.2.6", "request has fewer than 16 device-readable bytes of header"),
    /** 5.2.6: every request ends with a device-writable status byte. */
    MISSING_STATUS("5.2.6", "request has no device-writable status byte");

    private final String section;
    private final String description;

    BlkViolation(String section, String description) {
        this.section = section;
        this.description = description;
    }

    public String section() {
        return section;
    }

    public String description() {
        return description;
    }
}
