/// A handler's own verdict on why it failed, for the failures the consumer cannot tell apart by itself.
///
/// Without it, an error a handler throws is tried again (``ConsumerConfiguration/handlerAttempts`` times in all)
/// and then treated as poison, unless it is a ``PostgresError`` that describes the database rather than the event
/// (connection lost, read-only, lock timeout, undefined table, …), which rolls the batch back and retries it.
///
/// ```swift
/// guard let order = try? event.decode(OrderPlaced.self) else {
///     throw HandlerFailure(.poison, "payload is not an OrderPlaced")   // retrying cannot help
/// }
/// guard pricing.isReachable else {
///     throw HandlerFailure(.retryLater, "pricing service unreachable")  // never poison: wait and retry
/// }
/// ```
public struct HandlerFailure: Error, Sendable, CustomStringConvertible {
    /// What retrying the same event can achieve. Extensible: match with `==`, not an exhaustive `switch`.
    public struct Kind: Hashable, Sendable, CustomStringConvertible {
        let name: String

        /// Retrying the same event cannot succeed (a malformed payload, a violated invariant): handle it by the
        /// poison policy at once, without further attempts.
        public static let poison = Kind(name: "poison")
        /// Something outside the event is unavailable (another service, a lock): roll the batch back and retry it
        /// with backoff for as long as it takes; never poison.
        public static let retryLater = Kind(name: "retry_later")

        public var description: String { name }
    }

    /// What retrying can achieve.
    public var kind: Kind
    /// What went wrong, for the logs and the parked or dead-lettered record.
    public var message: String
    /// The error behind it, if any.
    public var underlying: (any Error)?

    /// Creates a failure.
    ///
    /// - Parameters:
    ///   - kind: ``Kind/poison`` or ``Kind/retryLater``.
    ///   - message: What went wrong.
    ///   - underlying: The error behind it.
    public init(_ kind: Kind, _ message: String, underlying: (any Error)? = nil) {
        self.kind = kind
        self.message = message
        self.underlying = underlying
    }

    public var description: String {
        if let underlying { return "\(message): \(underlying)" }
        return message
    }
}
