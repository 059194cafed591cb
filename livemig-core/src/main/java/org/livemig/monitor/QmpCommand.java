package org.livemig.monitor;

import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.regex.Pattern;

/**
 * One QMP command: QEMU's name, the declared arguments, whether it may run out of band
 * ({@code exec-oob}, QEMU's {@code allow-oob}), and its handler.
 *
 * <pre>{@code
 * server.register(QmpCommand.builder("migrate-incoming")
 *         .arg("uri", QmpType.STR)
 *         .handler(args -> { incoming.start(args.get("uri").stringValue()); return null; })
 *         .build());
 * }</pre>
 */
public record QmpCommand(String name, QmpType.Struct args, boolean allowOob, QmpHandler handler) {
    private static final Pattern NAME = Pattern.compile("[A-Za-z][A-Za-z0-9_+.-]*");

    public QmpCommand {
        Objects.requireNonNull(name, "name");
        if (!NAME.matcher(name).matches()) {
            throw new IllegalArgumentException("not a QMP command name: '" + name + "'");
        }
        Objects.requireNonNull(args, "args");
        Objects.requireNonNull(handler, "handler");
    }

    public static Builder builder(String name) {
        return new Builder(name);
    }

    /** Collects the declaration of one command. */
    public static final class Builder {
        private final String name;
        private final List<QmpType.Member> members = new ArrayList<>();
        private boolean allowOob;
        private QmpHandler handler;

        private Builder(String name) {
            this.name = name;
        }

        /** A required argument. */
        public Builder arg(String argName, QmpType type) {
            members.add(QmpType.member(argName, type));
            return this;
        }

        /** An optional argument. */
        public Builder optionalArg(String argName, QmpType type) {
            members.add(QmpType.optional(argName, type));
            return this;
        }

        /** The command may be sent with {@code exec-oob}: it then runs on qmp-io, without the BQL. */
        public Builder allowOob() {
            this.allowOob = true;
            return this;
        }

        public Builder handler(QmpHandler commandHandler) {
            this.handler = commandHandler;
            return this;
        }

        public QmpCommand build() {
            return new QmpCommand(name, new QmpType.Struct(members), allowOob, handler);
        }
    }
}
