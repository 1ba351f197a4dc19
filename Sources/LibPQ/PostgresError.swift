/// An error from PostgreSQL or from libpq, with what to do about it.
///
/// Server errors carry the SQLSTATE, message, detail and hint the server sent. The description never contains
/// the connection string, so it is safe to log.
public struct PostgresError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The kind of failure: an open set of named values (a later version may add kinds without breaking a
    /// `switch` that has a `default`).
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// The connection could not be opened (bad host, authentication, missing database).
        public static let connectionFailed = Code("connectionFailed")
        /// An open connection broke (server restart, network, `pg_terminate_backend`, receive timeout).
        public static let connectionLost = Code("connectionLost")
        /// The server rejected a statement; see ``PostgresError/sqlState``.
        public static let queryFailed = Code("queryFailed")
        /// The server answered with something this client did not expect.
        public static let protocolViolation = Code("protocolViolation")
        /// The connection was closed by this process and cannot be used.
        public static let closed = Code("closed")
    }

    /// The kind of failure.
    public var code: Code
    /// The primary message.
    public var message: String
    /// The SQLSTATE, when the server sent one.
    public var sqlState: SQLState?
    /// The server's detail line.
    public var detail: String?
    /// The server's hint line.
    public var hint: String?
    /// Which statement of a ``Session/pipeline(_:)`` failed (its index in the array), `nil` outside a pipeline; for
    /// a deferred statement (``isDeferred``), its place among the deferred statements sent together.
    public var statementIndex: Int?
    /// The failing statement was queued with ``Session/executeDeferred(_:_:)`` and sent ahead of the
    /// statement whose call threw: the failure is the deferred statement's, not that call's.
    public var isDeferred = false

    /// Creates an error.
    public init(code: Code, message: String, sqlState: SQLState? = nil, detail: String? = nil, hint: String? = nil) {
        self.code = code
        self.message = message
        self.sqlState = sqlState
        self.detail = detail
        self.hint = hint
    }

    public var description: String {
        var text: String
        switch code {
        case .connectionFailed: text = "cannot connect to PostgreSQL: \(message)"
        case .connectionLost: text = "lost the PostgreSQL connection: \(message)"
        case .queryFailed: text = "PostgreSQL error: \(message)"
        case .protocolViolation: text = "unexpected answer from PostgreSQL: \(message)"
        case .closed: text = "the PostgreSQL connection is closed: \(message)"
        default: text = "PostgreSQL \(code): \(message)"
        }
        if let sqlState { text += " (SQLSTATE \(sqlState))" }
        if let statementIndex { text += isDeferred ? " in deferred statement \(statementIndex)" : " in pipeline statement \(statementIndex)" }
        if let detail, !detail.isEmpty { text += "; detail: \(detail)" }
        if let hint, !hint.isEmpty { text += "; hint: \(hint)" }
        switch code {
        case .connectionFailed: text += "; check host, port, database, user and password (PGPASSWORD or ~/.pgpass)"
        case .connectionLost: text += "; the work will be retried on a new connection"
        default: break
        }
        return text
    }
}
