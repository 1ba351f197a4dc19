import Foundation

extension StatusReport {
    /// Decides what needs action, filling ``findings``. Pure: reads only the report.
    ///
    /// - Parameter now: The time to measure ages against (the report's ``time`` by default).
    package mutating func evaluate(at now: Date? = nil) {
        let now = now ?? time
        var found: [Finding] = []
        if let slotError {
            found.append(Finding(.unknown, "database_unreachable", "connector \(connector)",
                                 "cannot read the slot: \(slotError). Check postgres.conninfo and that the database is up"))
        }
        if let slot { found += Self.slotFindings(slot, thresholds: thresholds) }
        if let probe = connectorProbe {
            // With no walsender on the slot, slot_inactive already says the connector is not running.
            if let error = probe.error, slot?.active != false {
                found.append(Finding(.unknown, "connector_metrics_unreachable", "connector \(connector)",
                                     "\(error). Pass --metrics HOST:PORT where the connector's metrics.listen is reachable, or --metrics none"))
            } else if let live = probe.status, live.state == .failed {
                found.append(Finding(.critical, "connector_failed", "connector \(connector)",
                                     "\(live.failure?.error ?? "failed"). \(live.failure?.action ?? "")"))
            } else if let live = probe.status, live.state == .waiting, let waiting = live.waiting {
                found.append(Finding(.attention, "connector_waiting", "connector \(connector)",
                                     "waiting (\(waiting.cause)): \(waiting.detail)"))
            } else if probe.streaming == false {
                found.append(Finding(.attention, "connector_not_streaming", "connector \(connector)",
                                     "the connector runs but does not stream (tailgate_streaming 0): it is reconnecting or waiting for the slot; read its log for event=slot_in_use, reconnect or error lines"))
            }
        }
        for failure in consumerErrors {
            found.append(Finding(.unknown, "consumer_database_unreachable", failure.database,
                                 "cannot read the consumer's tables: \(failure.error)"))
        }
        for group in consumerGroups { found += Self.groupFindings(group, thresholds: thresholds, now: now) }
        findings = found
    }

    static func slotFindings(_ slot: SlotStatus, thresholds: Thresholds) -> [Finding] {
        let subject = "slot \(slot.name)"
        var found: [Finding] = []
        found += publicationFindings(slot.publication)
        guard slot.exists else {
            found.append(Finding(.critical, "slot_missing", subject,
                                 "the replication slot does not exist: nothing is captured. Before the first start this is expected (createSlot creates it); after it, events written since it was dropped are missing from Kafka: re-create it and run `tailgate backfill` (README, Slot lifecycle)"))
            return found
        }
        if slot.isLogicalPgoutput == false {
            found.append(Finding(.critical, "slot_not_pgoutput", subject, "the slot is not a logical pgoutput slot; the connector cannot stream from it. Choose another postgres.slot"))
        }
        if slot.walStatus == "lost" || slot.invalidationReason != nil {
            let reason = slot.invalidationReason.map { " (invalidation_reason \($0))" } ?? ""
            found.append(Finding(.critical, "slot_invalidated", subject,
                                 "the slot is invalidated\(reason), wal_status \(slot.walStatus ?? "?"): the WAL it needed is gone and the connector cannot stream. Drop and re-create the slot, then `tailgate backfill` the rows written since \(slot.confirmedFlushLSN ?? "its last position")"))
        } else if slot.walStatus == "unreserved" {
            found.append(Finding(.critical, "slot_at_risk", subject,
                                 "wal_status unreserved: the slot holds more WAL than max_slot_wal_keep_size and will be invalidated at the next checkpoint unless the connector catches up now"))
        } else if slot.walStatus == "extended" {
            found.append(Finding(.attention, "slot_wal_extended", subject,
                                 "wal_status extended: the slot holds more WAL than max_wal_size (still within max_slot_wal_keep_size); the connector is behind or stopped"))
        }
        let valid = slot.walStatus != "lost" && slot.invalidationReason == nil
        if !slot.active && valid {
            found.append(Finding(.attention, "slot_inactive", subject,
                                 "no connector streams from the slot; PostgreSQL keeps WAL for it (\(Self.bytes(slot.retainedWALBytes)) so far). Start `tailgate run` or read its log"))
        }
        if valid, let lag = slot.lagBytes, lag > thresholds.lagBytes {
            found.append(Finding(.attention, "replication_lag_bytes", subject,
                                 "the connector's confirmed position is \(Self.bytes(lag)) behind the WAL (threshold \(Self.bytes(thresholds.lagBytes))): it is slow, stuck on Kafka, or stopped"))
        }
        if valid, let seconds = slot.lagSeconds, seconds > thresholds.lagSeconds {
            found.append(Finding(.attention, "replication_lag_seconds", subject,
                                 "the oldest unconfirmed change is \(Self.seconds(seconds)) old (\(slot.lagSource); threshold \(Self.seconds(thresholds.lagSeconds)))"))
        }
        if valid, let retained = slot.retainedWALBytes, retained > thresholds.retainedWALBytes {
            found.append(Finding(.attention, "retained_wal", subject,
                                 "the slot holds \(Self.bytes(retained)) of WAL (threshold \(Self.bytes(thresholds.retainedWALBytes))); the disk fills until the connector confirms"))
        }
        if let seconds = slot.standby?.replayLagSeconds, seconds > thresholds.lagSeconds {
            found.append(Finding(.attention, "standby_replay_lag", subject,
                                 "the standby holding the slot has replayed the primary's WAL only up to \(Self.seconds(seconds)) ago (threshold \(Self.seconds(thresholds.lagSeconds))): events reach Kafka that much later. Check the standby's replication (pg_stat_wal_receiver) and its load"))
        }
        found += failoverFindings(slot.failover, subject: subject)
        return found
    }

    static func publicationFindings(_ publication: SlotStatus.Publication) -> [Finding] {
        let subject = "publication \(publication.name)"
        guard publication.tableExists else {
            return [Finding(.attention, "outbox_table_missing", subject, "the outbox table \(publication.table) does not exist (or the role cannot see it); check outbox.table")]
        }
        guard publication.exists else {
            return [Finding(.attention, "publication_missing", subject, "the publication does not exist; the connector creates it at start with createPublication, otherwise CREATE PUBLICATION … FOR TABLE \(publication.table) WITH (publish = 'insert')")]
        }
        var found: [Finding] = []
        if !publication.publishesInserts {
            found.append(Finding(.critical, "publication_without_inserts", subject, "the publication does not publish inserts: outbox rows are not captured. ALTER PUBLICATION … SET (publish = 'insert')"))
        }
        if publication.partitioned && !publication.viaRoot {
            found.append(Finding(.critical, "publication_not_via_root", subject, "the outbox table is partitioned and the publication lacks publish_via_partition_root = true: the connector does not recognise its rows. ALTER PUBLICATION … SET (publish_via_partition_root = true)"))
        } else if !publication.coversTable {
            found.append(Finding(.critical, "publication_missing_table", subject, "the publication does not include \(publication.table): outbox rows are not captured. ALTER PUBLICATION … ADD TABLE \(publication.table)"))
        }
        return found
    }

    /// Failover readiness counts only when a standby was given: not every deployment has one.
    static func failoverFindings(_ failover: SlotStatus.Failover, subject: String) -> [Finding] {
        guard failover.standbyChecked else { return [] }
        guard failover.supported else {
            return [Finding(.attention, "failover_unsupported", subject, "PostgreSQL before 17 does not copy logical slots to standbys: after a failover the slot is gone (README, Slot lifecycle)")]
        }
        return failover.problems.map { problem in
            problem.hasPrefix("standby: cannot connect")
                ? Finding(.unknown, "standby_unreachable", subject, problem)
                : Finding(.attention, "failover_not_ready", subject, problem)
        }
    }

    static func groupFindings(_ group: ConsumerGroupStatus, thresholds: Thresholds, now: Date) -> [Finding] {
        let subject = "group \(group.group)"
        var found: [Finding] = []
        if let error = group.kafkaError {
            found.append(Finding(.unknown, "kafka_unreachable", subject, "cannot read Kafka's end offsets: \(error)"))
        }
        if let lag = group.totalLag, lag > thresholds.consumerLag {
            found.append(Finding(.attention, "consumer_lag", subject, "\(lag) records not applied yet (threshold \(thresholds.consumerLag)); is the consumer running and keeping up?"))
        }
        if let lag = group.totalLag, lag > 0, let last = group.lastProgress, now.timeIntervalSince(last) > thresholds.consumerStallSeconds {
            found.append(Finding(.attention, "consumer_stalled", subject, "\(lag) records wait and no offset moved for \(Self.seconds(now.timeIntervalSince(last))): the consumer is stopped or stuck (database errors are retried forever; read its log)"))
        }
        if group.deadLettered > 0 {
            found.append(Finding(.attention, "dead_letters", subject, "\(group.deadLettered) event(s) dead-lettered: `tailgate dead-letters list --topic \(group.group).dead-letter …`, fix the handler, then `tailgate dead-letters replay`"))
        }
        if let parked = group.parked, parked > 0 {
            found.append(Finding(.attention, "parked_keys", subject, "\(parked) key(s) parked behind a failing event, their later events waiting in order: `tailgate parked list --postgres …` shows why; fix the handler, then `tailgate parked release`"))
        }
        return found
    }

    /// `1.5 MiB`-style sizes.
    static func bytes(_ value: Int64?) -> String {
        guard let value else { return "-" }
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var size = Double(value)
        var unit = 0
        while abs(size) >= 1024, unit < units.count - 1 {
            size /= 1024
            unit += 1
        }
        return unit == 0 ? "\(value) B" : "\(String(format: "%.1f", size)) \(units[unit])"
    }

    /// `2.5 s`, `3 min`, `2.0 h`.
    static func seconds(_ value: Double) -> String {
        if value < 120 { return String(format: "%.1f s", value) }
        if value < 7200 { return String(format: "%.0f min", value / 60) }
        return String(format: "%.1f h", value / 3600)
    }
}
