import Foundation

/// What PostgreSQL says about a connector's replication slot, its publication and its failover copy: the
/// database half of `tailgate status`. Plain data; ``SlotStatus/read(configuration:standby:)`` gathers it and
/// ``StatusReport`` decides what needs action.
package struct SlotStatus: Sendable, Hashable, Codable {
    /// The slot name.
    package var name: String
    /// `server_version_num`, e.g. `150008`; decides which columns exist.
    package var serverVersion: Int
    /// Whether a slot with that name exists.
    package var exists: Bool
    /// Whether it is a logical slot for `pgoutput` (the only kind the connector can stream from).
    package var isLogicalPgoutput: Bool?
    /// Whether a walsender is streaming from it now.
    package var active: Bool
    /// The process id of that walsender.
    package var activePID: Int32?
    /// The connecting client of that walsender (`pg_stat_replication.client_addr`, or `local`).
    package var activeClient: String?
    /// `reserved`, `extended`, `unreserved` or `lost`.
    package var walStatus: String?
    /// Why the slot was invalidated: `invalidation_reason` on PostgreSQL 17+ (`wal_removed`, `rows_removed`,
    /// `wal_level_insufficient`, `idle_timeout`), `conflicting` on 16 when a standby's slot conflicted with
    /// recovery; `nil` when valid or not known (15).
    package var invalidationReason: String?
    /// The server's current WAL position.
    package var currentLSN: String?
    /// The oldest WAL the slot keeps.
    package var restartLSN: String?
    /// The position the connector confirmed.
    package var confirmedFlushLSN: String?
    /// WAL held for the slot: current position − `restart_lsn`.
    package var retainedWALBytes: Int64?
    /// How far the confirmed position is behind: current position − `confirmed_flush_lsn`.
    package var lagBytes: Int64?
    /// `safe_wal_size`: WAL that can still be written before the slot is at risk (`nil` without
    /// `max_slot_wal_keep_size`).
    package var safeWALSizeBytes: Int64?
    /// The lag in time, see ``lagSource``.
    package var lagSeconds: Double?
    /// Where ``lagSeconds`` comes from: `flush_lag` (PostgreSQL's own measurement while the connector streams),
    /// `oldest_unconfirmed_commit` (the commit time of the oldest transaction the slot has not confirmed, read
    /// while no connector holds the slot), or `none`.
    package var lagSource: String
    /// When the connector last reported its position (`pg_stat_replication.reply_time`).
    package var lastReply: Date?
    /// The publication and whether it streams the outbox table's inserts.
    package var publication: Publication
    /// Failover readiness (PostgreSQL 17+).
    package var failover: Failover
    /// The slot's server is a physical standby the connector decodes on (PostgreSQL 16+); `nil` on a primary.
    package var standby: Standby?

    /// Creates a value.
    package init(name: String, serverVersion: Int, exists: Bool, isLogicalPgoutput: Bool? = nil, active: Bool,
                activePID: Int32? = nil, activeClient: String? = nil, walStatus: String? = nil, invalidationReason: String? = nil,
                currentLSN: String? = nil, restartLSN: String? = nil, confirmedFlushLSN: String? = nil,
                retainedWALBytes: Int64? = nil, lagBytes: Int64? = nil, safeWALSizeBytes: Int64? = nil, lagSeconds: Double? = nil,
                lagSource: String, lastReply: Date? = nil, publication: Publication, failover: Failover, standby: Standby? = nil) {
        self.name = name
        self.serverVersion = serverVersion
        self.exists = exists
        self.isLogicalPgoutput = isLogicalPgoutput
        self.active = active
        self.activePID = activePID
        self.activeClient = activeClient
        self.walStatus = walStatus
        self.invalidationReason = invalidationReason
        self.currentLSN = currentLSN
        self.restartLSN = restartLSN
        self.confirmedFlushLSN = confirmedFlushLSN
        self.retainedWALBytes = retainedWALBytes
        self.lagBytes = lagBytes
        self.safeWALSizeBytes = safeWALSizeBytes
        self.lagSeconds = lagSeconds
        self.lagSource = lagSource
        self.lastReply = lastReply
        self.publication = publication
        self.failover = failover
        self.standby = standby
    }

    /// How far the standby holding the slot is behind its primary: every event reaches Kafka that much later.
    package struct Standby: Sendable, Hashable, Codable {
        /// Seconds since the last replayed transaction committed on the primary, 0 when the standby has replayed
        /// all it received (`pg_last_xact_replay_timestamp()`); `nil` before it replayed any.
        package var replayLagSeconds: Double?
        /// The primary's WAL position minus the standby's replayed position; `nil` without `postgres.primaryConninfo`.
        package var replayLagBytes: Int64?

        /// Creates a value.
        package init(replayLagSeconds: Double? = nil, replayLagBytes: Int64? = nil) {
            self.replayLagSeconds = replayLagSeconds
            self.replayLagBytes = replayLagBytes
        }
    }

    /// A publication's coverage of the outbox table.
    package struct Publication: Sendable, Hashable, Codable {
        /// The publication name.
        package var name: String
        /// The outbox table (`schema.table`) as configured.
        package var table: String
        /// Whether the publication exists.
        package var exists: Bool
        /// Whether the outbox table exists.
        package var tableExists: Bool
        /// Whether it publishes inserts.
        package var publishesInserts: Bool
        /// Whether the outbox table (or, when partitioned, its root) is in it.
        package var coversTable: Bool
        /// Whether the outbox table is partitioned.
        package var partitioned: Bool
        /// `publish_via_partition_root` (needed for a partitioned outbox).
        package var viaRoot: Bool

        /// Creates a value.
        package init(name: String, table: String, exists: Bool, tableExists: Bool, publishesInserts: Bool, coversTable: Bool,
                    partitioned: Bool, viaRoot: Bool) {
            self.name = name
            self.table = table
            self.exists = exists
            self.tableExists = tableExists
            self.publishesInserts = publishesInserts
            self.coversTable = coversTable
            self.partitioned = partitioned
            self.viaRoot = viaRoot
        }
    }

    /// Whether the slot would survive a failover to a standby.
    package struct Failover: Sendable, Hashable, Codable {
        /// The primary runs PostgreSQL 17 or later (slot synchronization exists).
        package var supported: Bool
        /// The slot's `failover` property.
        package var enabled: Bool?
        /// The primary's `synchronized_standby_slots`: physical slots of standbys that must confirm WAL before the
        /// connector receives it (empty: the connector may get ahead of a standby).
        package var synchronizedStandbySlots: String?
        /// Whether a standby was given (`--standby`) and checked.
        package var standbyChecked: Bool
        /// What is in place on the primary and the standby (`tailgate validate --standby`'s lines).
        package var ready: [String]
        /// What a failover would lose or break, each with its fix.
        package var problems: [String]

        /// Creates a value.
        package init(supported: Bool, enabled: Bool? = nil, synchronizedStandbySlots: String? = nil, standbyChecked: Bool = false,
                    ready: [String] = [], problems: [String] = []) {
            self.supported = supported
            self.enabled = enabled
            self.synchronizedStandbySlots = synchronizedStandbySlots
            self.standbyChecked = standbyChecked
            self.ready = ready
            self.problems = problems
        }
    }
}
