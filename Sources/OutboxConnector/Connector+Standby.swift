import LibPQ
import PGOutput

extension Connector {
    /// The first PostgreSQL version that decodes on a physical standby (a logical slot on a standby).
    static let standbyDecodingVersion = 160_000

    /// How long setup waits for the standby to replay what it wrote on the primary (the publication's creation).
    static let replayWait = Duration.seconds(60)

    /// How often slot creation on a standby asks the primary for a running-transactions record.
    static let standbySnapshotInterval = Duration.seconds(1)

    /// On a standby: `seconds`, how far replay is behind (`now()` minus the commit time of the last replayed
    /// transaction, 0 when it replayed all it received), and `replayed`, its replayed WAL position.
    static let replayLagQuery = """
        SELECT CASE WHEN pg_catalog.pg_last_wal_receive_lsn() = pg_catalog.pg_last_wal_replay_lsn() THEN 0
                    ELSE extract(epoch FROM now() - pg_catalog.pg_last_xact_replay_timestamp()) END::text AS seconds,
               pg_catalog.pg_last_wal_replay_lsn()::text AS replayed
        """

    /// Exports the standby's replay lag beside the slot check (``watchSlot(_:)``): in seconds from the standby's
    /// clock, in bytes against the primary (`setup.primary`); on a primary, none (the series disappear). A query
    /// that fails leaves its part out; it is logged, not thrown.
    func exportReplayLag(_ setup: Setup, onStandby: Bool) async {
        guard onStandby else {
            metrics.standby(nil)
            return
        }
        var lag = SlotStatus.Standby()
        do {
            let replay = try await setup.admin.query(deadline: SlotWatcher.queryDeadline, Self.replayLagQuery).first
            lag.replayLagSeconds = replay?["seconds"].flatMap { Double($0) }
            if let primary = setup.primary, let replayed = replay?["replayed"].flatMap({ LSN($0) }),
               let current = try await primary.query(deadline: SlotWatcher.queryDeadline, "SELECT pg_catalog.pg_current_wal_lsn()::text AS lsn")
                .first?["lsn"].flatMap({ LSN($0) }) {
                lag.replayLagBytes = current >= replayed ? Int64(current.rawValue - replayed.rawValue) : 0
            }
        } catch {
            logger.warning("replay_lag_check_failed", ("error", "\(error)"))
        }
        metrics.standby(lag)
    }

    /// What the primary and the standby need before the connector can decode on the standby, one line per problem,
    /// and the connection to `$.postgres.primaryConninfo` when it could be opened and is the primary.
    ///
    /// The standby: PostgreSQL 16+, `hot_standby_feedback = on` and `primary_slot_name` (without both, the primary
    /// vacuums catalog rows the slot needs and PostgreSQL invalidates it with `rows_removed`), no `FAILOVER`. The
    /// primary: reachable through `primaryConninfo`, not in recovery, the same cluster, `wal_level = logical`
    /// (lower, and the standby's slot is invalidated with `wal_level_insufficient`).
    func standbyDecodingProblems(_ standby: Connection, version: Int, systemID: String?) async -> (problems: [String], primary: Connection?) {
        guard version >= Self.standbyDecodingVersion else {
            return (["the server in $.postgres.conninfo is a standby (pg_is_in_recovery() is true) and PostgreSQL \(Self.versionName(version)) cannot decode on a standby (16 and later can): name the primary, or list every host with target_session_attrs=primary (e.g. host=db1,db2 port=5432,5432 target_session_attrs=primary) so that libpq finds the primary after a failover"], nil)
        }
        var problems: [String] = []
        do {
            let settings = try await standby.query("""
                SELECT current_setting('hot_standby_feedback') AS feedback, current_setting('primary_slot_name') AS primary_slot
                """).first
            if settings?["feedback"] != "on" {
                problems.append("the standby in $.postgres.conninfo has hot_standby_feedback = \(settings?["feedback"] ?? "?"): the primary may then vacuum catalog rows the slot needs, and PostgreSQL invalidates the slot (rows_removed). On the standby: ALTER SYSTEM SET hot_standby_feedback = on; SELECT pg_reload_conf();")
            }
            if (settings?["primary_slot"] ?? "").isEmpty {
                problems.append("the standby in $.postgres.conninfo has no primary_slot_name: without a physical slot on the primary, hot_standby_feedback is lost whenever the standby disconnects and the primary may vacuum catalog rows the slot needs (rows_removed). On the primary: SELECT pg_create_physical_replication_slot('standby1_slot'); on the standby: ALTER SYSTEM SET primary_slot_name = 'standby1_slot'; SELECT pg_reload_conf();")
            }
        } catch {
            problems.append("cannot read the standby's settings: \(error)")
        }
        if configuration.failover == true {
            problems.append("$.postgres.failover is true, but a slot on a standby cannot have FAILOVER (PostgreSQL synchronizes only a primary's slots; a promotion keeps a standby's own slot anyway); remove \"failover\"")
        }
        guard let primaryConninfo = configuration.primaryConninfo else {
            problems.append("the server in $.postgres.conninfo is a standby (pg_is_in_recovery() is true): to decode there (PostgreSQL 16+), set $.postgres.primaryConninfo to the primary, since a standby cannot be written: heartbeats (which keep a quiet outbox's slot moving) and slot creation's standby snapshot go to the primary, and the publication must exist there (\"createPublication\" creates it there). List every host with target_session_attrs=read-write (e.g. \"primaryConninfo\": \"host=db1,db2 port=5432,5432 dbname=shop target_session_attrs=read-write\") so that heartbeats follow a failover. To stream from the primary instead, name it in $.postgres.conninfo")
            return (problems, nil)
        }
        let primary: Connection
        do {
            primary = try await Connection.connect(primaryConninfo)
        } catch {
            problems.append("cannot connect to $.postgres.primaryConninfo (\(configuration.maskedPrimaryConninfo ?? "")): \(error)")
            return (problems, nil)
        }
        do {
            let server = try await primary.query("""
                SELECT current_setting('wal_level') AS wal_level, pg_is_in_recovery() AS recovery,
                       system_identifier::text AS id FROM pg_control_system()
                """).first
            if server?.bool("recovery") == true {
                problems.append("$.postgres.primaryConninfo names a standby (pg_is_in_recovery() is true), which cannot be written; name the primary, or list every host with target_session_attrs=read-write")
            } else if let systemID, server?["id"] != systemID {
                problems.append("$.postgres.primaryConninfo names another cluster (system identifier \(server?["id"] ?? "?"), the standby's is \(systemID)); name the primary the standby in $.postgres.conninfo replicates from")
            } else if server?["wal_level"] != "logical" {
                problems.append("wal_level on the primary ($.postgres.primaryConninfo) is '\(server?["wal_level"] ?? "?")': decoding on a standby needs wal_level = logical on the primary too (postgresql.conf there, restart); lower, PostgreSQL invalidates the standby's slot (wal_level_insufficient)")
            }
        } catch {
            problems.append("cannot query the primary ($.postgres.primaryConninfo): \(error)")
        }
        guard problems.isEmpty else {
            await primary.close()
            return (problems, nil)
        }
        return (problems, primary)
    }

    /// Waits until `standby` has replayed the primary's WAL up to now (after `what` was written there).
    ///
    /// - Throws: ``ConnectorError`` `setup` when the standby does not get there within ``replayWait``.
    func waitForReplay(of primary: Connection, on standby: Connection, what: String) async throws {
        guard let target = try await primary.query("SELECT pg_catalog.pg_current_wal_lsn()::text AS lsn").first?["lsn"] else { return }
        let deadline = ContinuousClock.now + Self.replayWait
        var delay = Duration.milliseconds(20)
        while true {
            let replayed = try await standby.query(
                "SELECT pg_catalog.pg_last_wal_replay_lsn() >= $1::pg_lsn AS done", [target]).first?.bool("done")
            if replayed == true { return }
            guard ContinuousClock.now < deadline else {
                throw ConnectorError(.setup, "the standby in $.postgres.conninfo has not replayed \(what) (primary WAL \(target)) within \(Self.replayWait): check its replication (pg_stat_wal_receiver on the standby, pg_stat_replication on the primary), then restart")
            }
            // Replay has no notification a client can wait on: a backoff delay between two reads.
            try await Task.sleep(for: delay)
            delay = min(delay * 2, .milliseconds(500))
        }
    }

    /// Creates the slot; on a standby, says what it waits for and asks the primary for standby snapshots meanwhile.
    ///
    /// A logical slot on a standby becomes consistent only at a running-transactions record written by the primary
    /// after the creation began; the primary writes one at a checkpoint or, when WAL was written, every 15 s from
    /// the background writer. `pg_log_standby_snapshot()` on the primary writes one at once; it is repeated until
    /// the creation returns, since a record taken while transactions with an xid run is not yet enough.
    ///
    /// `snapshot` `.export` exports the snapshot the slot starts from (`tailgate backfill --create-slot`); on a
    /// standby it is the standby's view at the slot's consistent point, and is imported on the standby.
    func createSlot(_ replication: ReplicationConnection, setup: Setup, onStandby: Bool,
                    snapshot: ReplicationConnection.SnapshotAction = .noExport) async throws -> ReplicationConnection.CreatedSlot {
        guard onStandby, let primary = setup.primary else {
            return try await replication.createSlot(configuration.slot, snapshot: snapshot, failover: setup.failover)
        }
        logger.info("slot_creation_waiting", ("slot", configuration.slot),
                    ("detail", "creating the slot on the standby: it waits for a running-transactions record from the primary (and for the primary's transactions open then to end); asking the primary for one with pg_log_standby_snapshot() every \(Self.standbySnapshotInterval)"))
        let began = ContinuousClock.now
        let logger = self.logger
        let snapshots = Task {
            var warned = false
            while !Task.isCancelled {
                do {
                    try await primary.query(deadline: SlotWatcher.queryDeadline, "SELECT pg_catalog.pg_log_standby_snapshot()")
                } catch {
                    if !warned {
                        logger.warning("standby_snapshot_failed", ("error", "\(error)"),
                                       ("detail", "the slot is created at the primary's next checkpoint instead; to make it quick, GRANT EXECUTE ON FUNCTION pg_catalog.pg_log_standby_snapshot() TO the role in $.postgres.primaryConninfo (superuser-only by default)"))
                        warned = true
                    }
                }
                try? await Task.sleep(for: Self.standbySnapshotInterval)
            }
        }
        defer { snapshots.cancel() }
        let created = try await replication.createSlot(configuration.slot, snapshot: snapshot, failover: false)
        logger.info("slot_created_on_standby", ("slot", configuration.slot), ("waited", "\(ContinuousClock.now - began)"))
        return created
    }
}
