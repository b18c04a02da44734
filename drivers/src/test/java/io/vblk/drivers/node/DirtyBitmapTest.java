package io.vblk.drivers.node;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.ArrayList;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** Any thread (test code). The dirty bitmap: ranges, boundaries, scan, clear, and marks from many threads. */
@Timeout(30)
class DirtyBitmapTest {
    @Test
    void marksEveryChunkARangeTouches() {
        DirtyBitmap b = new DirtyBitmap(1 << 20, 4096);
        assertThat(b.chunks()).isEqualTo(256);
        b.mark(4095, 2); // straddles chunks 0 and 1
        assertThat(b.isDirty(0)).isTrue();
        assertThat(b.isDirty(1)).isTrue();
        assertThat(b.isDirty(2)).isFalse();
        b.mark(63 * 4096, 3 * 4096); // 63, 64, 65: across a word boundary
        assertThat(b.nextDirty(2)).isEqualTo(63);
        assertThat(b.count()).isEqualTo(5);
        b.mark(-5, 10);
        b.mark(1 << 20, 4096);
        b.mark(0, 0);
        assertThat(b.count()).as("nothing outside the node, nothing for empty ranges").isEqualTo(5);
        assertThat(b.testAndClear(64)).isTrue();
        assertThat(b.testAndClear(64)).isFalse();
        assertThat(b.nextDirty(64)).isEqualTo(65);
        assertThat(b.nextDirty(66)).isEqualTo(-1);
    }

    @Test
    void anyDirtyLooksOnlyAtTheChunksARangeTouches() {
        DirtyBitmap b = new DirtyBitmap(1 << 20, 4096); // 256 chunks: four words
        assertThat(b.anyDirty(0, 1 << 20)).isFalse();
        b.mark(70 * 4096, 1); // chunk 70, in the second word
        assertThat(b.anyDirty(70 * 4096 + 4095, 1)).isTrue();
        assertThat(b.anyDirty(69 * 4096, 4096)).isFalse();
        assertThat(b.anyDirty(71 * 4096, 100 * 4096)).isFalse();
        assertThat(b.anyDirty(0, 70 * 4096)).isFalse();
        assertThat(b.anyDirty(0, 70 * 4096 + 1)).isTrue();
        assertThat(b.anyDirty(63 * 4096, 2 * 4096)).isFalse(); // across a word boundary
        b.mark(64 * 4096, 1);
        assertThat(b.anyDirty(63 * 4096, 2 * 4096)).isTrue();
        b.mark(255 * 4096, 1);
        assertThat(b.anyDirty(255 * 4096, 1 << 20)).as("clipped at the end").isTrue();
        assertThat(b.anyDirty(1 << 20, 4096)).as("past the end").isFalse();
        assertThat(b.anyDirty(0, 0)).isFalse();
    }

    @Test
    void theLastChunkMayBeShort() {
        DirtyBitmap b = new DirtyBitmap(10_000, 4096);
        assertThat(b.chunks()).isEqualTo(3);
        assertThat(b.bytesOf(2)).isEqualTo(10_000 - 8192);
        b.markAll();
        assertThat(b.count()).isEqualTo(3);
        assertThat(b.dirtyBytes()).isEqualTo(10_000);
        assertThatThrownBy(() -> new DirtyBitmap(1, 1000)).hasMessageContaining("power of 2");
    }

    @Test
    void marksFromManyThreadsAreNeverLost() throws Exception {
        DirtyBitmap b = new DirtyBitmap(64L << 20, 512);
        List<Thread> ts = new ArrayList<>();
        for (int t = 0; t < 4; t++) {
            int id = t;
            ts.add(Thread.ofPlatform().start(() -> {
                for (long c = id; c < b.chunks(); c += 4) {
                    b.mark(c * 512, 1);
                }
            }));
        }
        for (Thread t : ts) {
            t.join();
        }
        assertThat(b.count()).isEqualTo(b.chunks());
    }
}
