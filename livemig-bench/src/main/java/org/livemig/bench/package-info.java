/** Benchmarks: JMH micro-benchmarks and the end-to-end drivers behind {@code livemig bench}. */
package org.livemig.bench;
