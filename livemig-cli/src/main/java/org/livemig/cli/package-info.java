/**
 * The {@code livemig} command (picocli): {@code demo}, {@code run} (one machine process driven
 * over QMP, as {@code qemu-system}), {@code qmp}, {@code snapshot}, {@code analyze}, {@code relay}
 * and {@code bench}. Commands parse options and call the library; they hold no migration logic.
 *
 * <p>Threads: each command runs on the process's {@code main}; {@code run} hands it to the
 * machine's main loop (which holds the BQL while it runs monitor commands) and waits for the
 * machine to quit. Nothing here takes the BQL itself.
 */
package org.livemig.cli;
