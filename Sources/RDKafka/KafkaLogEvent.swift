import Observability

/// A log line from librdkafka or from this wrapper, handed to the application's logger instead of stderr.
public struct KafkaLogEvent: Sendable {
    /// Severity, syslog's levels and numbers: the raw value falls as the severity rises (`emergency` is 0,
    /// `debug` 7).
    ///
    /// Deliberately not `Comparable`: with the numbers running against the severity, `<` read one way at one call
    /// site and the other way at the next (the consumer dropped librdkafka's errors, the default handler its
    /// warnings). Compare with ``isAtLeast(_:)``.
    public enum Level: Int, Sendable, CaseIterable {
        case emergency = 0, alert, critical, error, warning, notice, info, debug

        /// Whether this level is as severe as `other` or more: `.error.isAtLeast(.warning)` is `true`,
        /// `.notice.isAtLeast(.warning)` is `false`.
        public func isAtLeast(_ other: Level) -> Bool { rawValue <= other.rawValue }

        /// The ``EventLogger`` level a line of this severity is logged at: `error` and worse are errors,
        /// `warning` a warning, `notice` (normal but significant) info, `info` and `debug` debug (librdkafka's
        /// informational lines are chatter for a service's log).
        public var loggerLevel: EventLogger.Level {
            if isAtLeast(.error) { return .error }
            switch self {
            case .warning: return .warning
            case .notice: return .info
            default: return .debug
            }
        }
    }

    /// Severity.
    public var level: Level
    /// librdkafka's facility (e.g. `FAIL`, `REQTMOUT`) or `tailgate`.
    public var facility: String
    /// The client instance name.
    public var client: String
    /// The message.
    public var message: String

    /// Creates an event.
    public init(level: Level, facility: String, client: String, message: String) {
        self.level = level
        self.facility = facility
        self.client = client
        self.message = message
    }

    /// One logfmt line (``EventLogger/Format/logfmt``'s escaping: a newline in the message stays `\n`).
    public var logfmt: String {
        EventLogger.Format.logfmt.line([("level", "\(level)"), ("component", "kafka"), ("client", client), ("facility", facility),
                                        ("msg", message)])
    }
}

/// Where Kafka log events go; called from librdkafka's threads, so it must be thread-safe.
public typealias KafkaLogHandler = @Sendable (KafkaLogEvent) -> Void

/// The default handler: warnings and worse to standard error as logfmt.
public let defaultKafkaLogHandler: KafkaLogHandler = { event in
    if let line = event.defaultLine { LineLogSink.standardError(line) }
}

extension KafkaLogEvent {
    /// What ``defaultKafkaLogHandler`` writes for this event: its logfmt line for a warning or worse, else `nil`.
    var defaultLine: String? { level.isAtLeast(.warning) ? logfmt : nil }
}
