import Dispatch

/// A connection for ordinary SQL, with its own serial queue for libpq's blocking calls.
///
/// Every call runs on the connection's queue, so the Swift concurrency pool never blocks on the network and libpq
/// (which is not thread-safe) is used by one thread at a time.
///
/// ```swift
/// let db = try await Connection.connect("host=localhost dbname=shop")
/// let rows = try await db.query("SELECT id FROM orders WHERE customer = $1", [customerID])
/// try await db.transaction { tx in
///     try tx.execute("UPDATE stock SET count = count - 1 WHERE sku = $1", [sku])
/// }
/// ```
public final class Connection: Sendable {
    private let connection: PQConnection
    private let queue: DispatchQueue

    private init(connection: PQConnection, label: String) {
        self.connection = connection
        self.queue = DispatchQueue(label: label)
    }

    /// Opens a connection.
    ///
    /// - Parameter conninfo: A libpq connection string (`host=… dbname=…`) or URI. Passwords are best left to
    ///   `PGPASSWORD` or `~/.pgpass`; errors never repeat the string.
    /// - Throws: ``PostgresError`` with code `connectionFailed`.
    public static func connect(_ conninfo: String) async throws(PostgresError) -> Connection {
        let queue = DispatchQueue(label: "tailgate.libpq.connect")
        let connection = try await run(on: queue) { () throws(PostgresError) in try PQConnection(conninfo: conninfo) }
        return Connection(connection: connection, label: "tailgate.libpq.connection.\(connection.backendPID)")
    }

    /// Opens a connection, blocking the calling thread (for code that owns a thread; never from a task).
    ///
    /// - Throws: ``PostgresError`` with code `connectionFailed`.
    package static func connectBlocking(_ conninfo: String) throws(PostgresError) -> Connection {
        let connection = try PQConnection(conninfo: conninfo)
        return Connection(connection: connection, label: "tailgate.libpq.connection.\(connection.backendPID)")
    }

    /// Closes the connection, blocking the calling thread until queued work has run.
    package func closeBlocking() {
        let connection = self.connection
        queue.sync { connection.close() }
    }

    /// The value libpq uses for connection parameter `keyword` (e.g. `tcp_user_timeout`), or `nil` when unset.
    package func option(_ keyword: String) -> String? {
        let connection = self.connection
        return queue.sync { connection.option(keyword) }
    }

    /// The server process id serving this connection.
    public var backendPID: Int32 { connection.backendPID }

    /// Runs a statement with parameters and returns its rows.
    ///
    /// - Throws: ``PostgresError``.
    @discardableResult
    public func query(_ sql: String, _ parameters: [(any PostgresBindable)?] = []) async throws(PostgresError) -> QueryResult {
        try await withSession { session throws(PostgresError) in try session.query(sql, parameters) }
    }

    /// Runs a statement and returns the number of rows it affected.
    ///
    /// - Throws: ``PostgresError``.
    @discardableResult
    public func execute(_ sql: String, _ parameters: [(any PostgresBindable)?] = []) async throws(PostgresError) -> Int {
        try await query(sql, parameters).affectedRows
    }

    /// Lends the connection to `body` on its queue, for several statements without hopping back each time.
    ///
    /// - Throws: Whatever `body` throws.
    @discardableResult
    public func withSession<T: Sendable, E: Error>(_ body: @escaping @Sendable (Session) throws(E) -> T) async throws(E) -> T {
        let connection = self.connection
        return try await Self.run(on: queue) { () throws(E) in try body(Session(connection: connection)) }
    }

    /// Lends the connection to `body` synchronously, blocking the calling thread until the connection's queue has
    /// run it.
    ///
    /// For code that owns a thread (a consumer loop, a rebalance callback). Never call it from a Swift concurrency
    /// task (it would block the pool) or from inside another session of the same connection (deadlock).
    ///
    /// - Throws: Whatever `body` throws.
    package func withSessionBlocking<T>(_ body: (Session) throws -> T) rethrows -> T {
        let connection = self.connection
        return try queue.sync { try body(Session(connection: connection)) }
    }

    /// Runs `body` in a transaction: committed when it returns, rolled back when it throws.
    ///
    /// - Throws: What `body` throws (after the rollback), or ``PostgresError`` from BEGIN/COMMIT.
    @discardableResult
    public func transaction<T: Sendable>(_ body: @escaping @Sendable (Session) throws -> T) async throws -> T {
        try await withSession { session in
            try session.query("BEGIN")
            do {
                let value = try body(session)
                try session.query("COMMIT")
                return value
            } catch {
                session.discardDeferred()
                if connectionIsOpen(session) { _ = try? session.query("ROLLBACK") }
                throw error
            }
        }
    }

    /// Closes the connection. Later calls throw ``PostgresError/Code/closed``.
    public func close() async {
        await Self.close(connection, on: queue)
    }

    /// Closes `connection` on its queue, after any work already queued there.
    static func close(_ connection: PQConnection, on queue: DispatchQueue) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            queue.async {
                connection.close()
                continuation.resume()
            }
        }
    }

    /// Runs blocking work on `queue` and resumes with its result.
    static func run<T, E: Error>(on queue: DispatchQueue, _ work: @escaping @Sendable () throws(E) -> T) async throws(E) -> T {
        let result: Result<T, E> = await withCheckedContinuation { continuation in
            let box = UncheckedBox(work)
            queue.async {
                do throws(E) {
                    continuation.resume(returning: .success(try box.value()))
                } catch {
                    continuation.resume(returning: .failure(error))
                }
            }
        }
        return try result.get()
    }
}

private func connectionIsOpen(_ session: Session) -> Bool { session.connection.isOpen }

/// Carries a non-Sendable result across the queue hop. Safe because exactly one side touches it at a time:
/// the queue writes it, then the continuation hands it to the awaiting task.
struct UncheckedBox<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
