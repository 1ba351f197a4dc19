import LibPQ
import PGOutput
import ServiceRuntime
import Synchronization

extension Connector {
    /// What `prepare()` learnt about the database.
    struct Setup: Sendable {
        /// A connection to the server in `$.postgres.conninfo`, for checks (and heartbeats when it is a primary).
        let admin: DatabaseLink
        /// A connection to `$.postgres.primaryConninfo` when the conninfo names a standby the connector decodes on
        /// (PostgreSQL 16+): the connector's writes go there while that server is in recovery.
        let primary: DatabaseLink?
        /// The outbox table's real schema and name.
        let schema: String
        let table: String
        /// The cluster's system identifier (a promoted physical standby keeps its primary's).
        let systemID: String
        /// `server_version_num`, e.g. 180006.
        let serverVersion: Int
        /// Whether the slot is (to be) created with `FAILOVER`: `$.postgres.failover`, or on by default on 17+.
        let failover: Bool
        /// What earlier replication sessions of this process saw.
        let sessions: SessionMemory

        func isOutbox(_ relation: Relation) -> Bool {
            relation.namespace == schema && relation.name == table
        }

        /// Where heartbeats go: the primary while the decoding server is a standby, the server itself once it is
        /// a primary (a promoted standby writes its own heartbeats, whatever `primaryConninfo` still names).
        var writer: DatabaseLink {
            sessions.state.withLock { $0.onStandby } ? primary ?? admin : admin
        }

        func close() async {
            await admin.close()
            await primary?.close()
        }
    }

    /// What the replication sessions of one `run()` saw, for the checks after each (re)connect.
    final class SessionMemory: Sendable {
        struct State {
            /// The timeline the last session streamed on.
            var timeline: Int?
            /// This process has streamed from the slot: it must never be created again.
            var streamed = false
            /// Another process held the slot at some point: it may have confirmed positions this one did not.
            var sharedSlot = false
            /// The decoding server was in recovery when last asked (it decodes on a standby).
            var onStandby = false
            /// The newest position a session confirmed to PostgreSQL (everything before it acknowledged by Kafka);
            /// a slot found past it was moved by something else.
            var confirmedPosition = LSN.invalid
        }

        let state = Mutex(State())
    }

    /// The first PostgreSQL version that synchronizes logical slots to standbys (`FAILOVER`).
    static let failoverSlotsVersion = 170_000

    /// Checks the database side without changing anything: what `tailgate validate --connect` reports.
    ///
    /// - Returns: One line per problem; empty when the connector can start.
    package func validateDatabase() async -> [String] {
        do {
            let setup = try await prepare(createMissing: false)
            await setup.close()
            return []
        } catch let error as ConnectorError {
            return error.problems
        } catch {
            return ["\(error)"]
        }
    }

    /// Checks the database side and, with `createMissing`, creates the publication if configured.
    ///
    /// - Throws: ``ConnectorError`` with code `setup`, one message listing what is wrong and what to do.
    func prepare(createMissing: Bool = true) async throws -> Setup {
        let admin = try await Connection.connect(configuration.conninfo)
        var problems: [String] = []
        let role = try await admin.query("SELECT rolreplication OR rolsuper AS replication, current_user AS name FROM pg_catalog.pg_roles WHERE rolname = current_user").first
        if role?.bool("replication") != true {
            problems.append("the role \(role?["name"] ?? "?") lacks the REPLICATION attribute; ALTER ROLE \(SQLIdentifier.quote(role?["name"] ?? "tailgate")) REPLICATION")
        }
        let server = try await admin.query("""
            SELECT current_setting('wal_level') AS wal_level, current_setting('server_version_num')::int AS version,
                   pg_is_in_recovery() AS recovery, system_identifier::text AS id FROM pg_control_system()
            """).first
        let walLevel = server?["wal_level"]
        if walLevel != "logical" {
            problems.append("wal_level is '\(walLevel ?? "?")'; set wal_level = logical in postgresql.conf and restart PostgreSQL")
        }
        let version = server?.int("version") ?? 0
        let onStandby = server?.bool("recovery") == true
        var primary: Connection?
        if onStandby {
            let standby = await standbyDecodingProblems(admin, version: version, systemID: server?["id"])
            problems += standby.problems
            primary = standby.primary
        }
        if configuration.failover == true && version < Self.failoverSlotsVersion {
            problems.append("$.postgres.failover is true, but PostgreSQL \(Self.versionName(version)) cannot synchronize a logical slot to standbys (PostgreSQL 17 and later can); remove \"failover\" or set it to false, and see the README's \"Failover\" for what a failover means on this version")
        }
        // PostgreSQL synchronizes only a primary's slots: one created on a standby cannot have FAILOVER.
        let failover = !onStandby && (configuration.failover ?? (version >= Self.failoverSlotsVersion))
        let quotedTable = SQLIdentifier.quoteQualified(configuration.table)
        guard let table = try await admin.query("""
            SELECT c.oid::text AS oid, n.nspname, c.relname, c.relkind::text AS relkind
            FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
            WHERE c.oid = to_regclass($1)
            """, [quotedTable]).first, let oid = table["oid"], let schema = table["nspname"], let name = table["relname"] else {
            await admin.close()
            await primary?.close()
            throw ConnectorError(.setup, "the outbox table \(configuration.table) does not exist (or the role cannot see it); check $.outbox.table and GRANT SELECT on it", problems: problems + ["the outbox table \(configuration.table) does not exist (or the role cannot see it); check $.outbox.table and GRANT SELECT on it"])
        }
        let outbox = OutboxTable(schema: schema, name: name, partitioned: table["relkind"] == "p", serverVersion: version)
        let columns = try await admin.query("""
            SELECT attname, attgenerated::text AS generated FROM pg_catalog.pg_attribute
            WHERE attrelid = $1::oid AND attnum > 0 AND NOT attisdropped ORDER BY attnum
            """, [oid]).rows
        let columnNames = columns.compactMap { $0["attname"] }
        let missing = router.requiredColumns.filter { !columnNames.contains($0) }
        if !missing.isEmpty {
            problems.append("the table \(schema).\(name) has no column(s) \(missing.joined(separator: ", ")) named in the connector file; its columns are \(columnNames.joined(separator: ", "))")
        }
        var generated: [String: String] = [:]  // mapped column → 's' (stored) or 'v' (virtual, 18+)
        for column in columns {
            if let columnName = column["attname"], router.requiredColumns.contains(columnName),
               let kind = column["generated"], !kind.isEmpty {
                generated[columnName] = kind
            }
        }
        let primaryKey = try await admin.query("SELECT 1 FROM pg_catalog.pg_index WHERE indrelid = $1::oid AND indisprimary", [oid])
        if primaryKey.rows.isEmpty {
            problems.append("the table \(schema).\(name) has no primary key; add one (e.g. on the event id column) so that replication can identify rows")
        }
        let systemID = server?["id"] ?? "unknown"
        if problems.isEmpty || !createMissing {
            try await ensurePublication(admin: admin, writer: primary, outbox: outbox, generated: generated,
                                        create: createMissing, problems: &problems)
        }
        guard problems.isEmpty else {
            await admin.close()
            await primary?.close()
            throw ConnectorError(.setup, "the database is not ready for connector \(configuration.name):\n" + problems.map { "  - \($0)" }.joined(separator: "\n"),
                                 problems: problems)
        }
        let sessions = SessionMemory()
        sessions.state.withLock { $0.onStandby = onStandby }
        var primaryAdmin: DatabaseLink?
        if let primaryConninfo = configuration.primaryConninfo, let primary {
            primaryAdmin = DatabaseLink(conninfo: primaryConninfo, connection: primary)
        }
        return Setup(admin: DatabaseLink(conninfo: configuration.conninfo, connection: admin), primary: primaryAdmin,
                     schema: schema, table: name, systemID: systemID, serverVersion: version, failover: failover,
                     sessions: sessions)
    }

    /// The outbox table as the publication checks need it.
    private struct OutboxTable {
        let schema: String
        let name: String
        let partitioned: Bool
        let serverVersion: Int

        var quoted: String { "\(SQLIdentifier.quote(schema)).\(SQLIdentifier.quote(name))" }
    }

    /// Checks the publication on `admin`'s server; creates it there, or on `writer` (the primary) when `admin` is a
    /// standby, then waits until the standby has replayed the creation (a slot created before that point would
    /// decode without it).
    private func ensurePublication(admin: Connection, writer: Connection?, outbox: OutboxTable, generated: [String: String],
                                   create: Bool, problems: inout [String]) async throws {
        let quotedPublication = SQLIdentifier.quote(configuration.publication)
        let publication = try await admin.query(
            "SELECT * FROM pg_catalog.pg_publication WHERE pubname = $1", [configuration.publication]).first
        let storedGenerated = generated.filter { $0.value == "s" }.keys.sorted()
        let virtualGenerated = generated.filter { $0.value == "v" }.keys.sorted()
        for column in virtualGenerated {
            problems.append("the mapped column \(column) of \(outbox.schema).\(outbox.name) is a virtual generated column, which logical replication never publishes: every event would lack it. Make it stored (ALTER TABLE \(outbox.quoted) DROP COLUMN \(SQLIdentifier.quote(column)), then ADD COLUMN \(SQLIdentifier.quote(column)) … GENERATED ALWAYS AS (…) STORED) and publish it with publish_generated_columns = stored, or map a plain column")
        }
        // Generated columns are published from 18 on, when the publication asks for them.
        let canPublishGenerated = outbox.serverVersion >= 180_000
        guard let publication else {
            if !canPublishGenerated {
                for column in storedGenerated { problems.append(generatedColumnProblem(column, outbox: outbox)) }
            }
            guard configuration.createPublication, create else {
                if configuration.createPublication { return } // validation only: it will be created at start
                problems.append("the publication \(configuration.publication) does not exist; create it with CREATE PUBLICATION \(quotedPublication) FOR TABLE \(outbox.quoted) WITH (\(publicationOptions(outbox, generated: !storedGenerated.isEmpty))), or set \"createPublication\": true")
                return
            }
            guard problems.isEmpty else { return }
            try await (writer ?? admin).execute("""
                CREATE PUBLICATION \(quotedPublication) FOR TABLE \(outbox.quoted) \
                WITH (\(publicationOptions(outbox, generated: !storedGenerated.isEmpty)))
                """)
            if let writer {
                try await waitForReplay(of: writer, on: admin, what: "the creation of the publication \(configuration.publication)")
            }
            logger.info("publication_created", ("publication", configuration.publication), ("table", "\(outbox.schema).\(outbox.name)"))
            return
        }
        if publication.bool("pubinsert") == false {
            problems.append("the publication \(configuration.publication) does not publish inserts; ALTER PUBLICATION \(quotedPublication) SET (publish = 'insert')")
        }
        let viaRoot = publication.bool("pubviaroot") == true
        if outbox.partitioned && !viaRoot {
            problems.append("the outbox table is partitioned but the publication \(configuration.publication) lacks publish_via_partition_root = true, so its rows arrive as rows of the partitions and none is published; ALTER PUBLICATION \(quotedPublication) SET (publish_via_partition_root = true)")
        }
        // pg_publication_tables lists what the publication really sends: a partitioned table appears itself only
        // when published via its root (otherwise its partitions appear, which the pubviaroot problem covers).
        let hasColumnLists = outbox.serverVersion >= 150_000
        let coverage = try await admin.query(hasColumnLists ? """
            SELECT t.rowfilter, a.attname FROM pg_catalog.pg_publication_tables t
            LEFT JOIN LATERAL unnest(t.attnames) AS a(attname) ON true
            WHERE t.pubname = $1 AND t.schemaname = $2 AND t.tablename = $3
            """ : """
            SELECT NULL AS rowfilter, NULL AS attname FROM pg_catalog.pg_publication_tables
            WHERE pubname = $1 AND schemaname = $2 AND tablename = $3
            """, [configuration.publication, outbox.schema, outbox.name]).rows
        let readdTable = "BEGIN; ALTER PUBLICATION \(quotedPublication) DROP TABLE \(outbox.quoted); ALTER PUBLICATION \(quotedPublication) ADD TABLE \(outbox.quoted); COMMIT;"
        guard let covered = coverage.first else {
            if !outbox.partitioned || viaRoot {
                problems.append("the publication \(configuration.publication) does not include \(outbox.schema).\(outbox.name), so nothing would be published; ALTER PUBLICATION \(quotedPublication) ADD TABLE \(outbox.quoted)")
            }
            return
        }
        if let filter = covered["rowfilter"] {
            problems.append("the publication \(configuration.publication) publishes only the rows of \(outbox.schema).\(outbox.name) WHERE \(filter): the other events would never reach Kafka, silently; remove the row filter: \(readdTable)")
        }
        let published = Set(coverage.compactMap { $0["attname"] })
        let unpublished = router.requiredColumns.filter { !published.contains($0) && generated[$0] == nil }
        if hasColumnLists && !published.isEmpty && !unpublished.isEmpty {
            problems.append("the publication \(configuration.publication) has a column list on \(outbox.schema).\(outbox.name) that leaves out the mapped column(s) \(unpublished.joined(separator: ", ")), which would arrive empty; publish every column: \(readdTable)")
        }
        for column in storedGenerated {
            // On 18 pg_publication_tables lists a generated column exactly when it is published (by
            // publish_generated_columns = stored, or by a column list naming it).
            if !canPublishGenerated || !published.contains(column) {
                problems.append(generatedColumnProblem(column, outbox: outbox))
            }
        }
    }

    private func publicationOptions(_ outbox: OutboxTable, generated: Bool) -> String {
        "publish = 'insert'" + (outbox.partitioned ? ", publish_via_partition_root = true" : "")
            + (generated && outbox.serverVersion >= 180_000 ? ", publish_generated_columns = stored" : "")
    }

    private func generatedColumnProblem(_ column: String, outbox: OutboxTable) -> String {
        let quotedPublication = SQLIdentifier.quote(configuration.publication)
        let where_ = "the mapped column \(column) of \(outbox.schema).\(outbox.name) is GENERATED ALWAYS … STORED"
        if outbox.serverVersion >= 180_000 {
            return "\(where_) and the publication \(configuration.publication) does not publish generated columns, so every event would lack it; ALTER PUBLICATION \(quotedPublication) SET (publish_generated_columns = stored)"
        }
        return "\(where_), and PostgreSQL \(Self.versionName(outbox.serverVersion)) never publishes generated columns (18 can, with publish_generated_columns = stored), so every event would lack it; make it a plain column filled by the INSERT or a trigger: ALTER TABLE \(outbox.quoted) ALTER COLUMN \(SQLIdentifier.quote(column)) DROP EXPRESSION"
    }

    static let standbyProblem = "the server in $.postgres.conninfo is a standby (pg_is_in_recovery() is true); the connector streams from the primary: name the primary, or list every host with target_session_attrs=primary (e.g. host=db1,db2 port=5432,5432 target_session_attrs=primary) so that libpq finds the primary after a failover"

    static func versionName(_ versionNumber: Int) -> String {
        "\(versionNumber / 10_000).\(versionNumber % 10_000)"
    }

    /// Checks the slot before streaming, creating it the first time if configured; returns where to start.
    ///
    /// Runs after every (re)connect, so also after a failover: the server must be a primary of the same cluster
    /// (a promoted standby keeps its primary's system identifier), the slot must be the one this connector used,
    /// not invalidated, and not ahead of what this connector confirmed. A slot that was used and is gone is never
    /// created again.
    ///
    /// - Throws: ``ConnectorError`` with code `slotLost` for a slot that disappeared, was invalidated or moved
    ///   without this connector; `setup` for a standby or another cluster behind the conninfo.
    func checkSlot(_ replication: ReplicationConnection, setup: Setup) async throws -> LSN {
        let record = SlotRecord(directory: options.stateDirectory, connector: configuration.name, schema: setup.schema,
                                admin: setup.admin, logger: logger, kafka: options.discardRecords ? nil : configuration.kafka)
        let slot = configuration.slot
        let identity = try await replication.identifySystem()
        guard identity.systemID == setup.systemID else {
            throw ConnectorError(.setup, "the server in $.postgres.conninfo is now another cluster (system identifier \(identity.systemID), was \(setup.systemID)): its slot \(slot) is not the one this connector streamed from. Point the conninfo back at the original cluster or its promoted standby; to move to a new cluster, run `tailgate backfill` there and restart")
        }
        let recovery = try await replication.simpleQuery("SELECT pg_is_in_recovery() AS recovery").first?.bool("recovery") == true
        if recovery, setup.primary == nil {
            throw ConnectorError(.setup, Self.standbyProblem)
        }
        setup.sessions.state.withLock { $0.onStandby = recovery }
        let memory = setup.sessions.state.withLock { $0 }
        let failedOver = memory.timeline.map { $0 != identity.timeline } ?? false
        guard let state = try await replication.slotState(slot) else {
            let used = if memory.streamed { true } else { try await record.contains(systemID: setup.systemID, slot: slot) }
            if used {
                throw ConnectorError(.slotLost, "replication slot \(slot) was used by this connector before and no longer exists\(failedOver ? " on the promoted server (timeline \(identity.timeline))" : ""): events committed since its last position may be missing from Kafka. Tailgate will not re-create it silently. \(Self.slotGoneCauses(version: setup.serverVersion)) To recover: create the slot (SELECT pg_create_logical_replication_slot('\(slot)', 'pgoutput'\(setup.failover ? ", failover => true" : ""))), run `tailgate backfill` for the rows written meanwhile, then \(record.forgetInstructions(systemID: setup.systemID, slot: slot)) and restart.")
            }
            guard configuration.createSlot else {
                throw ConnectorError(.setup, "replication slot \(slot) does not exist; create it with SELECT pg_create_logical_replication_slot('\(slot)', 'pgoutput'\(setup.failover ? ", failover => true" : "")), or set \"createSlot\": true")
            }
            let created = try await createSlot(replication, setup: setup, onStandby: recovery)
            try await record.remember(systemID: setup.systemID, slot: slot, since: created.consistentPoint)
            setup.sessions.state.withLock {
                $0.timeline = identity.timeline
                $0.streamed = true
            }
            logger.info("slot_created", ("slot", slot), ("consistent_point", created.consistentPoint.description),
                        ("failover", "\(setup.failover)"))
            return created.consistentPoint
        }
        metrics.slot(walStatus: state.walStatus, safeWALSize: state.safeWALSize)
        guard state.isLogical, state.plugin == "pgoutput" else {
            throw ConnectorError(.setup, "replication slot \(slot) is not a logical pgoutput slot (plugin \(state.plugin ?? "none")); choose another slot name")
        }
        if state.isInvalidated {
            throw invalidatedSlotError(state, setup: setup)
        }
        if state.isActive {
            // Another connector holds it (START_REPLICATION will say 55006 and the run loop waits): whatever it
            // confirms is legitimately past what this process confirmed.
            setup.sessions.state.withLock { $0.sharedSlot = true }
        }
        let confirmed = memory.confirmedPosition
        let slotPosition = state.confirmedFlushLSN ?? .invalid
        if confirmed != .invalid, !memory.sharedSlot, slotPosition > confirmed {
            throw ConnectorError(.slotLost, "replication slot \(slot) is at \(slotPosition), past \(confirmed), the last position this connector confirmed\(failedOver ? " before the failover" : ""): something else consumed from it, or it is not the slot this connector used. Events committed in between may be missing from Kafka. Nothing was streamed. To recover: run `tailgate backfill --condition` for the rows written since \(confirmed)'s commit time, then restart")
        }
        if setup.failover != (state.isFailover ?? false), setup.serverVersion >= Self.failoverSlotsVersion, !state.isActive {
            try await replication.alterSlot(slot, failover: setup.failover)
            logger.info("slot_failover_changed", ("slot", slot), ("failover", "\(setup.failover)"))
        }
        try await record.remember(systemID: setup.systemID, slot: slot, since: slotPosition)
        var start = max(confirmed, slotPosition)
        if failedOver, confirmed > slotPosition {
            start = await startAfterFailover(replication, confirmed: confirmed, slotPosition: slotPosition,
                                             from: memory.timeline ?? 1, into: identity.timeline)
        }
        if failedOver {
            logger.warning("failover_followed", ("slot", slot), ("timeline", "\(memory.timeline ?? 0)->\(identity.timeline)"),
                           ("slot_position", slotPosition.description), ("start", start.description))
        }
        setup.sessions.state.withLock {
            $0.timeline = identity.timeline
            $0.streamed = true
        }
        return start
    }

    /// Where to start on a promoted server when this connector had confirmed past the synchronized slot.
    ///
    /// Positions before the timeline switch are the same WAL on both servers; past it the new primary wrote its
    /// own. Confirmed positions up to the switch point are kept (no duplicates); anything this connector
    /// published past it came from transactions the new primary does not have, and is reported.
    private func startAfterFailover(_ replication: ReplicationConnection, confirmed: LSN, slotPosition: LSN,
                                    from previous: Int, into timeline: Int) async -> LSN {
        let switchPoint: LSN
        do {
            switchPoint = try await replication.timelineSwitchPoint(from: previous, into: timeline) ?? slotPosition
        } catch {
            logger.warning("timeline_history_failed", ("error", error.description))
            return slotPosition
        }
        if confirmed > switchPoint {
            logger.error("published_past_failover", ("slot", configuration.slot), ("switch_point", switchPoint.description),
                         ("published_up_to", confirmed.description),
                         ("detail", "events from transactions committed between these positions on the old primary were published to Kafka, but the promoted server does not have those transactions; set synchronized_standby_slots on the primary to prevent this (see the README's Failover)"))
        }
        return max(slotPosition, min(confirmed, switchPoint))
    }

    private static func slotGoneCauses(version: Int) -> String {
        if version < failoverSlotsVersion {
            return "If the database failed over: PostgreSQL \(versionName(version)) does not copy logical slots to standbys (17+ does, with failover slots)."
        }
        return "If the database failed over: the slot was not synchronized to the promoted standby (it needs FAILOVER, sync_replication_slots = on and hot_standby_feedback = on on the standby, and its first synchronization; `tailgate validate --connect --standby` checks them)."
    }

    /// The stop for an invalidated slot, saying what invalidated it (17+) and what to do.
    func invalidatedSlotError(_ state: ReplicationConnection.SlotState, setup: Setup) -> ConnectorError {
        let since = state.confirmedFlushLSN?.description ?? "its last position"
        let recovery = "Drop and re-create it (SELECT pg_drop_replication_slot('\(state.name)'); the connector creates it again only after you remove its line from the slot record), then run `tailgate backfill` for the rows written since \(since)."
        let cause: String
        // 16 has no invalidation_reason, and its `conflicting` is true for every invalidation (wal_removed too): on
        // a standby it is taken for a recovery conflict, on a primary for lost WAL.
        let onStandby = setup.sessions.state.withLock { $0.onStandby }
        let invalidation = state.invalidationReason ?? (state.isConflicting == true && onStandby ? "conflicting" : nil)
        switch invalidation {
        case "idle_timeout":
            cause = "it was unused for longer than idle_replication_slot_timeout, so PostgreSQL invalidated it (its WAL may still be there, but an invalidated slot cannot stream). Raise idle_replication_slot_timeout or set it to 0 for this server, and keep the connector running"
        case "rows_removed":
            cause = "catalog rows it needed were removed (a recovery conflict: on a standby, hot_standby_feedback must be on and the physical slot in use)"
        case "conflicting":
            cause = "a recovery conflict on the standby invalidated it (PostgreSQL 16 does not say which, and it also says conflicting when max_slot_wal_keep_size removed its WAL: rows_removed, the primary vacuumed catalog rows the slot needed, so set hot_standby_feedback = on and primary_slot_name on the standby; or wal_level_insufficient, wal_level was lowered below logical on the primary)"
        case "wal_level_insufficient":
            cause = "wal_level was lowered below logical on the primary. Set wal_level = logical and restart PostgreSQL"
        case "wal_removed", nil:
            cause = "the WAL it needed is gone (max_slot_wal_keep_size was exceeded while the connector was behind or away)"
        case let other?:
            cause = "PostgreSQL reports invalidation_reason = \(other)"
        }
        let reason = state.invalidationReason.map { ", invalidation_reason = \($0)" }
            ?? (invalidation == nil ? "" : ", conflicting = true")
        return ConnectorError(.slotLost, "replication slot \(state.name) is invalidated (wal_status = \(state.walStatus ?? "lost")\(reason)): \(cause). \(recovery)")
    }

    /// Exports the slot's `wal_status` and `safe_wal_size`; throws ``ConnectorError`` `slotLost` if the slot was
    /// invalidated. A check that fails (the network, a deadline) is logged, not thrown: ``SlotWatcher`` runs this
    /// beside the stream.
    func watchSlot(_ setup: Setup) async throws {
        let row: QueryResult.Row?
        do {
            row = try await setup.admin.query(deadline: SlotWatcher.queryDeadline, """
                SELECT s.*, pg_catalog.pg_is_in_recovery() AS recovery,
                       pg_catalog.pg_wal_lsn_diff(CASE WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_last_wal_replay_lsn()
                                                       ELSE pg_catalog.pg_current_wal_lsn() END, s.restart_lsn)::bigint::text AS retained
                FROM pg_catalog.pg_replication_slots s WHERE s.slot_name = $1
                """, [configuration.slot]).first
        } catch {
            logger.warning("slot_check_failed", ("error", "\(error)"))
            return
        }
        guard let row, let state = ReplicationConnection.SlotState(row: row) else { return }
        if let recovery = row.bool("recovery") {
            setup.sessions.state.withLock { $0.onStandby = recovery }
        }
        metrics.slot(walStatus: state.walStatus, safeWALSize: state.safeWALSize, retainedWAL: row["retained"].flatMap { Int64($0) })
        await exportReplayLag(setup, onStandby: row.bool("recovery") == true)
        if state.isInvalidated {
            throw invalidatedSlotError(state, setup: setup)
        }
        if state.walStatus == "unreserved" {
            logger.warning("slot_at_risk", ("slot", configuration.slot), ("safe_wal_size", state.safeWALSize.map { "\($0)" } ?? ""),
                           ("detail", "the slot's WAL is past max_slot_wal_keep_size and will be removed at the next checkpoint unless the connector catches up"))
        }
    }
}
