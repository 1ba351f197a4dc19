import PGOutput

/// Why the connector stopped, with what to do about it.
public struct ConnectorError: Error, Sendable, CustomStringConvertible {
    /// The kind of stop: an open set of named values, so that a later version can add kinds without breaking a
    /// `switch` that has a `default`.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// The database side does not match the configuration (table, columns, `wal_level`, publication).
        public static let setup = Code("setup")
        /// The replication slot disappeared or was invalidated after it had been used.
        public static let slotLost = Code("slotLost")
        /// The outbox table's shape changed under the stream.
        public static let schemaChanged = Code("schemaChanged")
        /// A row cannot become a record and there is no dead-letter topic.
        public static let undeliverableRow = Code("undeliverableRow")
        /// Kafka refused a record permanently.
        public static let deliveryFailed = Code("deliveryFailed")
        /// Graceful shutdown could not flush every record before its deadline.
        public static let shutdownDeadline = Code("shutdownDeadline")
        /// The server sent a replication message that cannot be decoded or arrived where the protocol allows
        /// none (an unknown relation, a Commit without Begin).
        public static let invalidStream = Code("invalidStream")
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
