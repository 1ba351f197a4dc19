/// Why the `/metrics` server cannot start, naming the setting and the fix.
public struct MetricsServerError: Error, Sendable, CustomStringConvertible {
    /// The kind of failure.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        /// The listen address is not `host:port` with an IP address or `localhost`.
        public static let invalidAddress = Code("invalid_address")
        /// The address is valid but cannot be bound (in use, not local, no permission).
        public static let cannotListen = Code("cannot_listen")

        /// The code's name.
        public let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }
    }

    /// The kind of failure.
    public var code: Code
    /// The setting the address came from (`metrics.listen`).
    public var setting: String
    /// What is wrong and what to do, without the setting's name.
    public var reason: String
    /// For ``Code/cannotListen``, the system's reason (`strerror`).
    public var detail: String?

    /// Creates an error.
    public init(_ code: Code, setting: String, _ reason: String, detail: String? = nil) {
        self.code = code
        self.setting = setting
        self.reason = reason
        self.detail = detail
    }

    /// `setting: reason`.
    public var message: String { "\(setting): \(reason)" }

    public var description: String { message }
}
