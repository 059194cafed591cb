package org.livemig.cli;

import java.util.Map;
import tools.jackson.databind.node.ObjectNode;

/**
 * One side of a demo migration, driven the way a user drives QEMU: set capabilities and
 * parameters, start migrate-incoming or migrate, poll query-migrate. Implemented in-process
 * (calls into the migration package) and over QMP (a child {@code livemig run} process).
 */
interface DemoSide extends AutoCloseable {
    void setCapabilities(Map<String, Boolean> caps) throws Exception;

    void setParameters(ObjectNode params) throws Exception;

    /** migrate-incoming; returns the URI the source should connect to (a tcp port 0 resolved). */
    String migrateIncoming(String uri) throws Exception;

    void migrate(String uri) throws Exception;

    ObjectNode queryMigrate() throws Exception;

    /** Run state name (query-status). */
    String status() throws Exception;

    /** Fingerprint of the stopped machine (RAM hashes, device digests, A-B check). */
    default ObjectNode fingerprint() throws Exception {
        return fingerprint(false);
    }

    /** As {@link #fingerprint()}, with per-page hashes and the pages written here since a postcopy start when {@code pages}. */
    ObjectNode fingerprint(boolean pages) throws Exception;

    /**
     * Waits for the end of the outgoing migration's first precopy pass (MIGRATION_PASS 2: as
     * QEMU's, pass 1 is the sync at setup); false when {@code timeout} passed or the migration
     * ended first.
     */
    boolean awaitFirstPass(java.time.Duration timeout) throws Exception;

    /** migrate-start-postcopy. */
    void startPostcopy() throws Exception;

    /** stop. */
    void stop() throws Exception;

    void cont() throws Exception;

    void cancel() throws Exception;

    /** migrate-pause (out-of-band): breaks an active postcopy's channel, as a network failure would. */
    void pausePostcopy() throws Exception;

    /** migrate-recover (out-of-band) on a paused postcopy destination; returns the URI to resume to. */
    String recover(String uri) throws Exception;

    /** migrate with resume: true on a paused postcopy source. */
    void resume(String uri) throws Exception;

    @Override
    void close() throws Exception;
}
