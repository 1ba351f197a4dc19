import LibPQ

/// The consumer thread's connection to the service's database: opened on first use (creating the consumer's
/// tables once), and replaced after an error that leaves it unusable, so the next use reconnects.
///
/// Confined to the consumer's thread, which is the only caller.
final class DatabaseLink {
    private let conninfo: String
    private let schema: [String]
    private var connection: Connection?
    private var schemaReady = false
    /// How many connections have been opened so far: a new number means the previous connection was replaced, and
    /// the server may be another one (a promoted standby) or have lost commits (a crash).
    private(set) var connectionsOpened = 0
    private let onLost: (PostgresError) -> Void

    /// - Parameters:
    ///   - conninfo: The service's connection string.
    ///   - schema: Statements that create the consumer's tables, run once in a transaction on the first connection.
    ///   - onLost: Told once per connection that an error left unusable, whichever use met it (a batch, an idle
    ///     check): the one place a lost connection is reported.
    init(conninfo: String, schema: [String], onLost: @escaping (PostgresError) -> Void) {
        self.conninfo = conninfo
        self.schema = schema
        self.onLost = onLost
    }

    /// Whether a connection is open (it may still have broken since its last use).
    var isConnected: Bool { connection != nil }

    /// Lends the connection to `body`, connecting first if needed.
    ///
    /// - Throws: ``PostgresError`` from connecting or creating the tables, or whatever `body` throws. After an error
    ///   that leaves the connection unusable, it is closed, and the next call reconnects.
    func withSession<T>(_ body: (Session) throws -> T) throws -> T {
        let connection = try open()
        do {
            return try connection.withSessionBlocking(body)
        } catch let error as PostgresError where FailureClassifier.dropsConnection(error) {
            close()
            onLost(error)
            throw error
        }
    }

    /// Opens the connection (and creates the tables) if it is not open.
    ///
    /// - Throws: ``PostgresError``.
    @discardableResult
    func open() throws -> Connection {
        if let connection { return connection }
        let opened = try Connection.connectBlocking(conninfo)
        if !schemaReady {
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
            schemaReady = true
        }
        connection = opened
        connectionsOpened += 1
        return opened
    }

    /// Closes the connection; the next use reconnects.
    func close() {
        connection?.closeBlocking()
        connection = nil
    }
}
