/**
 * Guest RAM, the leaf of the design: {@link org.livemig.memory.GuestRam} and its
 * {@link org.livemig.memory.RamBlock}s (off-heap {@code MemorySegment}s in 4 KiB pages, mapped
 * and pre-faulted through {@link org.livemig.memory.NativeMemory}), a
 * {@link org.livemig.memory.DirtyBitmap} per block, zero-page detection
 * ({@link org.livemig.memory.ZeroPages}), the C library binding ({@link org.livemig.memory.Libc},
 * FFM) and SCHED_FIFO for chosen threads ({@link org.livemig.memory.ThreadScheduling}).
 * Demand paging for postcopy is {@code memory.postcopy}.
 *
 * <p>Threads: vCPUs write RAM and mark it dirty; migration threads read, fill and harvest it;
 * none of this needs the BQL, and nothing here knows the lock. The memory is shared without
 * locks: dirty bits are set atomically and harvested with a swap, so a page written during a
 * harvest is either sent now or marked for the next pass.
 */
package org.livemig.memory;
