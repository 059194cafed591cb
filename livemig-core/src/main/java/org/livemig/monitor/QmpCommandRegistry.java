package org.livemig.monitor;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The commands a server answers, by name, in registration order. Commands are added by whoever
 * builds the server (the monitor itself knows no machine or migration); registration may happen
 * before or while sessions run.
 *
 * <p>Thread-safe: guarded by its own monitor; lookups see a registration once it returned.
 */
public final class QmpCommandRegistry {
    private final Map<String, QmpCommand> commands = new LinkedHashMap<>();

    /**
     * Adds a command.
     *
     * @throws IllegalArgumentException when a command of that name is already registered
     */
    public synchronized void register(QmpCommand command) {
        QmpCommand previous = commands.putIfAbsent(command.name(), command);
        if (previous != null) {
            throw new IllegalArgumentException("QMP command '" + command.name() + "' is already registered");
        }
    }

    /** Removes a command; true when it was registered. */
    public synchronized boolean unregister(String name) {
        return commands.remove(name) != null;
    }

    /** The command of that name, or null. */
    public synchronized QmpCommand lookup(String name) {
        return commands.get(name);
    }

    /** Names of all registered commands, in registration order. */
    public synchronized List<String> names() {
        return new ArrayList<>(commands.keySet());
    }
}
