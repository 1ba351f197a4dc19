/// A strict RFC 8259 JSON parser with no I/O, for connector files.
///
/// It reads bytes (UTF-8, a leading byte order mark ignored) into a ``JSONValue`` that keeps object members in the
/// text's order. It is safe on hostile input: nesting deeper than ``maximumDepth`` is refused before the stack is at
/// risk, a repeated key in one object is refused (in a connector file it is a mistake, and which one wins is
/// undefined), and every error says where (line, column) and what was expected, quoting at most one character.
package struct JSONParser {
    /// Why a text is refused and where.
    package struct Failure: Error, Equatable, Sendable, CustomStringConvertible {
        /// What was expected and what was found.
        package var message: String
        /// The 1-based line of the offending byte.
        package var line: Int
        /// The 1-based column (in Unicode scalars) of the offending byte.
        package var column: Int
        /// For a repeated key, the member's JSON path (`$.outbox.headers.name`); `nil` for a syntax error.
        package var path: String?

        /// `line L, column C: message`.
        package var description: String { "line \(line), column \(column): \(message)" }
    }

    private enum PathComponent {
        case key(String)
        case index(Int)
    }

    /// Arrays and objects nested deeper than this are refused; a connector file needs four levels.
    package static let maximumDepth = 64

    private let bytes: [UInt8]
    private var index: Int
    private var depth = 0
    /// The members and elements being parsed, for naming a repeated key.
    private var path: [PathComponent] = []
    /// With ``parseLocated(_:)``: the byte offset where each value's member key (or element, or the document) starts.
    private var offsets: [(path: String, offset: Int)]?

    private init(_ bytes: [UInt8]) {
        self.bytes = bytes
        index = bytes.starts(with: [0xEF, 0xBB, 0xBF]) ? 3 : 0
    }

    /// Parses one JSON text: a single value with optional whitespace around it.
    ///
    /// - Parameter bytes: The text, UTF-8.
    /// - Throws: ``Failure`` at the first problem.
    package static func parse(_ bytes: some Collection<UInt8>) throws(Failure) -> JSONValue {
        var parser = JSONParser(Array(bytes))
        return try parser.document()
    }

    /// Parses one JSON text like ``parse(_:)``, and tells where each value is: its JSON path (`$`, `$.outbox.topic`,
    /// `$.outbox.headers[0].name`) → the line and column of its key (of the element, for a list's elements), so
    /// that a problem found later in a valid document can say where, as a syntax error does.
    ///
    /// - Throws: ``Failure`` at the first problem.
    package static func parseLocated(_ bytes: some Collection<UInt8>) throws(Failure) -> (value: JSONValue, locations: [String: (line: Int, column: Int)]) {
        var parser = JSONParser(Array(bytes))
        parser.offsets = []
        let value = try parser.document()
        // One pass over the bytes for every position, in offset order.
        var locations: [String: (line: Int, column: Int)] = [:]
        var line = 1, column = 1, cursor = 0
        for (path, offset) in (parser.offsets ?? []).sorted(by: { $0.offset < $1.offset }) {
            while cursor < offset {
                if parser.bytes[cursor] == 0x0A {
                    line += 1
                    column = 1
                } else if parser.bytes[cursor] & 0xC0 != 0x80 {
                    column += 1
                }
                cursor += 1
            }
            locations[path] = (line, column)
        }
        return (value, locations)
    }

    /// Notes that the value at the current path starts at `offset` (for ``parseLocated(_:)``).
    private mutating func locate(_ offset: Int) {
        let rendered = renderedPath()
        offsets?.append((rendered, offset))
    }

    private mutating func document() throws(Failure) -> JSONValue {
        skipWhitespace()
        offsets?.append(("$", index))
        let value = try value()
        skipWhitespace()
        if index < bytes.count {
            throw failure("expected the end of the document after the top-level value, found \(found())")
        }
        return value
    }

    private mutating func value() throws(Failure) -> JSONValue {
        skipWhitespace()
        guard index < bytes.count else { throw failure("expected a value, found the end of the file") }
        switch bytes[index] {
        case UInt8(ascii: "{"): return try object()
        case UInt8(ascii: "["): return try array()
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try number())
        default: throw failure("expected a value (an object, list, string, number, true, false or null), found \(found())")
        }
    }

    private mutating func enterContainer() throws(Failure) {
        depth += 1
        if depth > Self.maximumDepth {
            throw failure("more than \(Self.maximumDepth) nested lists and objects; a connector file needs a few levels")
        }
        index += 1
    }

    private mutating func object() throws(Failure) -> JSONValue {
        try enterContainer()
        var members: [JSONValue.Member] = []
        var keys: Set<String> = []
        skipWhitespace()
        if peek(UInt8(ascii: "}")) {
            index += 1
            depth -= 1
            return .object(members)
        }
        while true {
            skipWhitespace()
            guard peek(UInt8(ascii: "\"")) else { throw failure("expected a key in double quotes, found \(found())") }
            let keyOffset = index
            let key = try string()
            skipWhitespace()
            guard peek(UInt8(ascii: ":")) else { throw failure("expected ':' after the key, found \(found())") }
            index += 1
            path.append(.key(key))
            guard keys.insert(key).inserted else {
                throw failure("duplicate key; each key may appear once in an object", at: keyOffset, path: renderedPath())
            }
            if offsets != nil { locate(keyOffset) }
            members.append(JSONValue.Member(key: key, value: try value()))
            path.removeLast()
            skipWhitespace()
            if peek(UInt8(ascii: ",")) {
                index += 1
            } else if peek(UInt8(ascii: "}")) {
                index += 1
                depth -= 1
                return .object(members)
            } else {
                throw failure("expected ',' or '}' after a member of the object, found \(found())")
            }
        }
    }

    private mutating func array() throws(Failure) -> JSONValue {
        try enterContainer()
        var elements: [JSONValue] = []
        skipWhitespace()
        if peek(UInt8(ascii: "]")) {
            index += 1
            depth -= 1
            return .array(elements)
        }
        while true {
            path.append(.index(elements.count))
            if offsets != nil {
                skipWhitespace()
                locate(index)
            }
            elements.append(try value())
            path.removeLast()
            skipWhitespace()
            if peek(UInt8(ascii: ",")) {
                index += 1
            } else if peek(UInt8(ascii: "]")) {
                index += 1
                depth -= 1
                return .array(elements)
            } else {
                throw failure("expected ',' or ']' after an element of the list, found \(found())")
            }
        }
    }

    /// A string from its opening quote; escapes resolved, UTF-8 validated.
    private mutating func string() throws(Failure) -> String {
        let opening = index
        index += 1
        var utf8: [UInt8] = []
        while true {
            guard index < bytes.count else {
                let (line, column) = position(of: opening)
                throw failure("expected '\"' closing the string that starts at line \(line), column \(column), found the end of the file")
            }
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\""):
                index += 1
                return String(decoding: utf8, as: UTF8.self)
            case UInt8(ascii: "\\"):
                try escape(into: &utf8)
            case 0..<0x20:
                throw failure("control character 0x\(Self.hex(byte)) in a string; write it escaped (\\n, \\t, \\u00XX)")
            case 0x20..<0x80:
                utf8.append(byte)
                index += 1
            default:
                try multiByteScalar(into: &utf8)
            }
        }
    }

    /// One escape sequence from its backslash; a UTF-16 surrogate pair (`\uD83D\uDE00`) makes one scalar.
    private mutating func escape(into utf8: inout [UInt8]) throws(Failure) {
        let backslash = index
        index += 1
        guard index < bytes.count else { throw failure("expected an escape after '\\', found the end of the file") }
        let simple: UInt8? = switch bytes[index] {
        case UInt8(ascii: "\""): UInt8(ascii: "\"")
        case UInt8(ascii: "\\"): UInt8(ascii: "\\")
        case UInt8(ascii: "/"): UInt8(ascii: "/")
        case UInt8(ascii: "b"): 0x08
        case UInt8(ascii: "f"): 0x0C
        case UInt8(ascii: "n"): 0x0A
        case UInt8(ascii: "r"): 0x0D
        case UInt8(ascii: "t"): 0x09
        default: nil
        }
        if let simple {
            utf8.append(simple)
            index += 1
            return
        }
        guard bytes[index] == UInt8(ascii: "u") else {
            throw failure("expected an escape (\\\" \\\\ \\/ \\b \\f \\n \\r \\t or \\uXXXX) after '\\', found \(found())")
        }
        index += 1
        var code = UInt32(try hex4())
        if (0xDC00...0xDFFF).contains(code) {
            throw failure("\\u\(Self.hex(code)) is the second half of a UTF-16 surrogate pair without a first half", at: backslash)
        }
        if (0xD800...0xDBFF).contains(code) {
            guard bytes[index...].starts(with: [UInt8(ascii: "\\"), UInt8(ascii: "u")]) else {
                throw failure("\\u\(Self.hex(code)) is the first half of a UTF-16 surrogate pair; expected \\uDC00…\\uDFFF after it, found \(found())")
            }
            index += 2
            let low = UInt32(try hex4())
            guard (0xDC00...0xDFFF).contains(low) else {
                throw failure("\\u\(Self.hex(code)) is the first half of a UTF-16 surrogate pair; expected \\uDC00…\\uDFFF after it, found \\u\(Self.hex(low))", at: index - 6)
            }
            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
        }
        // Not a surrogate here, so the scalar exists.
        utf8.append(contentsOf: String(Character(Unicode.Scalar(code)!)).utf8)
    }

    private mutating func hex4() throws(Failure) -> UInt16 {
        var code: UInt16 = 0
        for _ in 0..<4 {
            guard index < bytes.count, let digit = Self.hexDigit(bytes[index]) else {
                throw failure("expected four hexadecimal digits after \\u, found \(found())")
            }
            code = code << 4 | UInt16(digit)
            index += 1
        }
        return code
    }

    /// A scalar of two to four bytes, checked: no stray continuation byte, no overlong form, no surrogate, at most U+10FFFF.
    private mutating func multiByteScalar(into utf8: inout [UInt8]) throws(Failure) {
        let lead = bytes[index]
        let (length, range): (Int, ClosedRange<UInt8>) = switch lead {
        case 0xC2...0xDF: (2, 0x80...0xBF)
        case 0xE0: (3, 0xA0...0xBF)
        case 0xED: (3, 0x80...0x9F)
        case 0xE1...0xEF: (3, 0x80...0xBF)
        case 0xF0: (4, 0x90...0xBF)
        case 0xF1...0xF3: (4, 0x80...0xBF)
        case 0xF4: (4, 0x80...0x8F)
        default: (0, 0...0)
        }
        guard length > 0, index + length <= bytes.count, range.contains(bytes[index + 1]),
              bytes[(index + 2)..<(index + length)].allSatisfy({ (0x80...0xBF).contains($0) }) else {
            throw failure("byte 0x\(Self.hex(lead)) does not start valid UTF-8; save the file as UTF-8")
        }
        utf8.append(contentsOf: bytes[index..<(index + length)])
        index += length
    }

    /// A number in RFC 8259's grammar: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`, as its literal text.
    private mutating func number() throws(Failure) -> String {
        let start = index
        if peek(UInt8(ascii: "-")) { index += 1 }
        if peek(UInt8(ascii: "0")) {
            index += 1
            if index < bytes.count, Self.isDigit(bytes[index]) {
                throw failure("a number must not start with 0 followed by digits; write it without the leading 0", at: start)
            }
        } else {
            try digits(after: "'-'")
        }
        if peek(UInt8(ascii: ".")) {
            index += 1
            try digits(after: "the decimal point")
        }
        if peek(UInt8(ascii: "e")) || peek(UInt8(ascii: "E")) {
            index += 1
            if peek(UInt8(ascii: "+")) || peek(UInt8(ascii: "-")) { index += 1 }
            try digits(after: "the exponent")
        }
        return String(decoding: bytes[start..<index], as: UTF8.self)
    }

    private mutating func digits(after what: String) throws(Failure) {
        guard index < bytes.count, Self.isDigit(bytes[index]) else { throw failure("expected a digit after \(what), found \(found())") }
        while index < bytes.count, Self.isDigit(bytes[index]) { index += 1 }
    }

    private mutating func literal(_ word: String) throws(Failure) {
        guard bytes[index...].starts(with: word.utf8) else {
            throw failure("expected a value (an object, list, string, number, true, false or null), found \(found())")
        }
        index += word.utf8.count
    }

    private mutating func skipWhitespace() {
        while index < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[index]) { index += 1 }
    }

    private func peek(_ byte: UInt8) -> Bool {
        index < bytes.count && bytes[index] == byte
    }

    /// The byte at the current position, described in at most a few characters.
    private func found() -> String {
        guard index < bytes.count else { return "the end of the file" }
        let byte = bytes[index]
        return (0x21..<0x7F).contains(byte) ? "'\(Character(Unicode.Scalar(byte)))'" : "byte 0x\(Self.hex(byte))"
    }

    private func failure(_ message: String, at offset: Int? = nil, path: String? = nil) -> Failure {
        let (line, column) = position(of: offset ?? index)
        return Failure(message: message, line: line, column: column, path: path)
    }

    /// Line and column (counting scalars, not bytes) of a byte offset; computed only on failure.
    private func position(of offset: Int) -> (line: Int, column: Int) {
        var line = 1
        var column = 1
        for byte in bytes[..<min(offset, bytes.count)] {
            if byte == 0x0A {
                line += 1
                column = 1
            } else if byte & 0xC0 != 0x80 {
                column += 1
            }
        }
        return (line, column)
    }

    private func renderedPath() -> String {
        path.reduce(into: "$") { text, component in
            switch component {
            case .key(let key): text += ".\(key)"
            case .index(let index): text += "[\(index)]"
            }
        }
    }

    private static func isDigit(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }

    private static func hexDigit(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    private static func hex(_ value: some BinaryInteger) -> String {
        let digits = String(value, radix: 16, uppercase: true)
        return String(repeating: "0", count: max(0, (value is UInt8 ? 2 : 4) - digits.count)) + digits
    }
}
