/// Quoting for SQL identifiers and literals that come from configuration, not from users' data.
///
/// Values always travel as query parameters; names (tables, slots, publications) cannot, so they are quoted here.
public enum SQLIdentifier {
    /// `name` as a double-quoted identifier: `a"b` becomes `"a""b"`.
    public static func quote(_ name: String) -> String {
        "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// A possibly schema-qualified name, `schema.table` or `table`, with each part quoted.
    ///
    /// The split is on the first unquoted dot, so `"my.schema".t` and `public."odd.name"` keep their dots.
    public static func quoteQualified(_ name: QualifiedName) -> String {
        (name.schema.map { quote($0) + "." } ?? "") + quote(name.name)
    }

    /// `value` as a single-quoted SQL literal (`'` doubled); for replication commands, which take no parameters.
    public static func literal(_ value: String) -> String {
        "'" + value.replacingOccurrences(of: "'", with: "''") + "'"
    }
}

/// A table name with an optional schema.
public struct QualifiedName: Hashable, Sendable, CustomStringConvertible {
    /// The schema, or `nil` for the search path's.
    public var schema: String?
    /// The table name.
    public var name: String

    /// Creates a name.
    public init(schema: String?, name: String) {
        self.schema = schema
        self.name = name
    }

    /// Parses `schema.table`, `table`, or either part double-quoted (`"Odd.Schema"."Table"`).
    ///
    /// Unquoted parts are folded to lower case, as PostgreSQL does. Returns `nil` for an empty part, a stray quote,
    /// or more than two parts.
    public init?(parsing text: String) {
        var parts: [String] = []
        var current = ""
        var quoted = false, wasQuoted = false
        var characters = Array(text)[...]
        while let character = characters.popFirst() {
            if quoted {
                if character == "\"" {
                    if characters.first == "\"" { current.append("\""); characters.removeFirst() } else { quoted = false }
                } else {
                    current.append(character)
                }
            } else if character == "\"" {
                guard current.isEmpty, !wasQuoted else { return nil }
                quoted = true
                wasQuoted = true
            } else if character == "." {
                guard !current.isEmpty else { return nil }
                parts.append(current)
                current = ""
                wasQuoted = false
            } else {
                guard !wasQuoted, !character.isWhitespace else { return nil }
                current.append(Character(character.lowercased()))
            }
        }
        guard !quoted, !current.isEmpty else { return nil }
        parts.append(current)
        switch parts.count {
        case 1: self.init(schema: nil, name: parts[0])
        case 2: self.init(schema: parts[0], name: parts[1])
        default: return nil
        }
    }

    /// The quoted SQL form.
    public var description: String { SQLIdentifier.quoteQualified(self) }
}
