import PGOutput

/// Why the connector stopped, with what to do about it.
public struct ConnectorError: Error, Sendable, CustomStringConvertible {
    /// The kind of stop.
    public enum Code: Sendable, Hashable {
        /// The database side does not match the configuration (table, columns, `wal_level`, publication).
        case setup
        /// The replication slot disappeared or was invalidated after it had been used.
        case slotLost
        /// The outbox table's shape changed under the stream.
        case schemaChanged
        /// A row cannot become a record and there is no dead-letter topic.
        case undeliverableRow
        /// Kafka refused a record permanently.
        case deliveryFailed
        /// Graceful shutdown could not flush every record before its deadline.
        case shutdownDeadline
    }

    /// The kind of stop.
    public var code: Code
    /// What happened and what to do.
    public var message: String
    /// For setup errors, each problem on its own.
    public var problems: [String]

    /// Creates an error.
    public init(_ code: Code, _ message: String, problems: [String]? = nil) {
        self.code = code
        self.message = message
        self.problems = problems ?? [message]
    }

    public var description: String { message }
}
