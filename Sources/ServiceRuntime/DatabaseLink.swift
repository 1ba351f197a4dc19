import LibPQ
import Synchronization

/// A connection to one PostgreSQL server that is opened on first use, replaced after an error that leaves it
/// unusable, and reports each lost connection once: the one link the connector and the consumer both use.
///
/// Two ways in, for the two kinds of caller. The consumer's thread lends the connection to a closure with
/// ``withSession(_:)`` (blocking: a batch's transaction runs on that thread). The connector's checks and heartbeats
/// run on the cooperative pool with ``query(deadline:_:_:)``, which never waits past its deadline: on a silently
/// dropped network a query would otherwise wait until TCP gives up, so the connection is abandoned (it closes when
/// the stuck call returns) and the next use opens a new one.
///
/// Whichever use meets an error that leaves the connection unusable (``DatabaseCondition/dropsConnection``, or a
/// failure that is not the server's answer), the link closes it, calls `onLost` once for it, and the next use
/// reconnects: a lost connection is reported here and nowhere else.
package final class DatabaseLink: Sendable {
    private struct State {
        var connection: Connection?
        var schemaReady = false
        var connectionsOpened = 0
    }

    private let conninfo: String
    private let schema: [String]
    private let onLost: @Sendable (PostgresError) -> Void
    private let state: Mutex<State>

    /// Creates a link; nothing connects until the first use.
    ///
    /// - Parameters:
    ///   - conninfo: The libpq connection string.
    ///   - schema: Statements that create the caller's tables, run once in a transaction on the first connection.
    ///   - connection: A connection already open to `conninfo`, used until it is lost.
    ///   - onLost: Told once per connection that an error left unusable, whichever use met it.
    package init(conninfo: String, schema: [String] = [], connection: Connection? = nil,
                 onLost: @escaping @Sendable (PostgresError) -> Void = { _ in }) {
        self.conninfo = conninfo
        self.schema = schema
        self.onLost = onLost
        self.state = Mutex(State(connection: connection, schemaReady: schema.isEmpty, connectionsOpened: connection == nil ? 0 : 1))
    }

    /// Whether a connection is open (it may still have broken since its last use).
    package var isConnected: Bool { state.withLock { $0.connection != nil } }

    /// How many connections have been opened so far: a new number means the previous connection was replaced, and
    /// the server may be another one (a promoted standby) or have lost commits (a crash).
    package var connectionsOpened: Int { state.withLock { $0.connectionsOpened } }

    /// Whether `error` leaves the connection it happened on unusable.
    ///
    /// A code other than a server's answer (a new libpq failure) is not trusted to leave the connection usable.
    package static func dropsConnection(_ error: PostgresError) -> Bool {
        error.code != .queryFailed || DatabaseCondition(error)?.dropsConnection == true
    }

    // MARK: On a thread of the caller's own

    /// Lends the connection to `body`, connecting first if needed. Blocks the calling thread: call it from a thread
    /// of its own, never from the cooperative pool.
    ///
    /// - Throws: ``PostgresError`` from connecting or creating the tables, or whatever `body` throws. After an error
    ///   that leaves the connection unusable, it is closed, and the next call reconnects.
    package func withSession<T>(_ body: (Session) throws -> T) throws -> T {
        let connection = try open()
        do {
            return try connection.withSessionBlocking(body)
        } catch let error as PostgresError where Self.dropsConnection(error) {
            if lost(connection, error) { connection.closeBlocking() }
            throw error
        }
    }

    /// Opens the connection (and creates the tables) if it is not open. Blocks the calling thread.
    ///
    /// - Throws: ``PostgresError``.
    @discardableResult
    package func open() throws -> Connection {
        if let connection = state.withLock({ $0.connection }) { return connection }
        let opened = try Connection.connectBlocking(conninfo)
        if !state.withLock({ $0.schemaReady }) {
            do {
                _ = try opened.withSessionBlocking { session in
                    try session.query("BEGIN")
                    do {
                        for statement in schema { try session.query(statement) }
                        try session.query("COMMIT")
                    } catch {
                        _ = try? session.query("ROLLBACK")
                        throw error
                    }
                }
            } catch {
                opened.closeBlocking()
                throw error
            }
        }
        state.withLock {
            $0.schemaReady = true
            $0.connection = opened
            $0.connectionsOpened += 1
        }
        return opened
    }

    /// Closes the connection; the next use reconnects. Blocks the calling thread.
    package func close() {
        take()?.closeBlocking()
    }

    // MARK: On the cooperative pool

    /// Runs a statement within `deadline` in all, reconnecting once if the connection was lost (the statement is
    /// run again: use it for checks and idempotent writes).
    ///
    /// - Throws: ``PostgresError``, or ``DeadlineExceeded`` when the deadline passed (the connection is then
    ///   abandoned and the next use opens a new one).
    @discardableResult
    package func query(deadline: Duration, _ sql: String, _ parameters: [(any PostgresBindable)?] = []) async throws -> QueryResult {
        do {
            return try await withDeadline(deadline, "the query") { [self] in try await query(sql, parameters) }
        } catch let error as DeadlineExceeded {
            _ = take()
            throw error
        }
    }

    private func query(_ sql: String, _ parameters: [(any PostgresBindable)?]) async throws(PostgresError) -> QueryResult {
        let connection = try await connection()
        do {
            return try await connection.query(sql, parameters)
        } catch where Self.dropsConnection(error) {
            // Forgotten, not closed here: the handle is freed with the last reference, off this path.
            lost(connection, error)
            return try await self.connection().query(sql, parameters)
        }
    }

    private func connection() async throws(PostgresError) -> Connection {
        if let existing = state.withLock({ $0.connection }) { return existing }
        let fresh = try await Connection.connect(conninfo)
        state.withLock {
            $0.connection = fresh
            $0.connectionsOpened += 1
        }
        return fresh
    }

    /// Closes the connection without blocking the calling thread; the next use reconnects.
    package func close() async {
        await take()?.close()
    }

    // MARK: Lost connections

    /// Forgets `connection` and reports `error` once, if it is still the current one (another use may have met the
    /// same loss first); returns whether it was.
    @discardableResult
    private func lost(_ connection: Connection, _ error: PostgresError) -> Bool {
        let current = state.withLock { state -> Bool in
            guard state.connection === connection else { return false }
            state.connection = nil
            return true
        }
        if current { onLost(error) }
        return current
    }

    private func take() -> Connection? {
        state.withLock { state in
            defer { state.connection = nil }
            return state.connection
        }
    }
}
