/// Replaces `${env:NAME}` and `${env:NAME:-default}` in configuration strings.
enum EnvironmentSubstitution {
    /// A reference to a variable that is not set and has no default.
    struct MissingVariable: Error, Hashable, Sendable {
        /// The variable's name.
        var name: String
    }

    /// Substitutes every reference in `text`.
    ///
    /// - Parameters:
    ///   - environment: The variables.
    ///   - quote: Applied to each substituted value (for a conninfo, libpq quoting), not to the text around it.
    /// - Throws: ``MissingVariable`` for the first variable that is unset and has no default.
    static func substitute(_ text: String, environment: [String: String],
                                  quote: (String) -> String = { $0 }) throws(MissingVariable) -> String {
        var output = ""
        var rest = Substring(text)
        while let start = rest.range(of: "${env:") {
            output += rest[..<start.lowerBound]
            guard let close = rest[start.upperBound...].firstIndex(of: "}") else {
                output += rest[start.lowerBound...]
                return output
            }
            let reference = rest[start.upperBound..<close]
            let name: Substring, fallback: Substring?
            if let separator = reference.range(of: ":-") {
                name = reference[..<separator.lowerBound]
                fallback = reference[separator.upperBound...]
            } else {
                name = reference
                fallback = nil
            }
            guard let value = environment[String(name)] ?? fallback.map(String.init) else {
                throw MissingVariable(name: String(name))
            }
            output += quote(value)
            rest = rest[rest.index(after: close)...]
        }
        return output + rest
    }

    /// A value quoted for a libpq connection string: single quotes, with `\` and `'` escaped, so a substituted
    /// value can never add parameters.
    static func conninfoQuote(_ value: String) -> String {
        "'" + value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'") + "'"
    }
}
