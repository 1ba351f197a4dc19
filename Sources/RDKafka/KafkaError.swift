/// An error from librdkafka or from this wrapper, with librdkafka's code name and what to do.
public struct KafkaError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What kind of failure it is, which decides what the caller should do.
    public enum Kind: Hashable, Sendable {
        /// A configuration property is unknown or has a bad value; fix the configuration.
        case configuration
        /// The producer can no longer guarantee ordering or exactly-once delivery (`_FATAL`): discard it and
        /// start again from the last acknowledged position.
        case fatal
        /// This record can never be delivered as it is (too large, not authorized, …).
        case permanent
        /// The record was purged before delivery, at shutdown.
        case purged
        /// The local queue is full: poll for delivery reports and send again (back-pressure, not a failure).
        case queueFull
        /// An operation did not finish before its deadline.
        case timedOut
        /// A consumer-side failure (fetch, commit, assignment).
        case consumer
        /// The client was closed.
        case closed
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
        default: break
        }
        return text
    }
}
