/// A parsed JSON value, as ``JSONParser`` reads it.
///
/// Objects keep their members in the order of the text (a connector's headers are added in file order), and numbers
/// keep their literal text, so that a message can quote what the file says and `1` stays apart from `true`.
package enum JSONValue: Equatable, Sendable {
    /// One member of an object.
    package struct Member: Equatable, Sendable {
        /// The member's key.
        package var key: String
        /// The member's value.
        package var value: JSONValue

        /// A member.
        package init(key: String, value: JSONValue) {
            self.key = key
            self.value = value
        }
    }

    /// `null`.
    case null
    /// `true` or `false`.
    case bool(Bool)
    /// A number, as written in the text (RFC 8259 syntax, e.g. `-1.5e3`).
    case number(String)
    /// A string, escapes resolved.
    case string(String)
    /// An array.
    case array([JSONValue])
    /// An object: its members in the text's order, each key once.
    case object([Member])

    /// The value of an object's member named `key`; `nil` if there is none or this is not an object.
    package subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.first { $0.key == key }?.value
    }

    /// An object's members in the text's order; empty for anything but an object.
    package var members: [Member] {
        guard case .object(let members) = self else { return [] }
        return members
    }

    /// A number's value as the nearest `Double` (`±infinity` beyond its range); `nil` for anything but a number.
    package var doubleValue: Double? {
        guard case .number(let literal) = self else { return nil }
        return Double(literal)
    }

    /// What the value is, for messages: "null", "a boolean", "a number", "a string", "a list" or "an object".
    package var kind: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .number: "a number"
        case .string: "a string"
        case .array: "a list"
        case .object: "an object"
        }
    }
}
