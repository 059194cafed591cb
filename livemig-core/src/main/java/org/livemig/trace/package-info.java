/** JFR event classes for livemig's trace points; record with {@code -XX:StartFlightRecording}. */
package org.livemig.trace;
