package org.livemig.security;

import java.util.List;
import java.util.Objects;

/**
 * QEMU's {@code authz-list}: rules tried in order, the first whose {@code match} fits the
 * identity decides ({@code allow} or {@code deny}); none fitting, the default {@code policy}
 * (deny unless set). A rule's {@code format} is {@code exact} (the default) or {@code glob}
 * ({@code *}, {@code ?} and {@code [...]} as fnmatch without flags: {@code *} crosses any
 * character, {@code /} and {@code ,} included).
 */
public record AuthzList(String id, Policy policy, List<Rule> rules) implements Authorization {
    public static final String TYPE = "authz-list";

    /** QEMU's QAuthZListPolicy. */
    public enum Policy {
        DENY, ALLOW;

        public String qemuName() {
            return name().toLowerCase(java.util.Locale.ROOT);
        }
    }

    /** QEMU's QAuthZListFormat. */
    public enum Format {
        EXACT, GLOB;

        public String qemuName() {
            return name().toLowerCase(java.util.Locale.ROOT);
        }
    }

    /** One rule. */
    public record Rule(String match, Policy policy, Format format) {
        public Rule {
            Objects.requireNonNull(match, "match");
            Objects.requireNonNull(policy, "policy");
            Objects.requireNonNull(format, "format");
        }

        boolean matches(String identity) {
            return format == Format.EXACT ? match.equals(identity) : glob(match, identity);
        }
    }

    public AuthzList {
        Objects.requireNonNull(id, "id");
        Objects.requireNonNull(policy, "policy");
        rules = List.copyOf(rules);
    }

    @Override
    public String type() {
        return TYPE;
    }

    @Override
    public boolean isAllowed(String identity) {
        for (Rule r : rules) {
            if (r.matches(identity)) {
                return r.policy() == Policy.ALLOW;
            }
        }
        return policy == Policy.ALLOW;
    }

    /** fnmatch(pattern, s, 0): '*' and '?' match any character including '/'. */
    static boolean glob(String pattern, String s) {
        return glob(pattern, 0, s, 0);
    }

    private static boolean glob(String p, int pi, String s, int si) {
        while (pi < p.length()) {
            char c = p.charAt(pi);
            switch (c) {
                case '*' -> {
                    for (int k = si; k <= s.length(); k++) {
                        if (glob(p, pi + 1, s, k)) {
                            return true;
                        }
                    }
                    return false;
                }
                case '?' -> {
                    if (si >= s.length()) {
                        return false;
                    }
                    pi++;
                    si++;
                }
                case '[' -> {
                    int end = p.indexOf(']', pi + 2);
                    if (end < 0 || si >= s.length()) {
                        if (si < s.length() && s.charAt(si) == '[') {
                            pi++;
                            si++;
                            continue;
                        }
                        return false;
                    }
                    if (!inClass(p.substring(pi + 1, end), s.charAt(si))) {
                        return false;
                    }
                    pi = end + 1;
                    si++;
                }
                case '\\' -> {
                    if (pi + 1 < p.length()) {
                        pi++;
                    }
                    if (si >= s.length() || s.charAt(si) != p.charAt(pi)) {
                        return false;
                    }
                    pi++;
                    si++;
                }
                default -> {
                    if (si >= s.length() || s.charAt(si) != c) {
                        return false;
                    }
                    pi++;
                    si++;
                }
            }
        }
        return si == s.length();
    }

    private static boolean inClass(String set, char ch) {
        boolean negate = !set.isEmpty() && (set.charAt(0) == '!' || set.charAt(0) == '^');
        String body = negate ? set.substring(1) : set;
        boolean hit = false;
        for (int i = 0; i < body.length(); i++) {
            if (i + 2 < body.length() && body.charAt(i + 1) == '-') {
                hit |= ch >= body.charAt(i) && ch <= body.charAt(i + 2);
                i += 2;
            } else {
                hit |= ch == body.charAt(i);
            }
        }
        return hit != negate;
    }

}
