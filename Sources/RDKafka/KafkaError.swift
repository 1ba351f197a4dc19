/// An error from librdkafka or from this wrapper, with librdkafka's code name and what to do.
public struct KafkaError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What kind of failure it is, which decides what the caller should do: an open set of named values (a later
    /// version may add kinds without breaking a `switch` that has a `default`).
    public struct Kind: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// A configuration property is unknown or has a bad value; fix the configuration.
        public static let configuration = Kind("configuration")
        /// The producer can no longer guarantee ordering or exactly-once delivery (`_FATAL`): discard it and
        /// start again from the last acknowledged position.
        public static let fatal = Kind("fatal")
        /// This record can never be delivered as it is (too large, not authorized, …).
        public static let permanent = Kind("permanent")
        /// The record was purged before delivery, at shutdown.
        public static let purged = Kind("purged")
        /// The local queue is full: poll for delivery reports and send again (back-pressure, not a failure).
        public static let queueFull = Kind("queueFull")
        /// An operation did not finish before its deadline.
        public static let timedOut = Kind("timedOut")
        /// A consumer-side failure (fetch, commit, assignment).
        public static let consumer = Kind("consumer")
        /// The client was closed.
        public static let closed = Kind("closed")
        /// No broker can be reached (`_ALL_BROKERS_DOWN`, `_TRANSPORT`, `_RESOLVE`): records wait in the client and
        /// are retried when a broker is back. An outage, not a problem with any record.
        public static let unreachable = Kind("unreachable")
        /// The waiting task was cancelled.
        public static let cancelled = Kind("cancelled")
    }

    /// What kind of failure it is.
    public var kind: Kind
    /// librdkafka's name for the error code, e.g. `MSG_SIZE_TOO_LARGE` or `_FATAL`.
    public var codeName: String
    /// librdkafka's numeric error code (0 when the error is this wrapper's own).
    public var code: Int32
    /// What happened.
    public var message: String

    /// Creates an error.
    public init(kind: Kind, codeName: String, code: Int32 = 0, message: String) {
        self.kind = kind
        self.codeName = codeName
        self.code = code
        self.message = message
    }

    /// The producer must be discarded.
    public var isFatal: Bool { kind == .fatal }

    public var description: String {
        var text = "Kafka error \(codeName): \(message)"
        switch kind {
        case .configuration: text += "; fix the Kafka property named above"
        case .fatal: text += "; the producer was discarded and will restart from the last acknowledged position"
        case .permanent: text += "; this record cannot be delivered as it is"
        case .queueFull: text += "; wait for delivery reports and retry"
        case .unreachable: text += "; records wait and are sent when a broker is reachable again"
        default: break
        }
        return text
    }
}
