package io.vblk.virtio.blk;

import io.vblk.aio.AioContext;
import io.vblk.drivers.BlockIo;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.lang.foreign.Arena;
import java.util.concurrent.atomic.AtomicInteger;

import static org.assertj.core.api.Assertions.assertThat;

/** The in-test RAM driver keeps the channel contract: drain waits for requests it holds. */
@Timeout(20)
class MemDriverTest {
    @Test
    void drainWaitsForHeldRequests() {
        AioContext ctx = AioContext.forCurrentThread("mem-drain");
        try (Arena arena = Arena.ofConfined()) {
            MemDriver drv = new MemDriver(1 << 20);
            drv.mode = MemDriver.Mode.HOLD;
            MemDriver.Channel ch = (MemDriver.Channel) drv.openChannel(ctx);
            AtomicInteger completed = new AtomicInteger();
            AtomicInteger idle = new AtomicInteger();
            BlockIo io = new BlockIo(arena, 1).range(BlockIo.FLUSH, 0, 0, 0, (r, res) -> completed.incrementAndGet());
            ch.submit(io);
            ch.drain(idle::incrementAndGet);
            assertThat(idle).as("still in flight").hasValue(0);
            ch.releaseHeld();
            assertThat(completed).hasValue(1);
            assertThat(idle).hasValue(1);
            ch.drain(idle::incrementAndGet);
            assertThat(idle).as("idle: at once").hasValue(2);
            ch.close();
        } finally {
            ctx.close();
        }
    }
}
