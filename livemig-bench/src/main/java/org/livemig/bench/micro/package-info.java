/**
 * JMH micro-benchmarks of what the page path and the monitor depend on: the zero-page scan, RAM
 * page records, the VMState codec, QMP's JSON. Each benchmark class has a {@code baseline}
 * method measured in the same run (a copy of the same bytes, or Jackson for JSON), and
 * {@code livemig bench micro} prints every result as a ratio to it.
 */
package org.livemig.bench.micro;
