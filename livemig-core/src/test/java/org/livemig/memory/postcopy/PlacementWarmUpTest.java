package org.livemig.memory.postcopy;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.List;
import org.junit.jupiter.api.Test;

/** The postcopy placement warm-up: both backends, every page placed once per cycle, faults served. */
class PlacementWarmUpTest {
    @Test
    void everyBackendPlacesEachPageOncePerCycleAndServesFaults() throws Exception {
        int cycles = 3;
        List<PlacementWarmUp.Result> results = PlacementWarmUp.run(cycles * PlacementWarmUp.BLOCK_PAGES, () -> false);
        boolean userfaultfd = PostcopyBackend.userfaultfdAvailability().available();
        assertThat(results).extracting(PlacementWarmUp.Result::backend)
                .containsExactlyElementsOf(userfaultfd ? List.of("checked", "userfaultfd") : List.of("checked"));
        for (PlacementWarmUp.Result r : results) {
            assertThat(r.placed()).as(r.backend()).isEqualTo((long) cycles * PlacementWarmUp.BLOCK_PAGES);
            assertThat(r.faults()).as("%s: the guest's first fault in each cycle at least", r.backend())
                    .isGreaterThanOrEqualTo(cycles);
            // A served page is met again by the background (refused: it is there already).
            assertThat(r.refused()).as(r.backend()).isEqualTo(r.faults());
        }
    }

    @Test
    void itStopsWhenAskedTo() throws Exception {
        List<PlacementWarmUp.Result> results = PlacementWarmUp.run(1 << 20, () -> true);
        assertThat(results).allSatisfy(r -> assertThat(r.placed() + r.refused() + r.faults()).isZero());
    }
}
