package org.livemig.migration;

/** A child JVM's main for {@link JitDirectivesTest}: installs the directive and prints how, then the directives. */
public final class JitDirectivesProbe {
    private JitDirectivesProbe() {
    }

    public static void main(String[] args) throws Exception {
        JitDirectives.Outcome o = JitDirectives.install();
        System.out.println("outcome " + o);
        if (o != JitDirectives.Outcome.UNAVAILABLE) {
            System.out.println(JitDirectives.print());
        }
    }
}
