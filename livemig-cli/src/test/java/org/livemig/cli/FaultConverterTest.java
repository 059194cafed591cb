package org.livemig.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.time.Duration;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.livemig.relay.Fault;
import org.livemig.relay.FaultChannel;
import org.livemig.relay.FaultPoint;

import picocli.CommandLine;

/** The {@code --fault SPEC} grammar: what each spec means, and what is wrong with a bad one. */
class FaultConverterTest {

    @Test
    void eachKindReadsAsItSays() {
        Fault cut = FaultConverter.parse("cut:channel=main,after=1M");
        assertThat(cut).isEqualTo(Fault.cut(FaultChannel.MAIN, FaultPoint.START, 1L << 20).withSpec("cut:channel=main,after=1M"));

        Fault atSection = FaultConverter.parse("cut:at=section:0000:00:02.0/virtio-net,after=12");
        assertThat(atSection.at()).isEqualTo(FaultPoint.section("0000:00:02.0/virtio-net"));
        assertThat(atSection.channel()).isEqualTo(FaultChannel.MAIN);
        assertThat(atSection.after()).isEqualTo(12);

        Fault stall = FaultConverter.parse("stall:channel=return,at=start,after=4K,for=2s");
        assertThat(stall.kind()).isEqualTo(Fault.Kind.STALL);
        assertThat(stall.channel()).isEqualTo(FaultChannel.RETURN);
        assertThat(stall.after()).isEqualTo(4096);
        assertThat(stall.duration()).isEqualTo(Duration.ofSeconds(2));

        Fault rate = FaultConverter.parse("rate:channel=multifd1,bps=10M");
        assertThat(rate.channel()).isEqualTo(FaultChannel.multifd(1));
        assertThat(rate.bytesPerSecond()).isEqualTo(10L << 20);

        Fault delay = FaultConverter.parse("delay:ms=20");
        assertThat(delay.channel()).as("every channel").isNull();
        assertThat(delay.duration()).isEqualTo(Duration.ofMillis(20));
        assertThat(delay.appliesTo(FaultChannel.RETURN)).isTrue();
        assertThat(delay.appliesTo(FaultChannel.multifd(3))).isTrue();
        assertThat(FaultConverter.parse("delay:ms=5,channel=preempt").appliesTo(FaultChannel.MAIN)).isFalse();

        Fault flip = FaultConverter.parse("flip:channel=main,offset=12345");
        assertThat(flip.after()).isEqualTo(12345);
        assertThat(flip.xor()).isEqualTo(0xff);
        assertThat(FaultConverter.parse("flip:after=1,xor=0x01").xor()).isEqualTo(1);

        assertThat(FaultConverter.parse("cut:at=package").at()).isEqualTo(FaultPoint.PACKAGE);
        assertThat(FaultConverter.parse("cut:channel=multifd0,at=sync").at()).isEqualTo(FaultPoint.sync(1));
        assertThat(FaultConverter.parse("stall:channel=multifd0,at=sync:3,for=500ms").at()).isEqualTo(FaultPoint.sync(3));
        assertThat(FaultConverter.parse("cut").toString()).isEqualTo("cut");
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', value = {
        "''| empty fault spec",
        "crash| bad fault 'crash': unknown fault 'crash' (one of cut, stall, rate, delay, flip)",
        "cut:after| bad fault 'cut:after': 'after' is not key=value",
        "cut:bps=1M| bad fault 'cut:bps=1M': cut does not take 'bps' (it takes channel, at, after)",
        "cut:after=1,after=2| bad fault 'cut:after=1,after=2': 'after' is given twice",
        "flip:after=1,offset=2| bad fault 'flip:after=1,offset=2': give after or offset, not both",
        "cut:channel=side| bad fault 'cut:channel=side': unknown channel 'side' (main, return, preempt or multifdN, N from 0)",
        "cut:at=middle| bad fault 'cut:at=middle': unknown point 'middle' (start, section:IDSTR, package or sync[:K])",
        "cut:at=section:| bad fault 'cut:at=section:': at=section: needs an idstr",
        "cut:at=sync:0,channel=multifd0| bad fault 'cut:at=sync:0,channel=multifd0': at=sync:0: the SYNC to wait for is a number from 1",
        "cut:channel=return,at=section:ram| bad fault 'cut:channel=return,at=section:ram': at=section:ram is a point of the main stream, not of channel return",
        "cut:at=sync| bad fault 'cut:at=sync': at=sync is a point of a multifd channel, not of channel main",
        "cut:after=1X| bad fault 'cut:after=1X': after=1X is not a size (N, or N with K, M, G or T)",
        "cut:after=-5| bad fault 'cut:after=-5': after=-5 is not a size",
        "cut:after=99999999999T| bad fault 'cut:after=99999999999T': after=99999999999T is too large",
        "stall| bad fault 'stall': stall needs for=DURATION",
        "stall:for=2| bad fault 'stall:for=2': for=2 is not a duration (N followed by ms or s, e.g. 500ms, 2s)",
        "rate| bad fault 'rate': rate needs bps=SIZE (bytes per second)",
        "rate:bps=0| bad fault 'rate:bps=0': bps=0 is below 1 byte per second",
        "delay| bad fault 'delay': delay needs ms=N (milliseconds)",
        "delay:ms=2s| bad fault 'delay:ms=2s': ms=2s is not a whole number of milliseconds",
        "delay:after=5,ms=1| bad fault 'delay:after=5,ms=1': delay does not take 'after' (it takes channel, ms)",
        "flip:xor=0| bad fault 'flip:xor=0': xor=0 is not a byte that changes anything (0x01 to 0xff)",
        "flip:xor=0x100| bad fault 'flip:xor=0x100': xor=0x100 is not a byte that changes anything",
        "flip:xor=zz| bad fault 'flip:xor=zz': xor=zz is not a byte (0x01 to 0xff, or 1 to 255)",
    })
    void aBadSpecSaysWhatIsWrongInIt(String spec, String message) {
        assertThatThrownBy(() -> FaultConverter.parse(spec == null ? "" : spec))
                .isInstanceOf(IllegalArgumentException.class).hasMessageStartingWith(message);
    }

    private static String[] run(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        CommandLine cl = new CommandLine(new Main());
        cl.setOut(new PrintWriter(out, true));
        cl.setErr(new PrintWriter(err, true));
        int status = cl.execute(args);
        return new String[] {String.valueOf(status), out.toString(), err.toString()};
    }

    @Test
    void theCommandLineRefusesABadFaultWithStatus2NamingIt() {
        String[] r = run("relay", "--listen", "tcp:127.0.0.1:1", "--to", "tcp:127.0.0.1:2", "--fault", "cut:at=sectoin:ram");
        assertThat(r[0]).isEqualTo("2");
        assertThat(r[2]).contains("--fault", "bad fault 'cut:at=sectoin:ram': unknown point 'sectoin:ram'");
    }

    @Test
    void faultsTheRelayCannotCarryOutAreRefusedBeforeListening() {
        String[] r = run("relay", "--listen", "tcp:127.0.0.1:0", "--to", "tcp:127.0.0.1:2", "--fault", "cut:channel=multifd2");
        assertThat(r[0]).isEqualTo("2");
        assertThat(r[2]).contains("livemig relay: --fault cut:channel=multifd2: channel multifd2 is not relayed (--multifd-channels is 0;")
                .doesNotContain("listening");
        r = run("relay", "--listen", "tcp:127.0.0.1:0", "--to", "tcp:127.0.0.1:2", "--idle-timeout", "5", "--fault", "stall:for=5s");
        assertThat(r[0]).isEqualTo("2");
        assertThat(r[2]).contains("a stall of 5000 ms is not shorter than --idle-timeout 5 s");
        r = run("relay", "--listen", "tcp:127.0.0.1:0", "--to", "tcp:127.0.0.1:2", "--fault", "delay:ms=5,channel=preempt");
        assertThat(r[0]).isEqualTo("2");
        assertThat(r[2]).contains("channel preempt is relayed only with --postcopy-preempt");
    }

    @Test
    void theHelpShowsTheGrammar() {
        String[] r = run("relay", "--help");
        assertThat(r[1]).contains("Faults:", "SPEC = KIND[:key=value,...]", "section:IDSTR", "multifdN",
                "--fault cut:at=section:ram,after=1M");
    }
}
