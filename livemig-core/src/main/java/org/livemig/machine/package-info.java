/**
 * The machine that migrates: one guest ({@link org.livemig.machine.Machine}) with its RAM, its
 * devices described by VMState ({@link org.livemig.machine.Devices}), vCPU threads running a
 * {@link org.livemig.machine.Workload}, a {@link org.livemig.machine.MainLoop} of bottom halves and
 * timers, its run state, and its big lock ({@link org.livemig.machine.Bql}, one per machine);
 * and {@link org.livemig.machine.Accelerator}s ({@code --device}), devices with a large memory the
 * guest's work writes, which migrate iteratively.
 *
 * <p>Threads: {@code main} runs bottom halves, timers and monitor commands with the BQL held;
 * {@code CPU n/livemig} threads run the workload without it and park at safe points when the
 * machine stops them; an accelerator's {@code accel/NAME} engine writes its memory without it
 * while the guest runs and stops with the vCPUs. Run-state changes, {@code vmStop}/{@code vmStart}, device state and CPU
 * synchronisation ({@code runOnCpu}) need the BQL and assert it; guest RAM does not.
 * {@link org.livemig.machine.Bql#withHeld} and {@code withoutHeld} are the seed's
 * {@code WITH_BQL_HELD}/{@code WITHOUT_BQL_HELD}. Knows nothing of migration or the monitor.
 */
package org.livemig.machine;
