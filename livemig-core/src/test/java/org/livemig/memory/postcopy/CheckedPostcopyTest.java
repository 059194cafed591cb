package org.livemig.memory.postcopy;

import org.livemig.memory.GuestRam;

import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

class CheckedPostcopyTest extends PostcopyBackendContractTest {
    @Override
    void assumeSupported() {
        // portable
    }

    @Override
    PostcopyBackend create(GuestRam ram) {
        return PostcopyBackend.checked(ram);
    }

    @Override
    String expectedName() {
        return "checked";
    }

    @Test
    void accessorsAreUncheckedUntilListening() {
        // Before LISTEN the destination loads precopy pages into RAM freely: nothing blocks.
        ram.writeLong(block, 0, 1);
        org.assertj.core.api.Assertions.assertThat(ram.readLong(block, 0)).isEqualTo(1);
        assertThat(backend.receivedMap(block).isReceived(0)).isFalse();
    }

    @Test
    void aFaultHandledOnTheGuestThreadIsNotQueued() throws Exception {
        ConcurrentLinkedQueue<String> handledOn = new ConcurrentLinkedQueue<>();
        ConcurrentLinkedQueue<PageFault> handled = new ConcurrentLinkedQueue<>();
        backend.handleFaultsOnGuestThreads(f -> {
            handledOn.add(Thread.currentThread().getName());
            handled.add(f);
            return true;
        });
        backend.startListening();
        CompletableFuture<Long> read = guest("vcpu-3", () -> ram.readLong(block, 5L * PAGE + 16));

        await().atMost(WAIT).until(() -> !handled.isEmpty());
        PageFault f = handled.peek();
        assertThat(f.block()).isSameAs(block);
        assertThat(f.page()).isEqualTo(5);
        assertThat(f.write()).isFalse();
        assertThat(handledOn).containsExactly("vcpu-3");
        assertThat(backend.pollFault(50, TimeUnit.MILLISECONDS)).as("nothing left for mig/dst/fault").isNull();
        assertThat(read).isNotDone();

        backend.placePage(block, 5, pattern(7, 5));
        assertThat(read.get(WAIT.toMillis(), TimeUnit.MILLISECONDS)).isEqualTo(7 + 5 * 1000 + 2);
    }

    @Test
    void aFaultTheGuestThreadDeclinesGoesToTheFaultThread() throws Exception {
        ConcurrentLinkedQueue<PageFault> offered = new ConcurrentLinkedQueue<>();
        backend.handleFaultsOnGuestThreads(f -> {
            offered.add(f);
            return false;
        });
        backend.startListening();
        CompletableFuture<Void> write = guest("vcpu-0", () -> {
            ram.writeLong(other, 3L * PAGE, 42);
            return null;
        });

        PageFault f = awaitFault();
        assertThat(offered).containsExactly(f);
        assertThat(f.page()).isEqualTo(3);
        assertThat(f.write()).isTrue();
        backend.placeZeroPage(other, 3);
        write.get(WAIT.toMillis(), TimeUnit.MILLISECONDS);
        assertThat(ram.readLong(other, 3L * PAGE)).isEqualTo(42);
    }

    @Test
    void theGuestThreadHandlerIsSetBeforeListening() throws Exception {
        backend.startListening();
        assertThatThrownBy(() -> backend.handleFaultsOnGuestThreads(f -> true))
                .isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("LISTENING");
    }
}
