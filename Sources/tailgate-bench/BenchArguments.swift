/// `--name value` options of one subcommand.
struct BenchArguments {
    private var values: [String: String] = [:]
    private(set) var flags: Set<String> = []

    init(_ arguments: ArraySlice<String>) throws(BenchError) {
        var rest = arguments
        while let word = rest.popFirst() {
            guard word.hasPrefix("--") else { throw BenchError("unexpected argument \(word)") }
            let name = String(word.dropFirst(2))
            if let next = rest.first, !next.hasPrefix("--") {
                values[name] = next
                rest.removeFirst()
            } else {
                flags.insert(name)
            }
        }
    }

    func string(_ name: String) throws(BenchError) -> String {
        guard let value = values[name] else { throw BenchError("missing --\(name)") }
        return value
    }

    func int(_ name: String, default fallback: Int? = nil) throws(BenchError) -> Int {
        if let value = values[name] {
            guard let number = Int(value) else { throw BenchError("--\(name) needs an integer, got \(value)") }
            return number
        }
        guard let fallback else { throw BenchError("missing --\(name)") }
        return fallback
    }
}

/// A usage or setup error of the benchmark tool.
struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
