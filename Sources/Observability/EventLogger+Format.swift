extension EventLogger {
    /// How an event becomes one line of text.
    ///
    /// Both formats share one escaping rule (``quoted(_:)``), so a value containing a newline, a quote, a
    /// backslash or any control character never breaks "one line per event", in either format.
    public enum Format: String, Sendable, CaseIterable {
        /// `key=value` pairs separated by spaces; values quoted only when they need it.
        case logfmt
        /// One JSON object whose values are strings.
        case json

        /// One line (without a newline) for `fields`, in order.
        public func line(_ fields: [Field]) -> String {
            switch self {
            case .logfmt:
                return fields.map { "\(Self.logfmtKey($0.0))=\(Self.logfmtValue($0.1))" }.joined(separator: " ")
            case .json:
                return "{" + fields.map { "\(Self.quoted($0.0)):\(Self.quoted($0.1))" }.joined(separator: ",") + "}"
            }
        }

        /// `text` as a double-quoted string with JSON's escapes: `\"`, `\\`, `\n`, `\r`, `\t`, and `\u00XX` for
        /// every other control character (C0, DEL, C1) and the Unicode line and paragraph separators.
        ///
        /// The result is a valid JSON string literal and a valid quoted logfmt value, and never contains a line
        /// break.
        public static func quoted(_ text: String) -> String {
            var out = "\""
            out.unicodeScalars.reserveCapacity(text.unicodeScalars.count + 2)
            for scalar in text.unicodeScalars {
                switch scalar {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                case "\n": out += "\\n"
                case "\r": out += "\\r"
                case "\t": out += "\\t"
                case _ where needsEscape(scalar):
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                default: out.unicodeScalars.append(scalar)
                }
            }
            out += "\""
            return out
        }

        /// A logfmt value: bare when it is non-empty and holds no space, `=`, quote or character ``quoted(_:)``
        /// escapes; quoted otherwise.
        public static func logfmtValue(_ value: String) -> String {
            let bare = !value.isEmpty && value.unicodeScalars.allSatisfy { scalar in
                scalar != " " && scalar != "=" && scalar != "\"" && scalar != "\\" && !needsEscape(scalar)
                    && scalar != "\n" && scalar != "\r" && scalar != "\t"
            }
            return bare ? value : quoted(value)
        }

        /// A logfmt key: keys come from code, but a space, `=`, quote or control character would still break the
        /// line, so each becomes `_`.
        static func logfmtKey(_ key: String) -> String {
            guard key.unicodeScalars.contains(where: { $0 == " " || $0 == "=" || $0 == "\"" || $0.value < 0x21 || needsEscape($0) }) else {
                return key.isEmpty ? "_" : key
            }
            var out = ""
            for scalar in key.unicodeScalars {
                out.unicodeScalars.append(scalar == " " || scalar == "=" || scalar == "\"" || scalar.value < 0x21 || needsEscape(scalar) ? "_" : scalar)
            }
            return out
        }

        /// Control characters besides `\n`, `\r`, `\t` (which have short escapes), and U+2028/U+2029, which some
        /// log viewers treat as line breaks.
        private static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
            switch scalar.value {
            case 0x00...0x1F: scalar != "\n" && scalar != "\r" && scalar != "\t"
            case 0x7F...0x9F, 0x2028, 0x2029: true
            default: false
            }
        }
    }
}
