import Observability

/// A log line from librdkafka or from this wrapper, handed to the application's logger instead of stderr.
public struct KafkaLogEvent: Sendable {
    /// Severity, from syslog levels.
    public enum Level: Int, Sendable, Comparable {
        case emergency = 0, alert, critical, error, warning, notice, info, debug
        public static func < (lhs: Level, rhs: Level) -> Bool { lhs.rawValue > rhs.rawValue }
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
    if event.level <= .warning { return }
    LineLogSink.standardError(event.logfmt)
}
