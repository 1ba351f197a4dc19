import Foundation

extension StatusReport {
    /// The connector's own `/status`, beside the database's view of its slot.
    private func liveLines(_ live: ConnectorStatus) -> [String] {
        var state = live.state.rawValue + (live.phase.map { " (\($0))" } ?? "")
        state += " since \(Self.seconds(max(0, time.timeIntervalSince(live.since)))) ago"
        var lines = [row("state", state)]
        if let waiting = live.waiting {
            let next = waiting.nextAttempt.map { "next attempt in \(Self.seconds(max(0, $0.timeIntervalSince(time))))" } ?? "no attempt scheduled"
            lines.append(row("waiting", "\(waiting.cause), \(next): \(waiting.detail)"))
        }
        if let failure = live.failure {
            lines.append(row("failure", failure.error))
            lines.append(row("what to do", failure.action))
        }
        lines.append(row("confirmed", live.confirmedLSN ?? "none yet"))
        lines.append(row("acknowledged", live.acknowledgedLSN ?? "none yet"))
        lines.append(row("in flight", "\(live.inFlightRecords) records"))
        lines.append(row("kafka", live.kafkaReachable ? "reachable" : "unreachable"))
        if let error = live.lastError {
            lines.append(row("last error", "\(Self.seconds(max(0, time.timeIntervalSince(error.at)))) ago: \(error.message)"))
        }
        return lines
    }

    /// The report as readable text: the slot, the connector, each consumer group's partitions, then the findings.
    package func table() -> String {
        var lines = ["connector \(connector)  (\(database))", ""]
        if let slot {
            lines += slotLines(slot)
        } else {
            lines.append("slot: not read: \(slotError ?? "unknown error")")
        }
        if let probe = connectorProbe {
            lines.append("")
            lines.append("connector metrics (\(probe.address))")
            if let error = probe.error {
                lines.append(row("state", "not read: \(error)"))
            } else {
                lines.append(row("streaming", probe.streaming == true ? "yes" : "no"))
                let heartbeat: String
                if probe.heartbeatIntervalSeconds == 0 {
                    heartbeat = "off (heartbeatIntervalSeconds 0)"
                } else if let last = probe.lastHeartbeat {
                    heartbeat = "\(Self.seconds(max(0, time.timeIntervalSince(last)))) ago (every \(probe.heartbeatIntervalSeconds) s while the outbox is quiet)"
                } else {
                    heartbeat = "none yet (every \(probe.heartbeatIntervalSeconds) s while the outbox is quiet)"
                }
                lines.append(row("last heartbeat", heartbeat))
                if let live = probe.status { lines += liveLines(live) }
            }
        }
        for failure in consumerErrors {
            lines.append("")
            lines.append("consumers (\(failure.database)): not read: \(failure.error)")
        }
        for group in consumerGroups {
            lines.append("")
            var summary = "consumer group \(group.group)  (\(group.database))  lag \(group.totalLag.map(String.init) ?? "?")"
            summary += "  dead-lettered \(group.deadLettered)  parked \(group.parked.map(String.init) ?? "n/a")"
            lines.append(summary)
            if let error = group.kafkaError { lines.append("  Kafka not read: \(error)") }
            var rows = [["TOPIC", "PARTITION", "STORED", "END", "LAG", "LAST MOVED"]]
            for partition in group.partitions {
                rows.append([partition.topic, "\(partition.partition)", partition.storedOffset.map(String.init) ?? "-",
                             partition.endOffset.map(String.init) ?? "?", partition.lag.map(String.init) ?? "?",
                             partition.updatedAt.map { "\(Self.seconds(max(0, time.timeIntervalSince($0)))) ago" } ?? "never"])
            }
            lines += Self.columns(rows).map { "  " + $0 }
        }
        lines.append("")
        if findings.isEmpty {
            lines.append("ok: nothing needs action")
        } else {
            lines.append("needs action (exit \(exitCode)):")
            for finding in findings.sorted(by: { $0.severity > $1.severity }) {
                lines.append("  \(finding.severity) \(finding.code) [\(finding.subject)]: \(finding.message)")
            }
        }
        return lines.joined(separator: "\n")
    }

    private func slotLines(_ slot: SlotStatus) -> [String] {
        var lines = ["slot \(slot.name)  (PostgreSQL \(slot.serverVersion / 10_000).\(slot.serverVersion % 10_000))"]
        guard slot.exists else { return lines + [row("state", "does not exist")] }
        lines.append(row("active", slot.active ? "yes, pid \(slot.activePID.map(String.init) ?? "?")\(slot.activeClient.map { " from \($0)" } ?? "")" : "no"))
        lines.append(row("wal_status", slot.walStatus ?? "-"))
        lines.append(row("invalidation", slot.invalidationReason ?? (slot.serverVersion >= 170_000 ? "none" : (slot.walStatus == "lost" ? "wal_removed (inferred from wal_status)" : "none"))))
        lines.append(row("retained WAL", "\(Self.bytes(slot.retainedWALBytes))  (restart_lsn \(slot.restartLSN ?? "-"), current \(slot.currentLSN ?? "-"))"))
        var lag = "\(Self.bytes(slot.lagBytes))  (confirmed_flush_lsn \(slot.confirmedFlushLSN ?? "-"))"
        if let seconds = slot.lagSeconds {
            lag += ", \(Self.seconds(seconds)) (\(slot.lagSource))"
        }
        lines.append(row("lag", lag))
        if let safe = slot.safeWALSizeBytes { lines.append(row("safe_wal_size", Self.bytes(safe))) }
        if let reply = slot.lastReply { lines.append(row("last reply", "\(Self.seconds(max(0, time.timeIntervalSince(reply)))) ago")) }
        let publication = slot.publication
        var coverage: String
        if !publication.exists {
            coverage = "does not exist"
        } else {
            coverage = publication.coversTable || (publication.partitioned && publication.viaRoot) ? "covers \(publication.table)" : "does NOT cover \(publication.table)"
            coverage += publication.publishesInserts ? ", inserts" : ", NO inserts"
            if publication.partitioned { coverage += publication.viaRoot ? ", via partition root" : ", NOT via partition root" }
        }
        lines.append(row("publication", "\(publication.name): \(coverage)"))
        let failover = slot.failover
        if let standby = slot.standby {
            lines.append(row("on standby", "yes: replay lag \(standby.replayLagSeconds.map(Self.seconds) ?? "unknown"), \(standby.replayLagBytes.map { Self.bytes($0) } ?? "? (no primaryConninfo)") behind the primary; every event reaches Kafka that much later"))
            lines.append(row("failover", "a promotion of this standby keeps the slot; a failover to another server loses it"))
        } else if !failover.supported {
            lines.append(row("failover", "not available before PostgreSQL 17 (slots are not copied to standbys)"))
        } else {
            lines.append(row("failover", "failover \(failover.enabled == true ? "on" : "off"), synchronized_standby_slots '\(failover.synchronizedStandbySlots ?? "")'"
                             + (failover.standbyChecked ? "" : " (--standby checks a standby)")))
            for line in failover.ready { lines.append(row("", "ready: \(line)")) }
            for line in failover.problems { lines.append(row("", "NOT READY: \(line)")) }
        }
        return lines
    }

    private func row(_ name: String, _ value: String) -> String {
        "  " + name.padding(toLength: 15, withPad: " ", startingAt: 0) + value
    }

    /// Left-aligned columns, two spaces apart.
    static func columns(_ rows: [[String]]) -> [String] {
        guard let width = rows.map(\.count).max() else { return [] }
        let widths = (0..<width).map { column in rows.map { column < $0.count ? $0[column].count : 0 }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { index, cell in
                index == row.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }
    }
}
