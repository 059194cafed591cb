package org.livemig.relay;

import java.nio.channels.WritableByteChannel;
import java.util.ArrayList;
import java.util.List;

/**
 * The faults a relay injects ({@code livemig relay --fault}), and what each did. The relay asks it
 * for a {@link FaultyLink} in front of each direction it forwards; a direction no fault names
 * gets its sink back unchanged, so a plan without faults changes nothing.
 *
 * <p>Thread-safe: links on the relay's threads report what fired here.
 */
public final class FaultPlan {
    /** No faults: the relay forwards everything unchanged. */
    public static final FaultPlan NONE = new FaultPlan(List.of());

    /**
     * What a fault did.
     *
     * @param offset the channel's byte offset where it acted
     * @param what   a sentence for a person, naming the channel, offset and point
     */
    public record Event(Fault fault, FaultChannel channel, long offset, String what) {
        @Override
        public String toString() {
            return "--fault " + fault + ": " + what;
        }
    }

    private final List<Fault> faults;
    private final List<Event> events = new ArrayList<>();
    private final List<FaultyLink> links = new ArrayList<>();

    public FaultPlan(List<Fault> faults) {
        this.faults = List.copyOf(faults);
    }

    public List<Fault> faults() {
        return faults;
    }

    public boolean isEmpty() {
        return faults.isEmpty();
    }

    /** The faults that act on {@code channel}. */
    List<Fault> on(FaultChannel channel) {
        return faults.stream().filter(f -> f.appliesTo(channel)).toList();
    }

    /** Whether a fault on {@code channel} waits for a point the relay must decode to see. */
    boolean needsPoints(FaultChannel channel) {
        return on(channel).stream().anyMatch(f -> f.at().kind() != FaultPoint.Kind.START);
    }

    /**
     * A sink for {@code channel} that injects its faults before writing to {@code sink}, or
     * {@code sink} itself when none applies.
     *
     * @param cut shuts down the connection carrying the channel, on both sides
     */
    WritableByteChannel link(FaultChannel channel, WritableByteChannel sink, Runnable cut) {
        List<Fault> mine = on(channel);
        if (mine.isEmpty()) {
            return sink;
        }
        FaultyLink l = new FaultyLink(this, channel, mine, sink, cut);
        synchronized (links) {
            links.add(l);
        }
        return l;
    }

    void fired(Event e) {
        synchronized (events) {
            events.add(e);
        }
    }

    /** What fired so far, in order. */
    public List<Event> events() {
        synchronized (events) {
            return List.copyOf(events);
        }
    }

    /** The cut that fired, or null. */
    public Event cut() {
        synchronized (events) {
            return events.stream().filter(e -> e.fault().kind() == Fault.Kind.CUT).findFirst().orElse(null);
        }
    }

    /** Faults that never acted (their point or offset never came), for the report. */
    public List<Fault> unfired() {
        List<Fault> left = new ArrayList<>();
        synchronized (events) {
            for (Fault f : faults) {
                if (events.stream().noneMatch(e -> e.fault() == f)) {
                    left.add(f);
                }
            }
        }
        return left;
    }

    /** Stops the links' delay lines. */
    void close() {
        synchronized (links) {
            links.forEach(FaultyLink::close);
        }
    }
}
