import Foundation

/// Structured log lines: one line per event of interest, as logfmt or JSON.
///
/// Secrets never reach it: callers pass masked values (see ``ConnectorConfiguration/maskedConninfo``).
public struct Logger: Sendable {
    /// Severity.
    public enum Level: Int, Sendable, Comparable, CustomStringConvertible {
        case debug, info, warning, error
        public static func < (lhs: Level, rhs: Level) -> Bool { lhs.rawValue < rhs.rawValue }
        public var description: String { ["debug", "info", "warning", "error"][rawValue] }
    }

    /// Line format.
    public enum Format: String, Sendable {
        case logfmt, json
    }

    /// The lowest level written.
    public var minimumLevel: Level
    /// The format.
    public var format: Format
    /// Fields added to every line (e.g. `connector=NAME`).
    public var context: [(String, String)]
    private let write: @Sendable (String) -> Void

    /// Creates a logger writing to standard error, or to `write`.
    public init(minimumLevel: Level = .info, format: Format = .logfmt, context: [(String, String)] = [],
                write: @escaping @Sendable (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }) {
        self.minimumLevel = minimumLevel
        self.format = format
        self.context = context
        self.write = write
    }

    /// A logger with more context fields.
    public func with(_ fields: (String, String)...) -> Logger {
        var copy = self
        copy.context += fields
        return copy
    }

    /// Writes one line.
    public func log(_ level: Level, _ event: String, _ fields: [(String, String)] = []) {
        guard level >= minimumLevel else { return }
        let time = ISO8601DateFormatter.string(from: Date(), timeZone: .gmt, formatOptions: [.withInternetDateTime, .withFractionalSeconds])
        let all = [("time", time), ("level", level.description), ("event", event)] + context + fields
        switch format {
        case .logfmt:
            write(all.map { "\($0.0)=\(Self.logfmtValue($0.1))" }.joined(separator: " "))
        case .json:
            write("{" + all.map { "\(Self.jsonString($0.0)):\(Self.jsonString($0.1))" }.joined(separator: ",") + "}")
        }
    }

    /// Logs at info level.
    public func info(_ event: String, _ fields: (String, String)...) { log(.info, event, fields) }
    /// Logs at warning level.
    public func warning(_ event: String, _ fields: (String, String)...) { log(.warning, event, fields) }
    /// Logs at error level.
    public func error(_ event: String, _ fields: (String, String)...) { log(.error, event, fields) }
    /// Logs at debug level.
    public func debug(_ event: String, _ fields: (String, String)...) { log(.debug, event, fields) }

    static func logfmtValue(_ value: String) -> String {
        let needsQuotes = value.isEmpty || value.contains { $0 == " " || $0 == "=" || $0 == "\"" || $0.isNewline }
        guard needsQuotes else { return value }
        return "\"" + value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n") + "\""
    }

    static func jsonString(_ value: String) -> String {
        var out = "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
