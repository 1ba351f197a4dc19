import Dispatch
import PGOutput

/// A logical replication connection (`replication=database`): slots, and the start of a ``ReplicationStream``.
///
/// Like ``Connection`` it owns a serial queue for libpq's blocking calls. Ordinary SQL works on it too (simple
/// query protocol), which is how slot state is read.
public final class ReplicationConnection: Sendable {
    /// What `IDENTIFY_SYSTEM` reports.
    public struct SystemIdentification: Hashable, Sendable {
        /// The cluster's unique system identifier.
        public var systemID: String
        /// The current timeline.
        public var timeline: Int
        /// The current WAL flush position.
        public var walFlushPosition: LSN
        /// The connected database.
        public var database: String?
    }

    /// What to do with the snapshot a new slot is consistent with.
    public enum SnapshotAction: Sendable {
        /// Export it; its name is valid until the next command on this connection (for an exact backfill).
        case export
        /// Do not export it.
        case noExport
    }

    /// A slot that `CREATE_REPLICATION_SLOT` made.
    public struct CreatedSlot: Hashable, Sendable {
        /// The slot name.
        public var name: String
        /// The first position the slot will stream: every transaction committed after it.
        public var consistentPoint: LSN
        /// The exported snapshot, with ``SnapshotAction/export``.
        public var snapshotName: String?
    }

    private let connection: PQConnection
    private let queue: DispatchQueue

    private init(connection: PQConnection) {
        self.connection = connection
        self.queue = DispatchQueue(label: "tailgate.libpq.replication.\(connection.backendPID)")
    }

    /// Opens a logical replication connection.
    ///
    /// - Parameter conninfo: A libpq connection string or URI; `replication=database` is added.
    /// - Throws: ``PostgresError`` with code `connectionFailed`; a role without `REPLICATION` is refused here.
    public static func connect(_ conninfo: String) async throws(PostgresError) -> ReplicationConnection {
        let queue = DispatchQueue(label: "tailgate.libpq.connect")
        let connection = try await Connection.run(on: queue) { () throws(PostgresError) in
            try PQConnection(conninfo: conninfo, overrides: [("replication", "database")])
        }
        return ReplicationConnection(connection: connection)
    }

    /// The value libpq uses for connection parameter `keyword`, or `nil` when unset.
    package func option(_ keyword: String) -> String? {
        let connection = self.connection
        return queue.sync { connection.option(keyword) }
    }

    /// The server process id of this walsender.
    public var backendPID: Int32 { connection.backendPID }

    private func exec(_ sql: String) async throws(PostgresError) -> QueryResult {
        let connection = self.connection
        return try await Connection.run(on: queue) { () throws(PostgresError) in try connection.exec(sql) }
    }

    /// Runs ordinary SQL with the simple query protocol (no parameters: quote names with ``SQLIdentifier``).
    ///
    /// - Throws: ``PostgresError``.
    @discardableResult
    public func simpleQuery(_ sql: String) async throws(PostgresError) -> QueryResult {
        try await exec(sql)
    }

    /// `IDENTIFY_SYSTEM`.
    ///
    /// - Throws: ``PostgresError``.
    public func identifySystem() async throws(PostgresError) -> SystemIdentification {
        let result = try await exec("IDENTIFY_SYSTEM")
        guard let row = result.first, let systemID = row["systemid"], let timeline = row.int("timeline"),
              let position = row["xlogpos"].flatMap({ LSN($0) })
        else { throw PostgresError(code: .protocolViolation, message: "IDENTIFY_SYSTEM returned \(result.columns)") }
        return SystemIdentification(systemID: systemID, timeline: timeline, walFlushPosition: position, database: row["dbname"])
    }

    /// Creates a logical slot for `pgoutput`.
    ///
    /// - Parameters:
    ///   - name: The slot name (lower-case letters, digits and underscores, as PostgreSQL requires).
    ///   - temporary: Drop the slot when this connection ends.
    ///   - snapshot: Whether to export the snapshot the slot starts from.
    ///   - failover: Create it with `FAILOVER`, so that standbys with `sync_replication_slots = on` keep a copy that
    ///     a promoted standby streams from (PostgreSQL 17+; an older server refuses the option with a syntax error).
    /// - Throws: ``PostgresError``; SQLSTATE `42710` when the slot exists.
    public func createSlot(_ name: String, temporary: Bool = false, snapshot: SnapshotAction = .noExport,
                           failover: Bool = false) async throws(PostgresError) -> CreatedSlot {
        // The parenthesized option list exists since PostgreSQL 15; the older keywords still work everywhere, so
        // they stay for the slots that do not need an option of 17.
        let sql = "CREATE_REPLICATION_SLOT \(SQLIdentifier.quote(name))\(temporary ? " TEMPORARY" : "") LOGICAL pgoutput "
            + (failover ? "(FAILOVER true, SNAPSHOT '\(snapshot == .export ? "export" : "nothing")')"
                        : snapshot == .export ? "EXPORT_SNAPSHOT" : "NOEXPORT_SNAPSHOT")
        let result = try await exec(sql)
        guard let row = result.first, let point = row["consistent_point"].flatMap({ LSN($0) }) else {
            throw PostgresError(code: .protocolViolation, message: "CREATE_REPLICATION_SLOT returned \(result.columns)")
        }
        return CreatedSlot(name: row["slot_name"] ?? name, consistentPoint: point, snapshotName: row["snapshot_name"])
    }

    /// Turns a slot's `FAILOVER` property on or off (`ALTER_REPLICATION_SLOT`, PostgreSQL 17+).
    ///
    /// - Throws: ``PostgresError``; SQLSTATE `55006` when another process uses the slot.
    public func alterSlot(_ name: String, failover: Bool) async throws(PostgresError) {
        _ = try await exec("ALTER_REPLICATION_SLOT \(SQLIdentifier.quote(name)) (FAILOVER \(failover))")
    }

    /// Drops a slot; with `wait`, waits for a walsender still using it to let go.
    ///
    /// - Throws: ``PostgresError``; SQLSTATE `42704` when it does not exist.
    public func dropSlot(_ name: String, wait: Bool = false) async throws(PostgresError) {
        _ = try await exec("DROP_REPLICATION_SLOT \(SQLIdentifier.quote(name))\(wait ? " WAIT" : "")")
    }

    /// The slot's state, or `nil` when no slot has that name.
    ///
    /// - Throws: ``PostgresError``.
    public func slotState(_ name: String) async throws(PostgresError) -> SlotState? {
        try await exec(SlotState.query(literal: name)).first.flatMap(SlotState.init(row:))
    }

    /// Starts streaming changes from a logical slot with `pgoutput`.
    ///
    /// After this call the connection belongs to the returned stream.
    ///
    /// - Parameters:
    ///   - slot: The slot name.
    ///   - start: Where to start; the server starts at the slot's `confirmed_flush_lsn` when that is later, and
    ///     `LSN.invalid` means "from the slot's position".
    ///   - options: pgoutput options, e.g. ``PGOutputOptions``.
    ///   - statusInterval: How often to send a standby status update without being asked; keep it well inside
    ///     the server's `wal_sender_timeout` (60 s by default).
    ///   - receiveTimeout: How long reading may hear nothing from the server before the connection counts as lost
    ///     (the stream asks for a reply after half of it), like `wal_receiver_timeout`; `nil` waits forever.
    ///     Keep it below the server's `wal_sender_timeout`, so that a cut is noticed here no later than there.
    /// - Throws: ``PostgresError``; SQLSTATE `55006` when another process streams from the slot, `42704` when the
    ///   slot does not exist.
    public func startReplication(slot: String, start: LSN = .invalid, options: PGOutputOptions,
                                 statusInterval: Duration = .seconds(10),
                                 receiveTimeout: Duration? = .seconds(30)) async throws(PostgresError) -> ReplicationStream {
        let optionList = options.commandOptions.map { "\(SQLIdentifier.quote($0.0)) \(SQLIdentifier.literal($0.1))" }
            .joined(separator: ", ")
        let sql = "START_REPLICATION SLOT \(SQLIdentifier.quote(slot)) LOGICAL \(start) (\(optionList))"
        let connection = self.connection
        try await Connection.run(on: queue) { () throws(PostgresError) in try connection.startCopyBoth(sql) }
        return ReplicationStream(connection: connection, queue: queue, start: start, statusInterval: statusInterval,
                                 receiveTimeout: receiveTimeout)
    }

    /// Closes the connection.
    public func close() async {
        await Connection.close(connection, on: queue)
    }
}
