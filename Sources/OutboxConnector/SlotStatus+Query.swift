import Foundation
import LibPQ
import Observability
import PGOutput

extension SlotStatus {
    /// Reads the slot, publication and failover state of `configuration`'s database. Changes nothing.
    ///
    /// The slot's columns come through ``ReplicationConnection/SlotState`` (`conflicting` from 16,
    /// `invalidation_reason` and `failover` from 17). With `standby`, failover readiness is
    /// ``Connector/validateFailover(standby:)``'s. While no connector holds the slot, the lag in time is the age of the oldest
    /// transaction the slot has not confirmed, read by peeking at one transaction of the slot (which holds the slot
    /// for that moment; a connector starting then retries, as it does for any busy slot).
    ///
    /// - Parameters:
    ///   - configuration: The connector file.
    ///   - standby: A standby's connection string, to check failover readiness on both servers (PostgreSQL 17+).
    /// - Throws: ``PostgresError`` when the primary cannot be reached or queried.
    package static func read(configuration: ConnectorConfiguration, standby: String? = nil) async throws -> SlotStatus {
        let db = try await Connection.connect(configuration.conninfo)
        do {
            let status = try await read(db, configuration: configuration, standby: standby)
            await db.close()
            return status
        } catch {
            await db.close()
            throw error
        }
    }

    private static func read(_ db: Connection, configuration: ConnectorConfiguration, standby: String?) async throws -> SlotStatus {
        let server = try await db.query("""
            SELECT current_setting('server_version_num')::int::text AS version, pg_catalog.pg_is_in_recovery() AS recovery
            """).first
        let version = server?.int("version") ?? 0
        let onStandby = server?.bool("recovery") == true
        if onStandby && version < Connector.standbyDecodingVersion {
            throw PostgresError(code: .connectionFailed, message: "postgres.conninfo points at a standby (in recovery) of PostgreSQL \(Connector.versionName(version)), which cannot decode on a standby (16+ can); point it at the primary the connector streams from")
        }
        // The slot's own columns through LibPQ's SlotState (every version's columns); the derived ones beside them.
        let state = try await db.query(ReplicationConnection.SlotState.parameterizedQuery, [configuration.slot])
            .first.flatMap(ReplicationConnection.SlotState.init(row:))
        // On a standby the WAL there is what it replayed.
        let row = try await db.query("""
            SELECT here.position::text AS current_lsn,
                   pg_catalog.pg_wal_lsn_diff(here.position, s.restart_lsn)::bigint::text AS retained,
                   pg_catalog.pg_wal_lsn_diff(here.position, s.confirmed_flush_lsn)::bigint::text AS lag,
                   extract(epoch FROM r.flush_lag)::text AS flush_lag,
                   extract(epoch FROM r.reply_time)::text AS reply_time,
                   coalesce(host(r.client_addr), CASE WHEN r.pid IS NOT NULL THEN 'local' END) AS client
            FROM (SELECT CASE WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_last_wal_replay_lsn()
                              ELSE pg_catalog.pg_current_wal_lsn() END AS position) AS here
            LEFT JOIN pg_catalog.pg_replication_slots s ON s.slot_name = $1
            LEFT JOIN pg_catalog.pg_stat_replication r ON r.pid = s.active_pid
            """, [configuration.slot]).first
        // A standby's own slot cannot be a failover slot; its promotion keeps it (see ``SlotStatus/standby``).
        let supportsFailover = version >= Connector.failoverSlotsVersion && !onStandby
        var status = SlotStatus(
            name: configuration.slot, serverVersion: version, exists: state != nil,
            isLogicalPgoutput: state.map { $0.isLogical && $0.plugin == "pgoutput" },
            active: state?.isActive ?? false, activePID: state?.activePID, activeClient: row?["client"],
            walStatus: state?.walStatus,
            // 16's `conflicting` is true for every invalidation, wal_removed included: a conflict only on a standby.
            invalidationReason: state?.invalidationReason ?? (state?.isConflicting == true && onStandby ? "conflicting" : nil),
            currentLSN: row?["current_lsn"], restartLSN: state?.restartLSN?.description,
            confirmedFlushLSN: state?.confirmedFlushLSN?.description, retainedWALBytes: row?["retained"].flatMap { Int64($0) },
            lagBytes: row?["lag"].flatMap { Int64($0) }, safeWALSizeBytes: state?.safeWALSize, lagSeconds: nil, lagSource: "none",
            lastReply: row?["reply_time"].flatMap { Double($0) }.map { Date(timeIntervalSince1970: $0) },
            publication: try await publication(db, configuration: configuration),
            failover: Failover(supported: supportsFailover, enabled: supportsFailover ? state?.isFailover : nil))
        if let state, state.isActive {
            // NULL once the connector has caught up and WAL is quiet (PostgreSQL's documented meaning).
            status.lagSeconds = row?["flush_lag"].flatMap { Double($0) } ?? 0
            status.lagSource = "flush_lag"
        } else if let state, !state.isInvalidated, status.isLogicalPgoutput == true {
            if let age = try? await oldestUnconfirmedCommitAge(db, configuration: configuration) {
                status.lagSeconds = age
                status.lagSource = "oldest_unconfirmed_commit"
            }
        }
        if onStandby {
            status.standby = try await standbyLag(db, configuration: configuration)
        }
        if supportsFailover {
            status.failover.synchronizedStandbySlots = try await db.query("SELECT current_setting('synchronized_standby_slots', true) AS value").first?["value"]
            if let standby {
                // The same checks as `tailgate validate --connect --standby`, on both servers.
                let readiness = await Connector(configuration: configuration, logger: EventLogger(minimumLevel: .error))
                    .validateFailover(standby: standby)
                status.failover.standbyChecked = true
                status.failover.ready = readiness.ready
                status.failover.problems = readiness.problems
            }
        } else if standby != nil {
            status.failover.standbyChecked = true
        }
        return status
    }

    /// The standby's replay lag: in time from its own clock, in bytes against `postgres.primaryConninfo` when set
    /// and reachable.
    private static func standbyLag(_ standby: Connection, configuration: ConnectorConfiguration) async throws -> Standby {
        let replay = try await standby.query(Connector.replayLagQuery).first
        var lag = Standby(replayLagSeconds: replay?["seconds"].flatMap { Double($0) })
        if let primaryConninfo = configuration.primaryConninfo, let replayed = replay?["replayed"].flatMap({ LSN($0) }),
           let primary = try? await Connection.connect(primaryConninfo) {
            let current = try? await primary.query("SELECT pg_catalog.pg_current_wal_lsn()::text AS lsn").first?["lsn"].flatMap { LSN($0) }
            await primary.close()
            if let current {
                lag.replayLagBytes = current >= replayed ? Int64(current.rawValue - replayed.rawValue) : 0
            }
        }
        return lag
    }

    private static func publication(_ db: Connection, configuration: ConnectorConfiguration) async throws -> Publication {
        let table = try await db.query("""
            SELECT n.nspname, c.relname, c.relkind::text AS relkind
            FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
            WHERE c.oid = to_regclass($1)
            """, [SQLIdentifier.quoteQualified(configuration.table)]).first
        let publication = try await db.query("""
            SELECT p.pubinsert, p.pubviaroot,
                   EXISTS (SELECT 1 FROM pg_catalog.pg_publication_tables t
                           WHERE t.pubname = p.pubname AND t.schemaname = $2 AND t.tablename = $3) AS covers
            FROM pg_catalog.pg_publication p WHERE p.pubname = $1
            """, [configuration.publication, table?["nspname"] ?? "", table?["relname"] ?? ""]).first
        return Publication(name: configuration.publication, table: [configuration.table.schema, configuration.table.name].compactMap { $0 }.joined(separator: "."), exists: publication != nil,
                           tableExists: table != nil, publishesInserts: publication?.bool("pubinsert") ?? false,
                           coversTable: publication?.bool("covers") ?? false, partitioned: table?["relkind"] == "p",
                           viaRoot: publication?.bool("pubviaroot") ?? false)
    }

    /// Seconds since the oldest transaction the slot still has to deliver committed; 0 when it has none.
    ///
    /// Peeks at the first transaction pgoutput would send (without consuming it) and reads its Begin message's
    /// commit timestamp. Bounded by a statement timeout: a huge backlog of unrelated WAL is not worth a long wait.
    private static func oldestUnconfirmedCommitAge(_ db: Connection, configuration: ConnectorConfiguration) async throws -> Double? {
        let rows = try await db.transaction { [slot = configuration.slot, publication = configuration.publication] session in
            try session.query("SET LOCAL statement_timeout = '5s'")
            return try session.query("""
                SELECT encode(data, 'hex') AS hex FROM pg_catalog.pg_logical_slot_peek_binary_changes($1, NULL, 1,
                    'proto_version', '1', 'publication_names', $2)
                """, [slot, publication]).rows.compactMap { $0["hex"] }
        }
        for hex in rows {
            let bytes = Self.bytes(hex: hex)
            guard bytes.first == UInt8(ascii: "B") else { continue }
            if case .begin(let begin)? = try? PGOutputMessage.decode(bytes) {
                return max(0, Date().timeIntervalSince(begin.commitTime.date))
            }
        }
        return rows.isEmpty ? 0 : nil
    }

    private static func bytes(hex: String) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(hex.utf8.count / 2)
        var high: UInt8?
        for character in hex.utf8 {
            let nibble: UInt8 = character <= UInt8(ascii: "9") ? character - UInt8(ascii: "0") : character - UInt8(ascii: "a") + 10
            if let value = high {
                bytes.append(value << 4 | nibble)
                high = nil
            } else {
                high = nibble
            }
        }
        return bytes
    }
}
