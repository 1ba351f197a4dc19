import LibPQ
import Synchronization

/// The connector's ordinary SQL connection (slot checks, heartbeats), re-opened after PostgreSQL restarts.
///
/// Every query has a deadline: on a silently dropped network a query would otherwise wait until TCP gives up. A
/// connection whose query ran past its deadline is abandoned (it closes when the stuck call returns) and the next
/// query opens a new one.
final class AdminConnection: Sendable {
    private let conninfo: String
    private let current: Mutex<Connection?>

    init(conninfo: String, connection: Connection) {
        self.conninfo = conninfo
        self.current = Mutex(connection)
    }

    /// Runs a statement, reconnecting once if the connection was lost, within `deadline` in all.
    ///
    /// - Throws: ``PostgresError``, or ``DeadlineExceeded`` when the deadline passed.
    @discardableResult
    func query(deadline: Duration, _ sql: String, _ parameters: [(any PostgresBindable)?] = []) async throws -> QueryResult {
        do {
            return try await withDeadline(deadline, "the query") { [self] in try await query(sql, parameters) }
        } catch let error as DeadlineExceeded {
            current.withLock { $0 = nil }
            throw error
        }
    }

    private func query(_ sql: String, _ parameters: [(any PostgresBindable)?]) async throws(PostgresError) -> QueryResult {
        do {
            return try await connection().query(sql, parameters)
        } catch where error.code == .connectionLost || error.code == .closed {
            current.withLock { $0 = nil }
            return try await connection().query(sql, parameters)
        }
    }

    private func connection() async throws(PostgresError) -> Connection {
        if let existing = current.withLock({ $0 }) { return existing }
        let fresh = try await Connection.connect(conninfo)
        current.withLock { $0 = fresh }
        return fresh
    }

    func close() async {
        await current.withLock({ $0 })?.close()
    }
}
