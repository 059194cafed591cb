package org.livemig.monitor;

import java.math.BigInteger;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

import tools.jackson.databind.JsonNode;
import tools.jackson.databind.node.ArrayNode;
import tools.jackson.databind.node.JsonNodeFactory;
import tools.jackson.databind.node.ObjectNode;

/**
 * QMP's input framing and JSON grammar as QEMU 7.2 implements them: a byte-level lexer, a
 * streamer that cuts the token stream into messages by counting braces and brackets (not by
 * lines), and a parser that turns one message into a Jackson tree.
 *
 * <p>Accepted like QEMU: single-quoted strings and {@code \'}, integers beyond int64 up to
 * uint64, any number of messages per line and messages across lines. Errors carry QEMU's texts
 * ("JSON parse error, stray '@'", "JSON parse error, expecting value", ...); after a lexical error
 * input is skipped up to the next control or structural character, as QEMU does.
 *
 * <p>Bounded: a message may hold at most {@code maxMessageBytes} of token text,
 * {@code maxTokens} tokens and {@value #MAX_NESTING} levels of nesting. Exceeding one reports
 * QEMU's "JSON token size limit exceeded" (or count, nesting) and, unlike QEMU, which
 * resynchronises at the next token, discards input up to the next newline, so a client that
 * streams one endless line costs no memory.
 *
 * <p>Not thread-safe: owned by the thread that reads the connection.
 */
final class JsonStreamParser {
    /** Receives each complete message or error, in input order. */
    interface Sink {
        void value(JsonNode value);

        void error(String desc);

        /** True to stop {@link #feed(ByteBuffer)} before the next byte (the reader is suspended). */
        default boolean paused() {
            return false;
        }
    }

    /** QEMU's MAX_NESTING. */
    static final int MAX_NESTING = 1024;
    /** Default bound on the token text of one message (QEMU allows 64 MiB; QMP input is small). */
    static final int DEFAULT_MAX_MESSAGE_BYTES = 1 << 20;
    /** Default bound on the tokens of one message. */
    static final int DEFAULT_MAX_TOKENS = 1 << 16;

    private static final JsonNodeFactory NODES = JsonNodeFactory.instance;
    private static final BigInteger UINT64_MAX = BigInteger.ONE.shiftLeft(64).subtract(BigInteger.ONE);

    // Token types.
    private static final byte T_LCURLY = 1;
    private static final byte T_RCURLY = 2;
    private static final byte T_LSQUARE = 3;
    private static final byte T_RSQUARE = 4;
    private static final byte T_COLON = 5;
    private static final byte T_COMMA = 6;
    private static final byte T_INTEGER = 7;
    private static final byte T_FLOAT = 8;
    private static final byte T_KEYWORD = 9;
    private static final byte T_STRING = 10;

    private enum State {
        START, KEYWORD, DQ, DQ_ESCAPE, SQ, SQ_ESCAPE, SIGN, ZERO, DIGITS, MANTISSA, MANTISSA_DIGITS,
        EXP_E, EXP_SIGN, EXP_DIGITS, RECOVERY, SKIP_LINE
    }

    private final Sink sink;
    private final int maxMessageBytes;
    private final int maxTokens;

    // Lexer: the token being read.
    private State state = State.START;
    private byte[] token = new byte[64];
    private int tokenLen;

    // Streamer: the tokens of the message being collected, their text packed in one array.
    private byte[] types = new byte[16];
    private int[] ends = new int[16];
    private byte[] text = new byte[256];
    private int tokenCount;
    private int textLen;
    private int braces;
    private int brackets;

    JsonStreamParser(Sink sink) {
        this(sink, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_MAX_TOKENS);
    }

    JsonStreamParser(Sink sink, int maxMessageBytes, int maxTokens) {
        this.sink = sink;
        this.maxMessageBytes = maxMessageBytes;
        this.maxTokens = maxTokens;
    }

    /** Feeds bytes until the buffer is empty or the sink pauses; unread bytes stay in {@code buf}. */
    void feed(ByteBuffer buf) {
        while (buf.hasRemaining() && !sink.paused()) {
            if (state == State.SKIP_LINE) {
                skipToNewline(buf);
            } else {
                feed(buf.get() & 0xFF);
            }
        }
    }

    /** Discards input up to and including the next newline (after a limit error). */
    private void skipToNewline(ByteBuffer buf) {
        while (buf.hasRemaining()) {
            if (buf.get() == '\n') {
                state = State.START;
                return;
            }
        }
    }

    void feed(byte[] bytes, int off, int len) {
        for (int i = off; i < off + len; i++) {
            feed(bytes[i] & 0xFF);
        }
    }

    /** Ends the input: a pending number or keyword is emitted (QEMU's flush at end of input). */
    void flush() {
        switch (state) {
            case KEYWORD -> endToken(T_KEYWORD);
            case ZERO, DIGITS -> endToken(T_INTEGER);
            case MANTISSA_DIGITS, EXP_DIGITS -> endToken(T_FLOAT);
            default -> { }
        }
        state = State.START;
        tokenLen = 0;
        if (tokenCount > 0) {
            parseAndEmit();
        }
    }

    /** True when no message is partly read (tests: the parser holds nothing). */
    boolean idle() {
        return tokenCount == 0 && tokenLen == 0 && (state == State.START || state == State.SKIP_LINE);
    }

    private void feed(int b) {
        while (true) {
            switch (state) {
                case START -> {
                    switch (b) {
                        case '"' -> begin(b, State.DQ);
                        case '\'' -> begin(b, State.SQ);
                        case '0' -> begin(b, State.ZERO);
                        case '-' -> begin(b, State.SIGN);
                        case '{' -> single(b, T_LCURLY);
                        case '}' -> single(b, T_RCURLY);
                        case '[' -> single(b, T_LSQUARE);
                        case ']' -> single(b, T_RSQUARE);
                        case ':' -> single(b, T_COLON);
                        case ',' -> single(b, T_COMMA);
                        case ' ', '\t', '\r', '\n' -> { }
                        default -> {
                            if (b >= '1' && b <= '9') {
                                begin(b, State.DIGITS);
                            } else if (b >= 'a' && b <= 'z') {
                                begin(b, State.KEYWORD);
                            } else {
                                lexError(b);
                            }
                        }
                    }
                    return;
                }
                case KEYWORD -> {
                    if (b >= 'a' && b <= 'z') {
                        append(b);
                        return;
                    }
                    endToken(T_KEYWORD);
                }
                case DQ, SQ -> {
                    if (b < 0x20 || b > 0xFD) {
                        lexError(b);
                    } else if (b == '\\') {
                        advance(b, state == State.DQ ? State.DQ_ESCAPE : State.SQ_ESCAPE);
                    } else if (b == (state == State.DQ ? '"' : '\'')) {
                        if (append(b)) {
                            endToken(T_STRING);
                        }
                    } else {
                        append(b);
                    }
                    return;
                }
                case DQ_ESCAPE, SQ_ESCAPE -> {
                    if (b < 0x20 || b > 0xFD) {
                        lexError(b);
                    } else {
                        advance(b, state == State.DQ_ESCAPE ? State.DQ : State.SQ);
                    }
                    return;
                }
                case SIGN -> {
                    if (b == '0') {
                        advance(b, State.ZERO);
                    } else if (b >= '1' && b <= '9') {
                        advance(b, State.DIGITS);
                    } else {
                        lexError(b);
                    }
                    return;
                }
                case ZERO -> {
                    if (b >= '0' && b <= '9') {
                        lexError(b);
                        return;
                    } else if (b == '.') {
                        advance(b, State.MANTISSA);
                        return;
                    }
                    endToken(T_INTEGER);
                }
                case DIGITS -> {
                    if (b >= '0' && b <= '9') {
                        append(b);
                        return;
                    } else if (b == 'e' || b == 'E') {
                        advance(b, State.EXP_E);
                        return;
                    } else if (b == '.') {
                        advance(b, State.MANTISSA);
                        return;
                    }
                    endToken(T_INTEGER);
                }
                case MANTISSA -> {
                    if (b >= '0' && b <= '9') {
                        advance(b, State.MANTISSA_DIGITS);
                    } else {
                        lexError(b);
                    }
                    return;
                }
                case MANTISSA_DIGITS -> {
                    if (b >= '0' && b <= '9') {
                        append(b);
                        return;
                    } else if (b == 'e' || b == 'E') {
                        advance(b, State.EXP_E);
                        return;
                    }
                    endToken(T_FLOAT);
                }
                case EXP_E -> {
                    if (b == '+' || b == '-') {
                        advance(b, State.EXP_SIGN);
                    } else if (b >= '0' && b <= '9') {
                        advance(b, State.EXP_DIGITS);
                    } else {
                        lexError(b);
                    }
                    return;
                }
                case EXP_SIGN -> {
                    if (b >= '0' && b <= '9') {
                        advance(b, State.EXP_DIGITS);
                    } else {
                        lexError(b);
                    }
                    return;
                }
                case EXP_DIGITS -> {
                    if (b >= '0' && b <= '9') {
                        append(b);
                        return;
                    }
                    endToken(T_FLOAT);
                }
                case RECOVERY -> {
                    boolean resync = (b < 0x20 && b != '\t') || b >= 0xFE
                            || b == '[' || b == ']' || b == '{' || b == '}' || b == ':' || b == ',';
                    if (!resync) {
                        return;
                    }
                    state = State.START;
                }
                case SKIP_LINE -> {
                    if (b == '\n') {
                        state = State.START;
                    }
                    return;
                }
            }
        }
    }

    private void begin(int b, State next) {
        tokenLen = 0;
        advance(b, next);
    }

    private void single(int b, byte type) {
        tokenLen = 0;
        if (append(b)) {
            endToken(type);
        }
    }

    /** Adds a byte to the current token; false when that broke the size limit (now skipping). */
    private boolean append(int b) {
        if ((long) textLen + tokenLen + 1 > maxMessageBytes) {
            limitExceeded("JSON token size limit exceeded");
            return false;
        }
        if (tokenLen == token.length) {
            token = Arrays.copyOf(token, token.length * 2);
        }
        token[tokenLen++] = (byte) b;
        return true;
    }

    /** Appends and moves to {@code next} unless the append broke the size limit. */
    private void advance(int b, State next) {
        if (append(b)) {
            state = next;
        }
    }

    private void lexError(int b) {
        byte[] stray = Arrays.copyOf(token, tokenLen + 1);
        stray[tokenLen] = (byte) b;
        tokenLen = 0;
        state = State.RECOVERY;
        resetMessage();
        sink.error("JSON parse error, stray '" + new String(stray, StandardCharsets.UTF_8) + "'");
    }

    private void limitExceeded(String desc) {
        tokenLen = 0;
        state = State.SKIP_LINE;
        resetMessage();
        sink.error(desc);
    }

    /** The lexer completed a token: hand it to the streamer. */
    private void endToken(byte type) {
        state = State.START;
        int len = tokenLen;
        tokenLen = 0;
        switch (type) {
            case T_LCURLY -> braces++;
            case T_RCURLY -> braces--;
            case T_LSQUARE -> brackets++;
            case T_RSQUARE -> brackets--;
            default -> { }
        }
        if ((long) textLen + len + 1 > maxMessageBytes) {
            limitExceeded("JSON token size limit exceeded");
            return;
        }
        if (tokenCount + 1 > maxTokens) {
            limitExceeded("JSON token count limit exceeded");
            return;
        }
        if (braces + brackets > MAX_NESTING) {
            limitExceeded("JSON nesting depth limit exceeded");
            return;
        }
        storeToken(type, len);
        if ((braces > 0 || brackets > 0) && braces >= 0 && brackets >= 0) {
            return;
        }
        parseAndEmit();
    }

    private void storeToken(byte type, int len) {
        if (tokenCount == types.length) {
            types = Arrays.copyOf(types, tokenCount * 2);
            ends = Arrays.copyOf(ends, tokenCount * 2);
        }
        if (textLen + len > text.length) {
            text = Arrays.copyOf(text, Math.max(text.length * 2, textLen + len));
        }
        System.arraycopy(token, 0, text, textLen, len);
        textLen += len;
        types[tokenCount] = type;
        ends[tokenCount] = textLen;
        tokenCount++;
    }

    private void resetMessage() {
        tokenCount = 0;
        textLen = 0;
        braces = 0;
        brackets = 0;
        if (types.length > 1024) {
            types = new byte[16];
            ends = new int[16];
        }
        if (text.length > 64 * 1024) {
            text = new byte[256];
        }
        if (token.length > 64 * 1024) {
            token = new byte[64];
        }
    }

    private void parseAndEmit() {
        Parser p = new Parser();
        JsonNode value = p.parseValue();
        String error = p.error;
        assert error != null || p.next == tokenCount : "tokens left after a complete value";
        resetMessage();
        if (error != null) {
            sink.error("JSON parse error, " + error);
        } else {
            sink.value(value);
        }
    }

    /** Recursive descent over the collected tokens; keeps the first error, as QEMU does. */
    private final class Parser {
        int next;
        String error;

        private void fail(String message) {
            if (error == null) {
                error = message;
            }
        }

        private int start(int i) {
            return i == 0 ? 0 : ends[i - 1];
        }

        private String tokenText(int i) {
            return new String(text, start(i), ends[i] - start(i), StandardCharsets.UTF_8);
        }

        private boolean hasNext() {
            return next < tokenCount;
        }

        JsonNode parseValue() {
            if (!hasNext()) {
                fail("premature EOI");
                return null;
            }
            return switch (types[next]) {
                case T_LCURLY -> parseObject();
                case T_LSQUARE -> parseArray();
                case T_INTEGER -> parseInteger(next++);
                case T_FLOAT -> NODES.numberNode(Double.parseDouble(tokenText(next++)));
                case T_STRING -> parseString(next++);
                case T_KEYWORD -> parseKeyword(next++);
                default -> {
                    fail("expecting value");
                    yield null;
                }
            };
        }

        private JsonNode parseKeyword(int i) {
            String word = tokenText(i);
            return switch (word) {
                case "true" -> NODES.booleanNode(true);
                case "false" -> NODES.booleanNode(false);
                case "null" -> NODES.nullNode();
                default -> {
                    fail("invalid keyword '" + word + "'");
                    yield null;
                }
            };
        }

        private JsonNode parseInteger(int i) {
            String digits = tokenText(i);
            try {
                return NODES.numberNode(Long.parseLong(digits));
            } catch (NumberFormatException e) {
                if (digits.charAt(0) != '-') {
                    BigInteger big = new BigInteger(digits);
                    if (big.compareTo(UINT64_MAX) <= 0) {
                        return NODES.numberNode(big);
                    }
                }
                return NODES.numberNode(Double.parseDouble(digits));
            }
        }

        private ObjectNode parseObject() {
            next++; // '{'
            ObjectNode obj = NODES.objectNode();
            if (!hasNext()) {
                fail("premature EOI");
                return null;
            }
            if (types[next] == T_RCURLY) {
                next++;
                return obj;
            }
            if (!parsePair(obj)) {
                return null;
            }
            while (true) {
                if (!hasNext()) {
                    fail("premature EOI");
                    return null;
                }
                byte t = types[next++];
                if (t == T_RCURLY) {
                    return obj;
                }
                if (t != T_COMMA) {
                    fail("expected separator in dict");
                    return null;
                }
                if (!parsePair(obj)) {
                    return null;
                }
            }
        }

        private boolean parsePair(ObjectNode obj) {
            if (!hasNext()) {
                fail("premature EOI");
                return false;
            }
            JsonNode key = parseValue();
            if (key == null || !key.isString()) {
                fail("key is not a string in object");
                return false;
            }
            if (!hasNext()) {
                fail("premature EOI");
                return false;
            }
            if (types[next++] != T_COLON) {
                fail("missing : in object pair");
                return false;
            }
            JsonNode value = parseValue();
            if (value == null) {
                fail("Missing value in dict");
                return false;
            }
            if (obj.has(key.stringValue())) {
                fail("duplicate key");
                return false;
            }
            obj.set(key.stringValue(), value);
            return true;
        }

        private ArrayNode parseArray() {
            next++; // '['
            ArrayNode list = NODES.arrayNode();
            if (!hasNext()) {
                fail("premature EOI");
                return null;
            }
            if (types[next] == T_RSQUARE) {
                next++;
                return list;
            }
            while (true) {
                JsonNode element = parseValue();
                if (element == null) {
                    fail("expecting value");
                    return null;
                }
                list.add(element);
                if (!hasNext()) {
                    fail("premature EOI");
                    return null;
                }
                byte t = types[next++];
                if (t == T_RSQUARE) {
                    return list;
                }
                if (t != T_COMMA) {
                    fail("expected separator in list");
                    return null;
                }
            }
        }

        /** Decodes a quoted string token: QEMU's escapes, modified UTF-8, no noncharacters. */
        private JsonNode parseString(int i) {
            int pos = start(i);
            int end = ends[i] - 1; // closing quote
            pos++; // opening quote
            boolean plain = true;
            for (int k = pos; k < end && plain; k++) {
                plain = text[k] != '\\' && text[k] >= 0; // no escape, ASCII
            }
            if (plain) { // the usual case: the bytes are the chars, no builder needed
                return NODES.stringNode(new String(text, pos, end - pos, StandardCharsets.ISO_8859_1));
            }
            StringBuilder sb = new StringBuilder(end - pos);
            while (pos < end) {
                int b = text[pos] & 0xFF;
                if (b == '\\') {
                    int escStart = pos;
                    pos++;
                    int c = text[pos++] & 0xFF;
                    switch (c) {
                        case '"' -> sb.append('"');
                        case '\'' -> sb.append('\'');
                        case '\\' -> sb.append('\\');
                        case '/' -> sb.append('/');
                        case 'b' -> sb.append('\b');
                        case 'f' -> sb.append('\f');
                        case 'n' -> sb.append('\n');
                        case 'r' -> sb.append('\r');
                        case 't' -> sb.append('\t');
                        case 'u' -> {
                            int cp = hex4(pos, end);
                            pos = Math.min(pos + 4, end);
                            if (cp >= 0xD800 && cp <= 0xDBFF && pos + 1 < end
                                    && text[pos] == '\\' && text[pos + 1] == 'u') {
                                int low = hex4(pos + 2, end);
                                if (low >= 0xDC00 && low <= 0xDFFF) {
                                    cp = 0x10000 + ((cp & 0x3FF) << 10) + (low & 0x3FF);
                                    pos += 6;
                                } else {
                                    cp = -1;
                                }
                            }
                            if (!validCodepoint(cp)) {
                                fail(new String(text, escStart, pos - escStart, StandardCharsets.UTF_8)
                                        + " is not a valid Unicode character");
                                return null;
                            }
                            sb.appendCodePoint(cp);
                        }
                        default -> {
                            fail("invalid escape sequence in string");
                            return null;
                        }
                    }
                } else if (b < 0x80) {
                    sb.append((char) b);
                    pos++;
                } else {
                    int len = b >= 0xFE || (b & 0x40) == 0 ? 0 : Integer.numberOfLeadingZeros(~(b << 24));
                    int cp = len == 0 ? -1 : b & (0xFF >>> (len + 1));
                    int p = pos + 1;
                    for (int k = 1; cp >= 0 && k < len; k++, p++) {
                        int cont = p < end ? text[p] & 0xFF : 0;
                        if ((cont & 0xC0) != 0x80) {
                            cp = -1;
                        } else {
                            cp = (cp << 6) | (cont & 0x3F);
                        }
                    }
                    int[] minByLen = {0, 0, 0x80, 0x800, 0x10000, 0x200000, 0x4000000};
                    if (cp < 0 || !validCodepoint(cp) || (cp < minByLen[len] && !(cp == 0 && len == 2))) {
                        fail("invalid UTF-8 sequence in string");
                        return null;
                    }
                    sb.appendCodePoint(cp);
                    pos = p;
                }
            }
            return NODES.stringNode(sb.toString());
        }

        private int hex4(int pos, int end) {
            int cp = 0;
            for (int k = 0; k < 4; k++) {
                if (pos + k >= end) {
                    return -1;
                }
                int d = Character.digit(text[pos + k], 16);
                if (d < 0) {
                    return -1;
                }
                cp = (cp << 4) | d;
            }
            return cp;
        }
    }

    /** QEMU's notion of a valid code point: Unicode scalar values other than noncharacters. */
    static boolean validCodepoint(int cp) {
        if (cp < 0 || cp > 0x10FFFF) {
            return false;
        }
        if ((cp >= 0xFDD0 && cp <= 0xFDEF) || (cp & 0xFFFE) == 0xFFFE) {
            return false;
        }
        return cp < 0xD800 || cp > 0xDFFF;
    }
}
