/// The words after a subcommand, read as `--name value` options and `--flag` switches.
struct CommandLineArguments {
    private(set) var options: [String: String] = [:]
    private(set) var flags: Set<String> = []
    /// Every value of each option, in order (for options that may repeat).
    private(set) var lists: [String: [String]] = [:]

    /// Parses `words`; `flagNames` take no value; `repeatable` options may be given more than once (see ``lists``).
    ///
    /// - Throws: ``UsageError`` for a stray word, an option without a value, a repeated option that may not
    ///   repeat, or an unknown name.
    init(_ words: [String], options optionNames: Set<String>, flags flagNames: Set<String> = [], repeatable: Set<String> = []) throws {
        var rest = words[...]
        while let word = rest.popFirst() {
            guard word.hasPrefix("--") else { throw UsageError("unexpected argument '\(word)'") }
            var name = String(word.dropFirst(2))
            var inlineValue: String?
            if let equals = name.firstIndex(of: "=") {
                inlineValue = String(name[name.index(after: equals)...])
                name = String(name[..<equals])
            }
            if flagNames.contains(name) {
                flags.insert(name)
            } else if optionNames.contains(name) {
                guard let value = inlineValue ?? rest.popFirst() else { throw UsageError("--\(name) needs a value") }
                if !repeatable.isEmpty, options[name] != nil, !repeatable.contains(name) {
                    throw UsageError("--\(name) is given twice; give it once")
                }
                options[name] = value
                lists[name, default: []].append(value)
            } else {
                throw UsageError("unknown option --\(name)")
            }
        }
    }

    /// The value of `--name` as a positive integer, or `defaultValue` when absent.
    func positiveInt(_ name: String, default defaultValue: Int) throws -> Int {
        guard let text = options[name] else { return defaultValue }
        guard let value = Int(text), value > 0 else { throw UsageError("--\(name) must be a positive whole number, not '\(text)'") }
        return value
    }

    /// The value of `--name` as a positive number, or `defaultValue` when absent.
    func positiveDouble(_ name: String, default defaultValue: Double) throws -> Double {
        guard let text = options[name] else { return defaultValue }
        guard let value = Double(text), value > 0, value.isFinite else { throw UsageError("--\(name) must be a positive number, not '\(text)'") }
        return value
    }
}

/// A mistake on the command line; the message says what to type instead.
struct UsageError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
