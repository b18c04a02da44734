package io.vblk.virtio.blk;

import io.vblk.drivers.BlockDriver;
import io.vblk.virtio.queue.VirtioFeatures;

import static io.vblk.virtio.queue.VirtioFeatures.bit;

/**
 * Any thread: pure functions of the device's configuration and its driver's fixed facts.
 *
 * <p>What a virtio-blk device offers (virtio 1.2 section 5.2.3) and, once the driver has chosen,
 * which commands its queues serve: the one place that ties a command to its feature bit and to
 * the block driver being able to run it.
 */
final class FeatureOffer {
    private FeatureOffer() {
    }

    /** The device feature bits offered for a device on {@code driver}. */
    static long offered(BlkDeviceConfig cfg, BlockDriver driver, boolean readOnly) {
        long f = bit(VirtioFeatures.VERSION_1) | bit(VirtioFeatures.RING_INDIRECT_DESC)
                | bit(VirtioFeatures.RING_EVENT_IDX) | bit(VirtioFeatures.RING_PACKED)
                // 2.7.9 / 2.8.20: buffers used in the order made available (the queues hold completions)
                | bit(VirtioFeatures.IN_ORDER)
                | bit(BlkFeatures.SEG_MAX) | bit(BlkFeatures.BLK_SIZE) | bit(BlkFeatures.TOPOLOGY)
                // 5.2.5.2: "Devices SHOULD always offer VIRTIO_BLK_F_FLUSH, and MUST offer it if
                // they offer VIRTIO_BLK_F_CONFIG_WCE."
                | bit(BlkFeatures.FLUSH) | bit(BlkFeatures.CONFIG_WCE) | bit(BlkFeatures.MQ)
                | bit(BlkFeatures.LIFETIME); // 5.2.6: read from sysfs at queue start, "undefined" when unknown
        if (readOnly) {
            f |= bit(BlkFeatures.RO);
        } else {
            if (cfg.discard && driver.supportsDiscard()) {
                f |= bit(BlkFeatures.DISCARD);
            }
            if (cfg.writeZeroes && driver.supportsWriteZeroes()) {
                f |= bit(BlkFeatures.WRITE_ZEROES);
            }
            // Offered only where the driver really erases (BlockDriver.supportsSecureErase says how);
            // elsewhere the command is unknown to the driver and answered UNSUPP (5.2.6).
            if (cfg.secureErase && driver.supportsSecureErase()) {
                f |= bit(BlkFeatures.SECURE_ERASE);
            }
        }
        return f;
    }

    /** The request parser of a queue started with the negotiated {@code features}. */
    static BlkRequestParser parser(long features, long capacitySectors, int blkSize, boolean readOnly,
                                   BlockDriver driver, BlkDeviceConfig cfg, io.vblk.drivers.IoCompletion completion) {
        return new BlkRequestParser(capacitySectors, blkSize, readOnly,
                VirtioFeatures.has(features, BlkFeatures.DISCARD), VirtioFeatures.has(features, BlkFeatures.WRITE_ZEROES),
                VirtioFeatures.has(features, BlkFeatures.SECURE_ERASE), driver.supportsDiscard(),
                VirtioFeatures.has(features, BlkFeatures.LIFETIME) ? driver.lifetime() : null, cfg, completion);
    }
}
