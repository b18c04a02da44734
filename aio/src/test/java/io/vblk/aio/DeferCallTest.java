package io.vblk.aio;

import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class DeferCallTest {
    private final DeferCall dc = DeferCall.current();
    private final List<String> ran = new ArrayList<>();
    private final DeferCall.Fn<String> record = ran::add;

    @Test
    void samePairRunsOnceAtOutermostEnd() {
        dc.begin();
        dc.defer(record, "a");
        dc.defer(record, "a");
        dc.begin();
        dc.defer(record, "b");
        dc.end();
        assertThat(ran).isEmpty();
        dc.end();
        assertThat(ran).containsExactly("a", "b");
        assertThat(dc.coalescedCount()).isGreaterThanOrEqualTo(1);
    }

    @Test
    void deferOutsideASectionRunsAtOnce() {
        dc.defer(record, "now");
        assertThat(ran).containsExactly("now");
    }

    @Test
    void deferredFunctionOpeningASectionRunsItsOwnEntriesAtThatEnd() {
        // The shape of seed 000's cycle: a deferred function begins and ends a section of its own.
        DeferCall.Fn<String> nested = s -> {
            ran.add(s);
            dc.begin();
            dc.defer(record, s + "-inner");
            dc.end();
        };
        dc.begin();
        dc.defer(nested, "outer");
        dc.end();
        assertThat(ran).containsExactly("outer", "outer-inner");
        assertThat(dc.nesting()).isZero();
    }

    @Test
    void endWithoutBeginFails() {
        assertThatThrownBy(dc::end).isInstanceOf(IllegalStateException.class);
    }

    @Test
    void anotherThreadCannotUseIt() throws Exception {
        Throwable[] err = new Throwable[1];
        Thread t = new Thread(() -> {
            try {
                dc.begin();
            } catch (Throwable e) {
                err[0] = e;
            }
        });
        t.start();
        t.join(5000);
        assertThat(err[0]).isInstanceOf(IllegalStateException.class);
    }
}
