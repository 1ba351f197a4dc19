/// Walks a parsed connector file, collecting one problem per bad field.
///
/// Each accessor takes the value found at a JSON path (`nil` when the key is absent), checks its type and content,
/// records a problem naming the path and the fix when it is wrong, and returns the usable value or `nil`.
struct JSONReader {
    enum Pattern {
        /// Slot names: lower-case letters, digits, underscores (PostgreSQL's rule), at most 63.
        case slot
        /// Publication and connector names: letters, digits, `_`, `-`, `.`, at most 63.
        case name
        /// Column names: anything printable but quotes are handled by quoting; at most 63 bytes.
        case column
        /// Kafka topic names: letters, digits, `.`, `_`, `-`, at most 249.
        case topic
    }

    let environment: [String: String]
    var problems: [String] = []
    /// Where each JSON path is in the file (``JSONParser/parseLocated(_:)``), for the problems' line and column.
    var locations: [String: (line: Int, column: Int)] = [:]

    init(environment: [String: String]) {
        self.environment = environment
    }

    /// Records a problem, with the line and column of its path in the file (for a missing key, of the object that
    /// lacks it). A huge key or value is quoted only in part, so one bad file cannot flood a log.
    mutating func problem(_ path: String, _ message: String) {
        problems.append("\(Self.clip(path, 120)): \(Self.clip(message, 400))\(where_(path))")
    }

    /// ` (line L, column C)` for `path`, or ` (in the object at line L, column C)` for its nearest located ancestor;
    /// empty when neither is known (a syntax error says where itself).
    private func where_(_ path: String) -> String {
        if let location = locations[path] { return " (line \(location.line), column \(location.column))" }
        var ancestor = Substring(path)
        while let cut = ancestor.lastIndex(where: { $0 == "." || $0 == "[" }) {
            ancestor = ancestor[..<cut]
            if let location = locations[String(ancestor)] {
                return " (in \(Self.clip(String(ancestor), 120)) at line \(location.line), column \(location.column))"
            }
        }
        return ""
    }

    static func clip(_ text: String, _ limit: Int) -> String {
        text.count <= limit ? text : "\(text.prefix(limit))… (\(text.utf8.count) bytes)"
    }

    /// An object's value (its members with a key subscript), or `nil` with a problem.
    mutating func object(_ value: JSONValue?, at path: String, required: Bool = false) -> JSONValue? {
        guard let value else {
            if required { problem(path, "missing; see connectors/README.md for the fields") }
            return nil
        }
        guard case .object = value else {
            problem(path, "must be an object ({ … }), not \(value.kind)")
            return nil
        }
        return value
    }

    mutating func allowOnly(_ keys: Set<String>, in object: JSONValue, at path: String) {
        for key in object.members.map(\.key).sorted() where !keys.contains(key) {
            problem("\(path).\(key)", "unknown key; the keys here are \(keys.sorted().joined(separator: ", "))")
        }
    }

    mutating func string(_ value: JSONValue?, at path: String, required: Bool = false, pattern: Pattern? = nil,
                         quote: (String) -> String = { $0 }) -> String? {
        guard let value else {
            if required { problem(path, "missing") }
            return nil
        }
        guard case .string(let raw) = value else {
            problem(path, "must be a string, not \(value.kind)")
            return nil
        }
        let text: String
        do {
            text = try EnvironmentSubstitution.substitute(raw, environment: environment, quote: quote)
        } catch {
            problem(path, "environment variable \(error.name) is not set; set it or write ${env:\(error.name):-default}")
            return nil
        }
        if text.isEmpty {
            problem(path, "must not be empty")
            return nil
        }
        if text.utf8.count > 4096 {
            problem(path, "is \(text.utf8.count) bytes long; at most 4096")
            return nil
        }
        if let pattern, let message = Self.check(text, pattern) {
            problem(path, message)
            return nil
        }
        return text
    }

    mutating func stringArray(_ value: JSONValue, at path: String, pattern: Pattern?) -> [String] {
        guard case .array(let elements) = value else {
            problem(path, "must be a list of strings ([\"a\", \"b\"]), not \(value.kind)")
            return []
        }
        return elements.enumerated().compactMap { string($1, at: "\(path)[\($0)]", pattern: pattern) }
    }

    /// A string, or a number or boolean as its text (librdkafka properties are strings; `"linger.ms": 5` is fine).
    mutating func scalarString(_ value: JSONValue, at path: String) -> String? {
        switch value {
        case .bool(let flag): flag ? "true" : "false"
        case .number(let literal): literal
        default: string(value, at: path)
        }
    }

    mutating func bool(_ value: JSONValue?, at path: String) -> Bool? {
        guard let value else { return nil }
        guard case .bool(let flag) = value else {
            problem(path, "must be true or false, not \(value.kind)")
            return nil
        }
        return flag
    }

    mutating func int(_ value: JSONValue?, at path: String, range: ClosedRange<Int>) -> Int? {
        guard let value else { return nil }
        guard case .number(let literal) = value, let number = value.doubleValue, number == number.rounded() else {
            problem(path, "must be a whole number, not \(value.kind)")
            return nil
        }
        guard let int = Int(literal) ?? Int(exactly: number), range.contains(int) else {
            problem(path, "\(literal) is out of range; write a number from \(range.lowerBound) to \(range.upperBound)")
            return nil
        }
        return int
    }

    static func check(_ text: String, _ pattern: Pattern) -> String? {
        func allowed(_ characters: (Unicode.Scalar) -> Bool) -> Bool { text.unicodeScalars.allSatisfy(characters) }
        switch pattern {
        case .slot:
            guard text.utf8.count <= 63, allowed({ ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "_" }) else {
                return "'\(text)' is not a valid slot name; use at most 63 lower-case letters, digits and underscores"
            }
        case .name:
            guard text.utf8.count <= 63, allowed({ $0.properties.isAlphabetic || ("0"..."9").contains($0) || "_-.".unicodeScalars.contains($0) }) else {
                return "'\(text)' is not a valid name; use at most 63 letters, digits, '_', '-' and '.'"
            }
        case .column:
            guard text.utf8.count <= 63, allowed({ !$0.properties.isWhitespace && $0.value >= 32 && $0 != "\"" }) else {
                return "'\(text)' is not a valid column name; use the column's name as in the table (at most 63 bytes, no quotes or spaces)"
            }
        case .topic:
            guard text.utf8.count <= 249, text != ".", text != "..",
                  allowed({ ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || "._-".unicodeScalars.contains($0) }) else {
                return "'\(text)' is not a valid Kafka topic name; use at most 249 letters, digits, '.', '_' and '-'"
            }
        }
        return nil
    }
}
