import Foundation
import LibPQ

extension Connector {
    /// Checks what a failover of the database needs, without changing anything (`tailgate validate --connect`,
    /// with `--standby` for the standby's side).
    ///
    /// On the primary: PostgreSQL 17+, a slot with `FAILOVER` (or one the connector will create so), and
    /// `synchronized_standby_slots` naming physical slots that exist — without it the connector can receive, and
    /// publish, transactions that the standby never got and a failover then loses. On the standby:
    /// `sync_replication_slots`, `hot_standby_feedback`, `primary_slot_name`, a `dbname` in `primary_conninfo`,
    /// `wal_level = logical`, and the slot's synchronized copy.
    ///
    /// - Parameter standby: A libpq connection string for a standby that may be promoted, or `nil`.
    /// - Returns: What is in place and what is missing.
    package func validateFailover(standby: String?) async -> FailoverReadiness {
        var report = FailoverReadiness()
        let slot = configuration.slot
        let primary: Connection
        do {
            primary = try await Connection.connect(configuration.conninfo)
        } catch {
            report.problems.append("cannot connect to the primary: \(error)")
            return report
        }
        defer { Task { await primary.close() } }
        var systemID: String?
        var standbySlots: [String] = []
        do {
            let server = try await primary.query("""
                SELECT current_setting('server_version_num')::int AS version, system_identifier::text AS id,
                       current_setting('synchronized_standby_slots', true) AS standby_slots, pg_is_in_recovery() AS recovery
                FROM pg_control_system()
                """).first
            let version = server?.int("version") ?? 0
            systemID = server?["id"]
            if server?.bool("recovery") == true {
                report.ready.append("the slot is on the standby in $.postgres.conninfo (decoding on a standby): a promotion of that standby keeps it, a failover to another server does not; failover slots do not apply (README, \"Decoding on a standby\")")
                return report
            }
            guard version >= Self.failoverSlotsVersion else {
                report.problems.append("PostgreSQL \(Self.versionName(version)) does not copy logical slots to standbys: after a failover the promoted server has no slot \(slot), and the connector stops (it never re-creates a slot it used) until you create it and run `tailgate backfill`; PostgreSQL 17+ keeps failover slots")
                return report
            }
            if configuration.failover == false {
                report.problems.append("$.postgres.failover is false: the slot is not synchronized to standbys and a failover loses it; remove the setting (failover is on by default on 17+)")
            } else if let state = try await primary.query(ReplicationConnection.SlotState.parameterizedQuery, [slot])
                .first.flatMap(ReplicationConnection.SlotState.init(row:)) {
                if state.isFailover == true {
                    report.ready.append("primary: the slot \(slot) has FAILOVER")
                } else {
                    report.problems.append("primary: the slot \(slot) lacks FAILOVER; the connector turns it on at its next start (or run ALTER_REPLICATION_SLOT \(SQLIdentifier.quote(slot)) (FAILOVER true) on a replication connection while it is not streaming)")
                }
            } else {
                report.ready.append("primary: the slot \(slot) will be created with FAILOVER")
            }
            standbySlots = (server?["standby_slots"] ?? "").split(separator: ",")
                .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            if standbySlots.isEmpty {
                report.problems.append("primary: synchronized_standby_slots is empty, so the connector may receive and publish transactions that no standby has yet, which a failover then loses; name the physical slot of each standby that may be promoted: ALTER SYSTEM SET synchronized_standby_slots = 'standby1_slot'; SELECT pg_reload_conf();")
            } else {
                let physical = try await primary.query(
                    "SELECT slot_name FROM pg_catalog.pg_replication_slots WHERE slot_type = 'physical'").rows.compactMap { $0["slot_name"] }
                let missing = standbySlots.filter { !physical.contains($0) }
                if missing.isEmpty {
                    report.ready.append("primary: synchronized_standby_slots = '\(standbySlots.joined(separator: ","))'")
                } else {
                    report.problems.append("primary: synchronized_standby_slots names \(missing.joined(separator: ", ")), which is no physical slot here, so logical decoding waits for it forever; create it (SELECT pg_create_physical_replication_slot('\(missing[0])')) or remove it from the setting")
                }
            }
        } catch {
            report.problems.append("primary: \(error)")
            return report
        }
        guard let standby else {
            report.problems.append("standby: not checked; give a standby's conninfo with --standby to check sync_replication_slots, hot_standby_feedback, primary_slot_name and the slot's synchronized copy there")
            return report
        }
        await checkStandby(standby, slot: slot, primarySystemID: systemID, standbySlots: standbySlots, report: &report)
        return report
    }

    private func checkStandby(_ conninfo: String, slot: String, primarySystemID: String?, standbySlots: [String],
                              report: inout FailoverReadiness) async {
        let connection: Connection
        do {
            connection = try await Connection.connect(conninfo)
        } catch {
            report.problems.append("standby: cannot connect: \(error)")
            return
        }
        defer { Task { await connection.close() } }
        do {
            guard let server = try await connection.query("""
                SELECT pg_is_in_recovery() AS recovery, system_identifier::text AS id,
                       current_setting('sync_replication_slots', true) AS sync_slots,
                       current_setting('hot_standby_feedback') AS feedback,
                       current_setting('primary_slot_name') AS primary_slot,
                       current_setting('wal_level') AS wal_level
                FROM pg_control_system()
                """).first else { return }
            guard server.bool("recovery") == true else {
                report.problems.append("standby: the server given with --standby is not a standby (pg_is_in_recovery() is false)")
                return
            }
            if let primarySystemID, server["id"] != primarySystemID {
                report.problems.append("standby: it is a standby of another cluster (system identifier \(server["id"] ?? "?"), the primary's is \(primarySystemID))")
                return
            }
            func require(_ ok: Bool, _ fine: String, _ problem: String) {
                if ok { report.ready.append("standby: \(fine)") } else { report.problems.append("standby: \(problem)") }
            }
            require(server["sync_slots"] == "on", "sync_replication_slots = on",
                    "sync_replication_slots is '\(server["sync_slots"] ?? "off")', so no slot is synchronized; ALTER SYSTEM SET sync_replication_slots = on; SELECT pg_reload_conf();")
            require(server["feedback"] == "on", "hot_standby_feedback = on",
                    "hot_standby_feedback is off, so the primary may remove catalog rows the synchronized slot needs; ALTER SYSTEM SET hot_standby_feedback = on; SELECT pg_reload_conf();")
            require(server["wal_level"] == "logical", "wal_level = logical",
                    "wal_level is '\(server["wal_level"] ?? "?")'; slot synchronization needs wal_level = logical on the standby too (postgresql.conf, restart)")
            let primarySlot = server["primary_slot"] ?? ""
            if primarySlot.isEmpty {
                report.problems.append("standby: primary_slot_name is empty; stream through a physical slot (SELECT pg_create_physical_replication_slot('standby1_slot') on the primary, then primary_slot_name = 'standby1_slot' here) and name it in the primary's synchronized_standby_slots")
            } else if !standbySlots.contains(primarySlot) {
                report.problems.append("standby: it streams through the physical slot \(primarySlot), which the primary's synchronized_standby_slots does not name, so the connector may get ahead of this standby; add it: ALTER SYSTEM SET synchronized_standby_slots = '\((standbySlots + [primarySlot]).joined(separator: ","))' on the primary")
            } else {
                report.ready.append("standby: primary_slot_name = '\(primarySlot)', named in synchronized_standby_slots")
            }
            // primary_conninfo may hold a password: only whether it names a database is ever reported.
            do {
                let primaryConninfo = try await connection.query("SELECT current_setting('primary_conninfo') AS value").first?["value"] ?? ""
                let namesDatabase = primaryConninfo.range(of: #"(^|\s)dbname\s*="#, options: .regularExpression) != nil
                    || primaryConninfo.range(of: #"^postgres(ql)?://[^?]*/[^/?]+"#, options: .regularExpression) != nil
                require(namesDatabase, "primary_conninfo names a database",
                        "primary_conninfo has no dbname, which slot synchronization needs; add dbname=<the outbox database> to primary_conninfo (ALTER SYSTEM SET primary_conninfo = '… dbname=…'; SELECT pg_reload_conf();)")
            } catch where error.sqlState == "42501" {
                report.problems.append("standby: this role cannot read primary_conninfo (superuser or pg_read_all_settings can); check that it contains dbname=<the outbox database>")
            }
            let copy = try await connection.query(ReplicationConnection.SlotState.parameterizedQuery, [slot])
                .first.flatMap(ReplicationConnection.SlotState.init(row:))
            if let copy, copy.survivesFailover {
                report.ready.append("standby: the slot \(slot) is synchronized (confirmed_flush_lsn \(copy.confirmedFlushLSN?.description ?? "?"))")
            } else if let copy, copy.isInvalidated {
                report.problems.append("standby: the synchronized slot \(slot) is invalidated (invalidation_reason = \(copy.invalidationReason ?? "?")); a failover now would stop the connector")
            } else if let copy, copy.isSynced == true {
                report.problems.append("standby: the slot \(slot) is being synchronized but is still temporary (it waits for the primary's slot to pass the position the standby reserved), and a promotion now would drop it; it becomes permanent once the connector has confirmed new WAL")
            } else {
                report.problems.append("standby: the slot \(slot) is not synchronized here yet, so a failover now would lose it; after the connector created it with FAILOVER the first synchronization can take 30 s or more (the standby's log says why it waits)")
            }
        } catch {
            report.problems.append("standby: \(error)")
        }
    }
}
