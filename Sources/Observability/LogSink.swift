/// Where an ``EventLogger`` sends the events that pass its level: the seam for routing Tailgate's events into a
/// service's own logging.
///
/// ```swift
/// import Logging   // swift-log, in the service
///
/// struct SwiftLogSink: LogSink {
///     let logger: Logging.Logger
///     func log(level: EventLogger.Level, event: String, fields: [EventLogger.Field]) {
///         let metadata = Logger.Metadata(uniqueKeysWithValues: fields.map { ($0.0, .string($0.1)) })
///         logger.log(level: level == .debug ? .debug : level == .info ? .info : level == .warning ? .warning : .error,
///                    "\(event)", metadata: metadata)
///     }
/// }
/// let consumer = try OutboxConsumer(configuration: configuration,
///                                   logger: EventLogger(sink: SwiftLogSink(logger: Logger(label: "outbox"))))
/// ```
///
/// A sink is called from whichever thread logs (the consumer's own thread, the connector's tasks), so it must be
/// `Sendable` and should not block for long.
public protocol LogSink: Sendable {
    /// Receives one event.
    ///
    /// - Parameters:
    ///   - level: The event's severity (already at or above the logger's minimum level).
    ///   - event: The event's name, snake_case (`partitions_assigned`).
    ///   - fields: The logger's context fields followed by the event's own, in order; values are masked already.
    func log(level: EventLogger.Level, event: String, fields: [EventLogger.Field])
}
