import Foundation
import LibPQ
import PGOutput

extension SlotStatus {
    /// Reads the slot, publication and failover state of `configuration`'s database. Changes nothing.
    ///
    /// Columns that only newer servers have are asked for only there (`conflicting` on 16, `invalidation_reason`,
    /// `failover` and `synced` on 17+). While no connector holds the slot, the lag in time is the age of the oldest
    /// transaction the slot has not confirmed, read by peeking at one transaction of the slot (which holds the slot
    /// for that moment; a connector starting then retries, as it does for any busy slot).
    ///
    /// - Parameters:
    ///   - configuration: The connector file.
    ///   - standby: A standby's connection string, to check the slot's synchronized copy there (PostgreSQL 17+).
    /// - Throws: ``PostgresError`` when the primary cannot be reached or queried.
    public static func read(configuration: ConnectorConfiguration, standby: String? = nil) async throws -> SlotStatus {
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
        if server?.bool("recovery") == true {
            throw PostgresError(code: .connectionFailed, message: "postgres.conninfo points at a standby (in recovery); point it at the primary the connector streams from")
        }
        var extraColumns = ""
        if version >= 160_000 { extraColumns += ", s.conflicting" }
        if version >= 170_000 { extraColumns += ", s.invalidation_reason, s.failover" }
        let row = try await db.query("""
            SELECT s.plugin, s.slot_type, s.active, s.active_pid::text AS active_pid, s.wal_status,
                   s.safe_wal_size::text AS safe_wal_size, pg_catalog.pg_current_wal_lsn()::text AS current_lsn,
                   s.restart_lsn::text AS restart_lsn, s.confirmed_flush_lsn::text AS confirmed_flush_lsn,
                   pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), s.restart_lsn)::bigint::text AS retained,
                   pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), s.confirmed_flush_lsn)::bigint::text AS lag,
                   extract(epoch FROM r.flush_lag)::text AS flush_lag,
                   extract(epoch FROM r.reply_time)::text AS reply_time,
                   coalesce(host(r.client_addr), CASE WHEN r.pid IS NOT NULL THEN 'local' END) AS client\(extraColumns)
            FROM pg_catalog.pg_replication_slots s
            LEFT JOIN pg_catalog.pg_stat_replication r ON r.pid = s.active_pid
            WHERE s.slot_name = $1
            """, [configuration.slot]).first
        let current = try await db.query("SELECT pg_catalog.pg_current_wal_lsn()::text AS lsn").first?["lsn"]
        var status = SlotStatus(
            name: configuration.slot, serverVersion: version, exists: row != nil,
            isLogicalPgoutput: row.map { $0["slot_type"] == "logical" && $0["plugin"] == "pgoutput" },
            active: row?.bool("active") ?? false, activePID: row?["active_pid"].flatMap { Int32($0) },
            activeClient: row?["client"], walStatus: row?["wal_status"],
            invalidationReason: row?["invalidation_reason"] ?? (row?.bool("conflicting") == true ? "conflicting" : nil),
            currentLSN: row?["current_lsn"] ?? current, restartLSN: row?["restart_lsn"],
            confirmedFlushLSN: row?["confirmed_flush_lsn"], retainedWALBytes: row?["retained"].flatMap { Int64($0) },
            lagBytes: row?["lag"].flatMap { Int64($0) }, safeWALSizeBytes: row?["safe_wal_size"].flatMap { Int64($0) },
            lagSeconds: nil, lagSource: "none",
            lastReply: row?["reply_time"].flatMap { Double($0) }.map { Date(timeIntervalSince1970: $0) },
            publication: try await publication(db, configuration: configuration),
            failover: Failover(supported: version >= 170_000, enabled: version >= 170_000 ? row?.bool("failover") : nil))
        if let row, status.active {
            // NULL once the connector has caught up and WAL is quiet (PostgreSQL's documented meaning).
            status.lagSeconds = row["flush_lag"].flatMap { Double($0) } ?? 0
            status.lagSource = "flush_lag"
        } else if row != nil, status.walStatus != "lost", status.invalidationReason == nil, status.isLogicalPgoutput == true {
            if let age = try? await oldestUnconfirmedCommitAge(db, configuration: configuration) {
                status.lagSeconds = age
                status.lagSource = "oldest_unconfirmed_commit"
            }
        }
        if version >= 170_000 {
            status.failover.synchronizedStandbySlots = try await db.query("SELECT current_setting('synchronized_standby_slots', true) AS value").first?["value"]
        }
        if let standby {
            status.failover.standby = await standbyCopy(conninfo: standby, slot: configuration.slot)
        }
        return status
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

    private static func standbyCopy(conninfo: String, slot: String) async -> Standby {
        var copy = Standby(conninfo: ConnectorConfiguration.mask(conninfo))
        do {
            let db = try await Connection.connect(conninfo)
            defer { Task { await db.close() } }
            let server = try await db.query("""
                SELECT current_setting('server_version_num')::int::text AS version, pg_catalog.pg_is_in_recovery() AS recovery
                """).first
            copy.inRecovery = server?.bool("recovery")
            guard server?.int("version") ?? 0 >= 170_000 else {
                copy.error = "the standby runs PostgreSQL before 17, which does not synchronize slots"
                return copy
            }
            let row = try await db.query("""
                SELECT synced, invalidation_reason, confirmed_flush_lsn::text AS confirmed_flush_lsn
                FROM pg_catalog.pg_replication_slots WHERE slot_name = $1
                """, [slot]).first
            copy.exists = row != nil
            copy.synced = row?.bool("synced")
            copy.invalidationReason = row?["invalidation_reason"]
            copy.confirmedFlushLSN = row?["confirmed_flush_lsn"]
        } catch {
            copy.error = "\(error)"
        }
        return copy
    }
}
