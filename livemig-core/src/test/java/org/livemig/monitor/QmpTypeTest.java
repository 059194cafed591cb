package org.livemig.monitor;

import static org.assertj.core.api.Assertions.assertThatCode;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** Argument validation answers QEMU 7.2's input-visitor texts. */
class QmpTypeTest {
    private static final QmpType.Struct MIGRATE_SET_CAPABILITIES = QmpType.struct(
            QmpType.member("capabilities", QmpType.arrayOf(QmpType.struct(
                    QmpType.member("capability", QmpType.enumOf("MigrationCapability", "xbzrle", "events")),
                    QmpType.member("state", QmpType.BOOL)))));

    private static final QmpType.Struct ARGS = QmpType.struct(
            QmpType.member("uri", QmpType.STR),
            QmpType.optional("detach", QmpType.BOOL),
            QmpType.optional("count", QmpType.INT),
            QmpType.optional("max-bandwidth", QmpType.SIZE),
            QmpType.optional("threads", QmpType.UINT8),
            QmpType.optional("delay", QmpType.UINT32),
            QmpType.optional("ratio", QmpType.NUMBER),
            QmpType.optional("tls-creds", QmpType.STR_OR_NULL),
            QmpType.optional("opts", QmpType.struct(QmpType.member("inner", QmpType.STR))),
            QmpType.optional("anything", QmpType.ANY));

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', quoteCharacter = '`', value = {
        "{}|Parameter 'uri' is missing",
        "{\"uri\": 1}|Invalid parameter type for 'uri', expected: string",
        "{\"uri\": null}|Invalid parameter type for 'uri', expected: string",
        "{\"uri\": \"x\", \"foo\": 1}|Parameter 'foo' is unexpected",
        "{\"uri\": \"x\", \"detach\": \"yes\"}|Invalid parameter type for 'detach', expected: boolean",
        "{\"uri\": \"x\", \"count\": 1.5}|Invalid parameter type for 'count', expected: integer",
        "{\"uri\": \"x\", \"count\": 18446744073709551615}|Invalid parameter type for 'count', expected: integer",
        "{\"uri\": \"x\", \"max-bandwidth\": \"1G\"}|Parameter 'max-bandwidth' expects uint64",
        "{\"uri\": \"x\", \"max-bandwidth\": 18446744073709551616}|Parameter 'max-bandwidth' expects uint64",
        "{\"uri\": \"x\", \"threads\": 256}|Parameter 'threads' expects uint8_t",
        "{\"uri\": \"x\", \"threads\": -1}|Parameter 'threads' expects uint8_t",
        "{\"uri\": \"x\", \"delay\": 4294967296}|Parameter 'delay' expects uint32_t",
        "{\"uri\": \"x\", \"ratio\": \"1\"}|Invalid parameter type for 'ratio', expected: number",
        "{\"uri\": \"x\", \"tls-creds\": 5}|Invalid parameter type for 'tls-creds', expected: StrOrNull",
        "{\"uri\": \"x\", \"opts\": []}|Invalid parameter type for 'opts', expected: object",
        "{\"uri\": \"x\", \"opts\": {}}|Parameter 'opts.inner' is missing",
        "{\"uri\": \"x\", \"opts\": {\"inner\": \"a\", \"b\": 1}}|Parameter 'opts.b' is unexpected",
    })
    void refusedLikeQemu(String json, String desc) {
        assertThatThrownBy(() -> ARGS.checkArguments(QmpJson.parse(json)))
                .isInstanceOfSatisfying(QmpError.class, e -> {
                    org.assertj.core.api.Assertions.assertThat(e.errorClass()).isEqualTo(QmpErrorClass.GenericError);
                    org.assertj.core.api.Assertions.assertThat(e.desc()).isEqualTo(desc);
                });
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', quoteCharacter = '`', value = {
        "{\"uri\": \"x\"}",
        "{\"uri\": \"x\", \"detach\": true, \"count\": -5, \"max-bandwidth\": 18446744073709551615}",
        "{\"uri\": \"x\", \"max-bandwidth\": -1, \"threads\": 255, \"delay\": 4294967295, \"ratio\": 3}",
        "{\"uri\": \"x\", \"tls-creds\": null, \"opts\": {\"inner\": \"\"}, \"anything\": [null, {}]}",
    })
    void acceptedLikeQemu(String json) {
        assertThatCode(() -> ARGS.checkArguments(QmpJson.parse(json))).doesNotThrowAnyException();
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', quoteCharacter = '`', value = {
        "{\"capabilities\": {}}|Invalid parameter type for 'capabilities', expected: array",
        "{\"capabilities\": [1]}|Invalid parameter type for 'capabilities[0]', expected: object",
        "{\"capabilities\": [{\"capability\": \"events\"}]}|Parameter 'capabilities[0].state' is missing",
        "{\"capabilities\": [{\"capability\": \"events\", \"state\": true}, {\"capability\": 3, \"state\": true}]}|Invalid parameter type for 'capabilities[1].capability', expected: string",
        "{\"capabilities\": [{\"capability\": \"bogus\", \"state\": true}]}|Parameter 'capability' does not accept value 'bogus'",
        "{\"capabilities\": [{\"capability\": \"events\", \"state\": true, \"x\": 1}]}|Parameter 'capabilities[0].x' is unexpected",
    })
    void nestedNamesAsQemu(String json, String desc) {
        assertThatThrownBy(() -> MIGRATE_SET_CAPABILITIES.checkArguments(QmpJson.parse(json)))
                .isInstanceOf(QmpError.class).hasMessage(desc);
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', quoteCharacter = '`', value = {
        "[\"oob\", \"nope\"]|Parameter 'null' does not accept value 'nope'",
        "\"oob\"|Invalid parameter type for 'enable', expected: array",
    })
    void enumListElementsHaveNoNameAsInQemu(String enable, String desc) {
        QmpType.Struct caps = QmpType.struct(QmpType.optional("enable",
                QmpType.arrayOf(QmpType.enumOf("QMPCapability", "oob"))));
        assertThatThrownBy(() -> caps.checkArguments(QmpJson.parse("{\"enable\": " + enable + "}")))
                .isInstanceOf(QmpError.class).hasMessage(desc);
    }
}
