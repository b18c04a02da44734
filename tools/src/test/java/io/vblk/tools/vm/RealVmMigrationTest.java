package io.vblk.tools.vm;

import io.vblk.aio.testing.Components;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Live migration of a real VM with a vblk disk (scripts/vm/migrate.sh): a Debian guest under
 * qemu-system-x86_64 (TCG, shared memfd RAM, vhost-user-blk-pci) runs fio passes with crc32c
 * verification while it is migrated five times, back and forth, between two QEMU processes on
 * this host (QMP {@code migrate} to a QEMU started with {@code -incoming}), each connected to its
 * own {@code vblk serve} on the same image. Every migration must complete, the guest must go on on
 * each destination (a verified pass finishes there) and end with rc 0 and no verify error, and
 * each daemon's log must show dirty logging switched on and off and the hand-over (GET_VRING_BASE).
 */
@Tag("vm")
class RealVmMigrationTest {
    private static final Path ROOT = Path.of(System.getProperty("user.dir")).getParent();

    @Test
    @Timeout(value = 30, unit = TimeUnit.MINUTES)
    void aGuestRunningVerifiedFioIsMigratedFiveTimesBetweenTwoDaemons() throws Exception {
        RealVmTest.setup();
        String out = RealVmTest.run(List.of(ROOT.resolve("scripts/vm/migrate.sh").toString(),
                "--exec", RealVmTest.serveCommand(), "--vblk", RealVmTest.vblkCommand(), "--rounds", "5",
                "--timeout", "1500"), 28, "migrate");

        Matcher round = Pattern.compile("VBLK-MIGRATE round=(\\d+) from=(a|b) to=(a|b) status=completed").matcher(out);
        int rounds = 0;
        while (round.find()) {
            rounds++;
            assertThat(round.group(2)).as("round " + round.group(1)).isNotEqualTo(round.group(3));
        }
        assertThat(rounds).as("completed migrations").isEqualTo(5);
        assertThat(out).contains("VBLK-MIGRATE result=pass rounds=5 ", " verify_errors=0 ");
        Matcher iters = Pattern.compile("VBLK-MIGRATE result=pass rounds=5 iterations=(\\d+)").matcher(out);
        assertThat(iters.find()).isTrue();
        assertThat(Integer.parseInt(iters.group(1))).as("verified fio passes").isGreaterThanOrEqualTo(6);
        assertThat(out).contains("VBLK-VM step name=migrate rc=0", "VBLK-VM done rc=0");
        // Daemon a was the source of rounds 1, 3 and 5; daemon b of rounds 2 and 4.
        for (String d : List.of("a", "b")) {
            Matcher m = Pattern.compile("VBLK-MIGRATE daemon=" + d + " log_on=(\\d+) log_off=(\\d+) hand_overs=(\\d+)")
                    .matcher(out);
            assertThat(m.find()).as("daemon " + d + " summary").isTrue();
            int min = d.equals("a") ? 3 : 2;
            assertThat(Integer.parseInt(m.group(1))).as(d + ": dirty logging on").isGreaterThanOrEqualTo(min);
            assertThat(Integer.parseInt(m.group(2))).as(d + ": dirty logging off").isGreaterThanOrEqualTo(min);
            assertThat(Integer.parseInt(m.group(3))).as(d + ": hand-overs").isGreaterThanOrEqualTo(min);
        }
    }
}
