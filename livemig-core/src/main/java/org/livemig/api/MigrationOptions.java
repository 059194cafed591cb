package org.livemig.api;

import java.time.Duration;
import java.util.Collections;
import java.util.EnumSet;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;
import java.util.Set;

/**
 * What a migration is asked to do: capabilities and parameters with QEMU's names and meaning
 * (they go through the same checks as QMP's migrate-set-capabilities and migrate-set-parameters,
 * with QEMU's error texts), and, for a destination, whether its guest starts on arrival.
 *
 * @param capabilities        capabilities turned on (the others are off)
 * @param parameters          QEMU parameter name ({@code max-bandwidth}, {@code downtime-limit},
 *                            {@code multifd-channels}, {@code tls-creds}, ...) to a Long, Integer,
 *                            Boolean or String value
 * @param startGuestOnArrival destination only: run the guest once the migration completes (else it
 *                            waits paused, as QEMU's {@code -S}, to be checked or resumed)
 */
public record MigrationOptions(Set<MigrationCapability> capabilities, Map<String, Object> parameters,
                               boolean startGuestOnArrival) {
    /** No capabilities, QEMU's default parameters, a destination's guest left paused. */
    public static final MigrationOptions DEFAULTS = new MigrationOptions(Set.of(), Map.of(), false);

    public MigrationOptions {
        Objects.requireNonNull(capabilities, "capabilities");
        Objects.requireNonNull(parameters, "parameters");
        capabilities = capabilities.isEmpty() ? Set.of() : Collections.unmodifiableSet(EnumSet.copyOf(capabilities));
        for (Map.Entry<String, Object> e : parameters.entrySet()) {
            Object v = e.getValue();
            if (!(v instanceof Long || v instanceof Integer || v instanceof Boolean || v instanceof String)) {
                throw new IllegalArgumentException("parameter '" + e.getKey() + "' must be a Long, Integer, Boolean or String, not "
                        + (v == null ? "null" : v.getClass().getSimpleName()));
            }
        }
        parameters = Collections.unmodifiableMap(new LinkedHashMap<>(parameters));
    }

    /** These capabilities on as well. */
    public MigrationOptions with(MigrationCapability... caps) {
        EnumSet<MigrationCapability> s = EnumSet.noneOf(MigrationCapability.class);
        s.addAll(capabilities);
        s.addAll(Set.of(caps));
        return new MigrationOptions(s, parameters, startGuestOnArrival);
    }

    /** A parameter by QEMU's name. */
    public MigrationOptions withParameter(String qemuName, Object value) {
        Map<String, Object> m = new LinkedHashMap<>(parameters);
        m.put(qemuName, value);
        return new MigrationOptions(capabilities, m, startGuestOnArrival);
    }

    /** {@code max-bandwidth}: bytes per second on the main channel (QEMU's default is 128 MiB/s). */
    public MigrationOptions withMaxBandwidth(long bytesPerSecond) {
        return withParameter("max-bandwidth", bytesPerSecond);
    }

    /** {@code downtime-limit}: the pause the switchover may cost. */
    public MigrationOptions withDowntimeLimit(Duration limit) {
        return withParameter("downtime-limit", limit.toMillis());
    }

    /** The multifd capability with {@code multifd-channels} channels. */
    public MigrationOptions withMultifdChannels(int channels) {
        return with(MigrationCapability.MULTIFD).withParameter("multifd-channels", channels);
    }

    /** A destination whose guest runs once the migration completes. */
    public MigrationOptions startingGuestOnArrival() {
        return new MigrationOptions(capabilities, parameters, true);
    }
}
