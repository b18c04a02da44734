package io.vblk.virtio.blk;

/**
 * Any thread (immutable).
 *
 * <p>One {@code BLOCK_IO_ERROR} event, with QEMU's fields (qapi/block-core.json): the device
 * (vblk: the export id), the node, the operation ({@code read} for reads, {@code write} for every
 * other request, as QEMU), the action taken, whether the error was ENOSPC, and the reason (the
 * errno's name, e.g. {@code ENOSPC}).
 */
public record BlockIoError(String device, String nodeName, String operation, BlockErrorAction action,
                           boolean nospace, String reason) {
}
