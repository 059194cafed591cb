package org.livemig.transport;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

class FaultSpecTest {

    @Test
    void parsesTheCompactFormIntoWhatTheBuilderMakes() {
        FaultSpec parsed = FaultSpec.parse("stall:ms=2000,after=1048576;cut:after=100000;flip:at=5000;throttle:bps=1000000");
        FaultSpec built = FaultSpec.builder()
                .stall(Duration.ofMillis(2000), 1048576)
                .cut(100000)
                .flip(5000)
                .throttle(1000000)
                .build();
        assertThat(parsed).isEqualTo(built);
        assertThat(parsed.toString()).isEqualTo("stall:ms=2000,after=1048576;cut:after=100000;flip:at=5000;throttle:bps=1000000");
    }

    @Test
    void directionsSuffixesCaseAndSpaces() {
        FaultSpec s = FaultSpec.parse(" Stall: ms=5 , after=1M, dir=in ; cut:after=2k,dir=OUT;flip:at=1g,dir=both ");
        assertThat(s.faults()).containsExactly(
                new FaultSpec.Stall(Duration.ofMillis(5), 1 << 20, FaultSpec.Direction.IN),
                new FaultSpec.Cut(2048, FaultSpec.Direction.OUT),
                new FaultSpec.Flip(1L << 30, FaultSpec.Direction.BOTH));
        assertThat(s.toString()).isEqualTo("stall:ms=5,after=1048576,dir=in;cut:after=2048,dir=out;flip:at=1073741824");
        assertThat(FaultSpec.parse(s.toString())).isEqualTo(s);
    }

    @Test
    void namedPointsParseAndPrintBack() {
        FaultSpec s = FaultSpec.parse("stall:point=device,ms=3000;cut:point=Complete");
        assertThat(s.faults()).containsExactly(new FaultSpec.StallAt("device", Duration.ofMillis(3000)),
                new FaultSpec.CutAt("complete"));
        assertThat(s).isEqualTo(FaultSpec.builder().stallAt("device", Duration.ofSeconds(3)).cutAt("complete").build());
        assertThat(s.toString()).isEqualTo("stall:point=device,ms=3000;cut:point=complete");
        assertThat(FaultSpec.parse(s.toString())).isEqualTo(s);
        assertThatThrownBy(() -> FaultSpec.parse("cut:point=nowhere")).hasMessage("bad fault spec 'cut:point=nowhere':"
                + " cut: unknown point 'nowhere' (expected setup, device, complete, loaded, recover)");
        assertThatThrownBy(() -> FaultSpec.parse("cut:point=setup,after=5")).hasMessageContaining("unknown key 'after'");
        assertThatThrownBy(() -> FaultSpec.parse("stall:point=setup")).hasMessageContaining("stall: missing 'ms'");
    }

    @ParameterizedTest
    @ValueSource(strings = {"", "  ", "none", "NONE"})
    void emptyMeansNoFault(String spec) {
        assertThat(FaultSpec.parse(spec)).isEqualTo(FaultSpec.NONE);
        assertThat(FaultSpec.parse(spec).isEmpty()).isTrue();
        assertThat(FaultSpec.NONE.toString()).isEmpty();
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', textBlock = """
            boom:after=1              | bad fault spec 'boom:after=1': unknown fault 'boom' (expected stall, cut, flip, throttle)
            cut                       | cut: missing 'after'
            cut:after=                | cut: bad number '' for 'after'
            cut:after=-5              | cut: bad number '-5' for 'after'
            cut:after=12x             | cut: bad number '12x' for 'after'
            cut:after=99999999999g    | cut: number '99999999999g' for 'after' is too large
            cut:after=1,after=2       | cut: 'after' given twice
            cut:at=1                  | cut: unknown key 'at' (expected after, dir)
            cut:after=1,dir=up        | cut: bad dir 'up' (expected in, out, both)
            stall:after=1             | stall: missing 'ms'
            stall:ms=1k,after=1       | stall: bad number '1k' for 'ms'
            flip:5000                 | flip: '5000' is not key=value
            throttle:bps=0            | throttle: bps must be > 0
            cut:after=1;;flip:at=2    | empty fault between ';'
            """)
    void badSpecsSayWhatIsWrong(String spec, String message) {
        assertThatThrownBy(() -> FaultSpec.parse(spec))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageStartingWith("bad fault spec '" + spec + "': ")
                .hasMessageContaining(message);
    }

    @Test
    void valuesCheckTheirRanges() {
        assertThatThrownBy(() -> FaultSpec.builder().cut(-1)).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> FaultSpec.builder().throttle(0)).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> FaultSpec.builder().stall(Duration.ofMillis(-1), 0)).isInstanceOf(IllegalArgumentException.class);
    }
}
