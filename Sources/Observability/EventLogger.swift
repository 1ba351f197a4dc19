/// Structured logging: one event per call, with key/value fields, passed to a ``LogSink``.
///
/// ```swift
/// let logger = EventLogger(minimumLevel: .info, format: .json).with(("connector", "orders"))
/// logger.info("metrics_listening", ("address", listen), ("port", "\(port)"))
/// ```
///
/// Shaped like swift-log's `Logger` (levels, context metadata, a pluggable backend) under a name that does not
/// clash with it. Fields are taken as autoclosures: below ``minimumLevel`` nothing is evaluated, so a `debug` line
/// with an expensive field costs a comparison when debug is off.
///
/// The default sink writes one logfmt or JSON line per event to standard error (``LineLogSink``). A service that
/// already has a logger routes the events into it with a sink of its own. Secrets never reach a logger: callers
/// pass masked values.
public struct EventLogger: Sendable {
    /// One key/value field of an event.
    public typealias Field = (String, String)

    /// Severity, lowest first.
    public enum Level: Int, Sendable, Comparable, CaseIterable, CustomStringConvertible {
        /// Detail for debugging.
        case debug
        /// Normal operation worth a line (started, connected, stopped).
        case info
        /// Something went wrong and is being retried or worked around.
        case warning
        /// Something went wrong that needs an operator.
        case error

        /// The level named `name` (`debug`, `info`, `warning`, `error`), or `nil`.
        public init?(name: String) {
            guard let level = Level.allCases.first(where: { $0.description == name }) else { return nil }
            self = level
        }

        public static func < (lhs: Level, rhs: Level) -> Bool { lhs.rawValue < rhs.rawValue }

        /// The level's name as written in log lines.
        public var description: String {
            switch self {
            case .debug: "debug"
            case .info: "info"
            case .warning: "warning"
            case .error: "error"
            }
        }
    }

    /// The lowest level passed to the sink; fields of lower levels are never evaluated.
    public var minimumLevel: Level
    /// Fields added before every event's own fields (e.g. `connector=NAME`).
    public var context: [Field]
    /// Where events go.
    public var sink: any LogSink

    /// Creates a logger passing events to `sink`.
    ///
    /// - Parameters:
    ///   - minimumLevel: The lowest level passed on.
    ///   - context: Fields added to every event.
    ///   - sink: Receives every event at or above `minimumLevel`.
    public init(minimumLevel: Level = .info, context: [Field] = [], sink: any LogSink) {
        self.minimumLevel = minimumLevel
        self.context = context
        self.sink = sink
    }

    /// Creates a logger writing one `format` line per event to standard error.
    ///
    /// - Parameters:
    ///   - minimumLevel: The lowest level written.
    ///   - format: logfmt (default) or JSON.
    ///   - context: Fields added to every line.
    public init(minimumLevel: Level = .info, format: Format = .logfmt, context: [Field] = []) {
        self.init(minimumLevel: minimumLevel, context: context, sink: LineLogSink(format: format))
    }

    /// Creates a logger passing one `format` line per event (without a newline) to `write`.
    ///
    /// - Parameters:
    ///   - minimumLevel: The lowest level written.
    ///   - format: logfmt (default) or JSON.
    ///   - context: Fields added to every line.
    ///   - write: Receives each line; called from whichever thread logs.
    public init(minimumLevel: Level = .info, format: Format = .logfmt, context: [Field] = [],
                write: @escaping @Sendable (String) -> Void) {
        self.init(minimumLevel: minimumLevel, context: context, sink: LineLogSink(format: format, write: write))
    }

    /// A logger with more context fields.
    public func with(_ fields: Field...) -> EventLogger {
        var copy = self
        copy.context += fields
        return copy
    }

    /// Whether events at `level` reach the sink.
    public func isEnabled(_ level: Level) -> Bool { level >= minimumLevel }

    /// Passes one event to the sink if `level` is enabled; `fields` is evaluated only then.
    ///
    /// - Parameters:
    ///   - level: The event's severity.
    ///   - event: The event's name, snake_case (`shutdown_requested`).
    ///   - fields: The event's own fields, after the context.
    public func log(_ level: Level, _ event: String, _ fields: @autoclosure () -> [Field] = []) {
        guard isEnabled(level) else { return }
        sink.log(level: level, event: event, fields: context + fields())
    }

    // The per-level methods take up to ten fields as separate autoclosures: a variadic parameter cannot be an
    // autoclosure, and the call shape `logger.info("event", ("key", value))` is worth keeping.

    /// Logs at debug level; the fields are evaluated only when debug is enabled.
    public func debug(_ event: String, _ f0: @autoclosure () -> Field? = nil, _ f1: @autoclosure () -> Field? = nil,
                      _ f2: @autoclosure () -> Field? = nil, _ f3: @autoclosure () -> Field? = nil,
                      _ f4: @autoclosure () -> Field? = nil, _ f5: @autoclosure () -> Field? = nil,
                      _ f6: @autoclosure () -> Field? = nil, _ f7: @autoclosure () -> Field? = nil,
                      _ f8: @autoclosure () -> Field? = nil, _ f9: @autoclosure () -> Field? = nil) {
        guard isEnabled(.debug) else { return }
        sink.log(level: .debug, event: event, fields: context + [f0(), f1(), f2(), f3(), f4(), f5(), f6(), f7(), f8(), f9()].compactMap { $0 })
    }

    /// Logs at info level; the fields are evaluated only when info is enabled.
    public func info(_ event: String, _ f0: @autoclosure () -> Field? = nil, _ f1: @autoclosure () -> Field? = nil,
                     _ f2: @autoclosure () -> Field? = nil, _ f3: @autoclosure () -> Field? = nil,
                     _ f4: @autoclosure () -> Field? = nil, _ f5: @autoclosure () -> Field? = nil,
                     _ f6: @autoclosure () -> Field? = nil, _ f7: @autoclosure () -> Field? = nil,
                     _ f8: @autoclosure () -> Field? = nil, _ f9: @autoclosure () -> Field? = nil) {
        guard isEnabled(.info) else { return }
        sink.log(level: .info, event: event, fields: context + [f0(), f1(), f2(), f3(), f4(), f5(), f6(), f7(), f8(), f9()].compactMap { $0 })
    }

    /// Logs at warning level; the fields are evaluated only when warning is enabled.
    public func warning(_ event: String, _ f0: @autoclosure () -> Field? = nil, _ f1: @autoclosure () -> Field? = nil,
                        _ f2: @autoclosure () -> Field? = nil, _ f3: @autoclosure () -> Field? = nil,
                        _ f4: @autoclosure () -> Field? = nil, _ f5: @autoclosure () -> Field? = nil,
                        _ f6: @autoclosure () -> Field? = nil, _ f7: @autoclosure () -> Field? = nil,
                        _ f8: @autoclosure () -> Field? = nil, _ f9: @autoclosure () -> Field? = nil) {
        guard isEnabled(.warning) else { return }
        sink.log(level: .warning, event: event, fields: context + [f0(), f1(), f2(), f3(), f4(), f5(), f6(), f7(), f8(), f9()].compactMap { $0 })
    }

    /// Logs at error level; the fields are evaluated only when error is enabled.
    public func error(_ event: String, _ f0: @autoclosure () -> Field? = nil, _ f1: @autoclosure () -> Field? = nil,
                      _ f2: @autoclosure () -> Field? = nil, _ f3: @autoclosure () -> Field? = nil,
                      _ f4: @autoclosure () -> Field? = nil, _ f5: @autoclosure () -> Field? = nil,
                      _ f6: @autoclosure () -> Field? = nil, _ f7: @autoclosure () -> Field? = nil,
                      _ f8: @autoclosure () -> Field? = nil, _ f9: @autoclosure () -> Field? = nil) {
        guard isEnabled(.error) else { return }
        sink.log(level: .error, event: event, fields: context + [f0(), f1(), f2(), f3(), f4(), f5(), f6(), f7(), f8(), f9()].compactMap { $0 })
    }
}
