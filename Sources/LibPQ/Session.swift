/// Synchronous access to one connection, lent to a closure that runs on the connection's own serial queue.
///
/// A `Session` is only valid inside the closure it was passed to (``Connection/withSession(_:)`` or
/// ``Connection/transaction(_:)``); its calls block that queue, never the Swift concurrency pool.
/// It is deliberately not `Sendable`: libpq connections are not thread-safe, so the compiler keeps a session from
/// leaving the closure's queue (into a task, another thread, a stored property of a `Sendable` type).
public struct Session {
    let connection: PQConnection

    init(connection: PQConnection) {
        self.connection = connection
    }

    /// Runs a statement with parameters sent apart from the SQL text and returns its rows.
    ///
    /// - Parameters:
    ///   - sql: One statement; `$1`, `$2`, … refer to `parameters`.
    ///   - parameters: The values, in order; `nil` is SQL NULL.
    /// - Throws: ``PostgresError``.
    @discardableResult
    public func query(_ sql: String, _ parameters: [(any PostgresBindable)?] = []) throws(PostgresError) -> QueryResult {
        try connection.exec(sql, parameters: parameters.map { $0?.postgresParameter ?? .null })
    }

    /// Runs a statement and returns the number of rows it affected.
    ///
    /// - Throws: ``PostgresError``.
    @discardableResult
    public func execute(_ sql: String, _ parameters: [(any PostgresBindable)?] = []) throws(PostgresError) -> Int {
        try query(sql, parameters).affectedRows
    }

    /// Runs `body` inside a savepoint: its changes are rolled back, and the transaction stays usable, if it throws.
    ///
    /// - Throws: Whatever `body` throws, after rolling back to the savepoint.
    public func savepoint<T>(_ name: String = "tailgate_savepoint", _ body: (Session) throws -> T) throws -> T {
        let quoted = SQLIdentifier.quote(name)
        try query("SAVEPOINT \(quoted)")
        do {
            let value = try body(self)
            // RELEASE carries the body's deferred statements, still inside the savepoint: a failure among them rolls
            // back to it like the body's own.
            try query("RELEASE SAVEPOINT \(quoted)")
            return value
        } catch {
            discardDeferred()
            try query("ROLLBACK TO SAVEPOINT \(quoted)")
            throw error
        }
    }

    /// The server process id serving this session (for `pg_terminate_backend` in tests and operations).
    public var backendPID: Int32 { connection.backendPID }
}

/// A session must not leave its connection's queue.
@available(*, unavailable)
extension Session: Sendable {}
