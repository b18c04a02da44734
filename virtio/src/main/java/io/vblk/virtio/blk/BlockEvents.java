package io.vblk.virtio.blk;

/**
 * Home thread: the device's control context calls it (the main loop in {@code vblk serve}).
 *
 * <p>Where a virtio-blk device sends its events. Today one: {@link #blockIoError}, QEMU's
 * {@code BLOCK_IO_ERROR}, sent for every request the driver failed (whatever the action, as QEMU).
 * {@link #LOG} writes a log line; a monitor (QMP) implements this to deliver the events to its
 * clients. Counting is the device's ({@link BlkDevice#ioErrorCount}).
 */
@FunctionalInterface
public interface BlockEvents {
    /** A request failed and {@code e.action()} was taken. */
    void blockIoError(BlockIoError e);

    /** The default sink: one log line per event. */
    BlockEvents LOG = new BlockEvents() {
        private static final System.Logger L = System.getLogger(BlockEvents.class.getName());

        @Override
        public void blockIoError(BlockIoError e) {
            L.log(e.action() == BlockErrorAction.STOP ? System.Logger.Level.WARNING : System.Logger.Level.INFO,
                    () -> "BLOCK_IO_ERROR device=" + e.device() + " node-name=" + e.nodeName() + " operation="
                            + e.operation() + " action=" + e.action().spelling() + " nospace=" + e.nospace()
                            + " reason=" + e.reason());
        }
    };
}
