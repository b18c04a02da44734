package io.vblk.guest;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;

import static org.assertj.core.api.Assertions.assertThat;

@Timeout(10)
class VerifyPatternTest {

    @Test
    void tellsGoodStaleMisplacedCorruptAndUnwrittenSectorsApart() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buf = arena.allocate(4096, 4096);
            ByteBuffer view = buf.asByteBuffer();
            VerifyPattern p = new VerifyPattern();
            p.fill(buf, view, 4096, 800, 7);
            for (int i = 0; i < 8; i++) {
                assertThat(p.check(buf, view, i * 512, 800 + i, 7)).isEqualTo(VerifyPattern.OK);
            }
            assertThat(p.check(buf, view, 512, 801, 8)).isEqualTo(VerifyPattern.WRONG_GENERATION);
            assertThat(p.check(buf, view, 512, 802, 7)).isEqualTo(VerifyPattern.WRONG_SECTOR);
            buf.set(ValueLayout.JAVA_BYTE, 512 + 300, (byte) (buf.get(ValueLayout.JAVA_BYTE, 512 + 300) ^ 1));
            assertThat(p.check(buf, view, 512, 801, 7)).isEqualTo(VerifyPattern.BAD_CHECKSUM);
            buf.asSlice(1024, 512).fill((byte) 0);
            assertThat(p.check(buf, view, 1024, 802, 7)).isEqualTo(VerifyPattern.BAD_MAGIC);
            // The view's position and limit are left as found.
            assertThat(view.position()).isZero();
            assertThat(view.limit()).isEqualTo(4096);
        }
    }

    @Test
    void differentGenerationsProduceDifferentPayloads() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment a = arena.allocate(512, 512);
            MemorySegment b = arena.allocate(512, 512);
            VerifyPattern p = new VerifyPattern();
            p.fill(a, a.asByteBuffer(), 512, 5, 1);
            p.fill(b, b.asByteBuffer(), 512, 5, 2);
            assertThat(a.asSlice(24).mismatch(b.asSlice(24))).isNotEqualTo(-1L);
        }
    }
}
