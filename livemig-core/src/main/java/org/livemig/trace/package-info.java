/**
 * JFR event classes for livemig's trace points; record with {@code -XX:StartFlightRecording}.
 * Events are committed from whichever thread reaches the trace point (the migration threads, at
 * the switchover) without the BQL; recording costs nothing when JFR is off.
 */
package org.livemig.trace;
