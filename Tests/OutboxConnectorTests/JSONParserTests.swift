import OutboxConnector
import Testing

@Suite struct JSONParserTests {
    static func parse(_ text: String) throws(JSONParser.Failure) -> JSONValue {
        try JSONParser.parse(Array(text.utf8))
    }

    static func failure(_ bytes: [UInt8]) -> JSONParser.Failure? {
        do {
            _ = try JSONParser.parse(bytes)
            return nil
        } catch {
            return error
        }
    }

    static func failure(_ text: String) -> JSONParser.Failure? { failure(Array(text.utf8)) }

    /// Every member and element is located at its key (its first byte, for an element), lines from 1, columns in
    /// scalars: the same positions a syntax error gives.
    @Test func parseLocatedGivesEveryPathsLineAndColumn() throws {
        let text = "{\n  \"naïve\": {\"a\": [1,\n    {\"b\": true}]},\n  \"c\": null}"
        let (value, locations) = try JSONParser.parseLocated(Array(text.utf8))
        #expect(value == (try Self.parse(text)))
        let found = locations.mapValues { "\($0.line):\($0.column)" }
        #expect(found == ["$": "1:1", "$.naïve": "2:3", "$.naïve.a": "2:13", "$.naïve.a[0]": "2:19",
                          "$.naïve.a[1]": "3:5", "$.naïve.a[1].b": "3:6", "$.c": "4:3"], "\(found)")
    }

    @Test func scalarsAndContainers() throws {
        #expect(try Self.parse(" null ") == .null)
        #expect(try Self.parse("true") == .bool(true))
        #expect(try Self.parse("\t\r\nfalse\n") == .bool(false))
        #expect(try Self.parse("[]") == .array([]))
        #expect(try Self.parse("{}") == .object([]))
        #expect(try Self.parse(#"[1, "a", [true], {"k": null}]"#)
                == .array([.number("1"), .string("a"), .array([.bool(true)]), .object([.init(key: "k", value: .null)])]))
        #expect(try Self.parse("\u{FEFF}{}") == .object([]), "a leading byte order mark is ignored")
    }

    /// `1` and `true` stay apart (Foundation's NSNumber blurs them on Linux).
    @Test func aNumberIsNotABoolean() throws {
        #expect(try Self.parse("1") == .number("1"))
        #expect(try Self.parse("1") != .bool(true))
        #expect(try Self.parse("0").kind == "a number" && Self.parse("false").kind == "a boolean")
    }

    @Test func objectsKeepTheTextsOrder() throws {
        let value = try Self.parse(#"{"z": 1, "name": 2, "a": 3, "topic": 4}"#)
        #expect(value.members.map(\.key) == ["z", "name", "a", "topic"])
        #expect(value["a"] == .number("3") && value["missing"] == nil)
    }

    @Test(arguments: [
        ("0", 0.0), ("-0", 0.0), ("12", 12.0), ("-1.5", -1.5), ("1e3", 1000.0), ("2E+2", 200.0), ("25e-2", 0.25),
        ("0.5", 0.5), ("1e308", 1e308), ("1e400", Double.infinity),
    ])
    func numbersKeepTheirLiteral(text: String, value: Double) throws {
        let number = try Self.parse(text)
        #expect(number == .number(text))
        #expect(number.doubleValue == value)
    }

    @Test(arguments: [
        (#""plain""#, "plain"),
        (#""\" \\ \/ \b \f \n \r \t""#, "\" \\ / \u{08} \u{0C} \n \r \t"),
        (#""\u0041\u00e9\u20AC""#, "Aé€"),
        (#""\uD83D\uDE00""#, "😀"),
        (#""\ud834\udd1e clef""#, "𝄞 clef"),
        ("\"é€😀\"", "é€😀"),
        (#""\u0000""#, "\u{0}"),
    ])
    func stringsResolveEveryEscape(text: String, value: String) throws {
        #expect(try Self.parse(text) == .string(value))
    }

    @Test(arguments: [
        ("", 1, 1, "expected a value"),
        ("{", 1, 2, "expected a key in double quotes, found the end of the file"),
        (#"{"a" 1}"#, 1, 6, "expected ':' after the key, found '1'"),
        ("{\"a\": 1,\n \"b\": 2,}", 2, 9, "expected a key in double quotes, found '}'"),
        ("[1,\n2\n3]", 3, 1, "expected ',' or ']' after an element of the list, found '3'"),
        (#"{"a": 1 "b": 2}"#, 1, 9, "expected ',' or '}' after a member of the object, found '\"'"),
        ("[1, 2] x", 1, 8, "expected the end of the document after the top-level value, found 'x'"),
        ("{} {}", 1, 4, "expected the end of the document"),
        ("[tru]", 1, 2, "expected a value (an object, list, string, number, true, false or null), found 't'"),
        ("[nul", 1, 2, "expected a value"),
        ("'a'", 1, 1, "found '''"),
        ("01", 1, 1, "a number must not start with 0 followed by digits"),
        ("-", 1, 2, "expected a digit after '-', found the end of the file"),
        ("1.", 1, 3, "expected a digit after the decimal point"),
        (".5", 1, 1, "expected a value"),
        ("1e", 1, 3, "expected a digit after the exponent"),
        ("+1", 1, 1, "expected a value"),
        ("[NaN]", 1, 2, "expected a value"),
        ("\"abc", 1, 5, "expected '\"' closing the string that starts at line 1, column 1, found the end of the file"),
        ("\"a\nb\"", 1, 3, "control character 0x0A in a string"),
        (#""\x""#, 1, 3, "expected an escape"),
        (#""\u12G4""#, 1, 6, "expected four hexadecimal digits after \u{5C}u, found 'G'"),
        (#""\uDE00""#, 1, 2, "\u{5C}uDE00 is the second half of a UTF-16 surrogate pair without a first half"),
        (#""\uD83D""#, 1, 8, "\u{5C}uD83D is the first half of a UTF-16 surrogate pair; expected \u{5C}uDC00…\u{5C}uDFFF after it, found '\"'"),
        (#""\uD83D\u0041""#, 1, 8, "found \u{5C}u0041"),
        ("\"é\" x", 1, 5, "found 'x'"),
    ])
    func errorsSayWhereAndWhatWasExpected(text: String, line: Int, column: Int, message: String) throws {
        let failure = try #require(Self.failure(text), "\(text) was accepted")
        #expect(failure.message.contains(message), "\(failure)")
        #expect(failure.line == line && failure.column == column, "\(failure)")
        #expect(failure.path == nil)
    }

    @Test(arguments: [
        [0x22, 0xFF, 0x22] as [UInt8],  // never valid
        [0x22, 0x80, 0x22],             // a stray continuation byte
        [0x22, 0xC0, 0xAF, 0x22],       // overlong '/'
        [0x22, 0xE0, 0x80, 0xAF, 0x22], // overlong, three bytes
        [0x22, 0xED, 0xA0, 0x80, 0x22], // an encoded surrogate
        [0x22, 0xF4, 0x90, 0x80, 0x80, 0x22], // beyond U+10FFFF
        [0x22, 0xE2, 0x82, 0x22],       // truncated €
        [0x22, 0xE2, 0x82],             // truncated at the end of the file
    ])
    func invalidUTF8IsRefused(bytes: [UInt8]) throws {
        let failure = try #require(Self.failure(bytes))
        #expect(failure.message.contains("does not start valid UTF-8"), "\(failure)")
        #expect(failure.column == 2)
    }

    @Test func nestingIsLimitedWithAnError() throws {
        let deepest = String(repeating: "[", count: JSONParser.maximumDepth) + String(repeating: "]", count: JSONParser.maximumDepth)
        #expect(throws: Never.self) { try Self.parse(deepest) }
        let tooDeep = String(repeating: #"{"a":"#, count: JSONParser.maximumDepth) + "[1]" + String(repeating: "}", count: JSONParser.maximumDepth)
        let failure = try #require(Self.failure(tooDeep))
        #expect(failure.message == "more than 64 nested lists and objects; a connector file needs a few levels")
        #expect(failure.column == 5 * JSONParser.maximumDepth + 1)
        let hostile = try #require(Self.failure(String(repeating: "[", count: 1_000_000)))
        #expect(hostile.column == JSONParser.maximumDepth + 1)
    }

    @Test func aRepeatedKeyIsRefusedWithItsPath() throws {
        let failure = try #require(Self.failure("{\"outbox\": {\"headers\": [{\"a\": 1},\n {\"name\": 1, \"b\": 2, \"name\": 3}]}}"))
        #expect(failure.path == "$.outbox.headers[1].name")
        #expect(failure.message == "duplicate key; each key may appear once in an object")
        #expect(failure.line == 2 && failure.column == 22)
        #expect(try Self.parse(#"[{"a": 1}, {"a": 2}]"#).kind == "a list", "the same key in two objects is fine")
    }
}
