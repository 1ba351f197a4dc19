import PGOutput

extension ReplicationConnection {
    /// A slot's state, from `pg_replication_slots`, on any PostgreSQL from 14 on.
    ///
    /// The columns a version lacks are `nil`: `conflicting` came with 16; `invalidation_reason`, `failover`,
    /// `synced` and `inactive_since` with 17. Read it over a replication connection with
    /// ``ReplicationConnection/slotState(_:)``, or over an ordinary ``Connection`` with ``parameterizedQuery`` and
    /// ``init(row:)`` (what `tailgate status` does).
    public struct SlotState: Hashable, Sendable {
        /// The slot name.
        public var name: String
        /// The output plugin.
        public var plugin: String?
        /// The slot is logical.
        public var isLogical: Bool
        /// The slot is temporary. On a standby a synchronized slot stays temporary until it has caught up with
        /// its primary's, and a promotion drops it: only a synchronized, non-temporary copy survives a failover.
        public var isTemporary: Bool
        /// A walsender is streaming from it now.
        public var isActive: Bool
        /// The process id of that walsender.
        public var activePID: Int32?
        /// The position consumers confirmed.
        public var confirmedFlushLSN: LSN?
        /// The oldest WAL the slot keeps.
        public var restartLSN: LSN?
        /// `reserved`, `extended`, `unreserved` or `lost` (`lost`: the slot can no longer stream, whatever
        /// invalidated it; ``invalidationReason`` says what did on 17+).
        public var walStatus: String?
        /// Bytes of WAL that can still be written before the slot is in danger of being lost.
        public var safeWALSize: Int64?
        /// Why the slot was invalidated (17+): `wal_removed`, `rows_removed`, `wal_level_insufficient`, or
        /// `idle_timeout` (18+); `nil` for a valid slot or an older server.
        public var invalidationReason: String?
        /// The slot was invalidated by a recovery conflict (16+); `nil` on 15 or for a physical slot.
        public var isConflicting: Bool?
        /// The slot is synchronized to standbys that have `sync_replication_slots = on` (17+); `nil` on older servers.
        public var isFailover: Bool?
        /// On a standby: the slot is a copy synchronized from the primary (17+); `nil` on older servers.
        public var isSynced: Bool?
        /// When the slot last stopped being used, as PostgreSQL prints it (17+).
        public var inactiveSince: String?

        /// Creates a state; the fields of newer servers default to `nil`.
        public init(name: String, plugin: String?, isLogical: Bool, isTemporary: Bool = false, isActive: Bool, activePID: Int32? = nil,
                    confirmedFlushLSN: LSN? = nil, restartLSN: LSN? = nil, walStatus: String? = nil,
                    safeWALSize: Int64? = nil, invalidationReason: String? = nil, isConflicting: Bool? = nil,
                    isFailover: Bool? = nil, isSynced: Bool? = nil, inactiveSince: String? = nil) {
            self.name = name
            self.plugin = plugin
            self.isLogical = isLogical
            self.isTemporary = isTemporary
            self.isActive = isActive
            self.activePID = activePID
            self.confirmedFlushLSN = confirmedFlushLSN
            self.restartLSN = restartLSN
            self.walStatus = walStatus
            self.safeWALSize = safeWALSize
            self.invalidationReason = invalidationReason
            self.isConflicting = isConflicting
            self.isFailover = isFailover
            self.isSynced = isSynced
            self.inactiveSince = inactiveSince
        }

        /// Reads a row of ``parameterizedQuery`` (every column of `pg_replication_slots`); `nil` without a slot name.
        public init?(row: QueryResult.Row) {
            guard let name = row["slot_name"] else { return nil }
            self.init(
                name: name, plugin: row["plugin"], isLogical: row["slot_type"] == "logical", isTemporary: row.bool("temporary") ?? false,
                isActive: row.bool("active") ?? false, activePID: row["active_pid"].flatMap { Int32($0) },
                confirmedFlushLSN: row["confirmed_flush_lsn"].flatMap { LSN($0) },
                restartLSN: row["restart_lsn"].flatMap { LSN($0) }, walStatus: row["wal_status"],
                safeWALSize: row["safe_wal_size"].flatMap { Int64($0) }, invalidationReason: row["invalidation_reason"],
                isConflicting: row.bool("conflicting"), isFailover: row.bool("failover"), isSynced: row.bool("synced"),
                inactiveSince: row["inactive_since"])
        }

        /// The query for one slot by name, `$1`: every column, so that each version's columns come along.
        public static let parameterizedQuery = "SELECT * FROM pg_catalog.pg_replication_slots WHERE slot_name = $1"

        /// The query for the slot `name`, for the simple query protocol (a replication connection takes no parameters).
        static func query(literal name: String) -> String {
            "SELECT * FROM pg_catalog.pg_replication_slots WHERE slot_name = \(SQLIdentifier.literal(name))"
        }

        /// On a standby: a synchronized copy that a promotion keeps (not temporary, not invalidated).
        public var survivesFailover: Bool {
            isSynced == true && !isTemporary && !isInvalidated
        }

        /// Whether the slot was invalidated and can no longer stream.
        public var isInvalidated: Bool {
            walStatus == "lost" || invalidationReason != nil || isConflicting == true
        }
    }
}
