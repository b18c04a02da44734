package io.vblk.virtio.device;

/**
 * Any thread: constants.
 *
 * <p>The bits of the device status field (virtio 1.2 section 2.1). vblk reports
 * {@link #DEVICE_NEEDS_RESET} through {@link VirtioDevice#needsReset()}; the transport maps it to
 * its own status register or message.
 */
public final class DeviceStatus {
    /** 2.1: the guest OS has found the device. */
    public static final int ACKNOWLEDGE = 1;
    /** 2.1: the guest OS knows how to drive the device. */
    public static final int DRIVER = 2;
    /** 2.1: the driver is set up and ready to drive the device. */
    public static final int DRIVER_OK = 4;
    /** 2.1: feature negotiation is complete. */
    public static final int FEATURES_OK = 8;
    /** 2.1: the device hit an error it cannot recover from; 2.1.2: set it on such errors. */
    public static final int DEVICE_NEEDS_RESET = 64;
    /** 2.1: the driver gave up on the device. */
    public static final int FAILED = 128;

    private DeviceStatus() {
    }
}
