import Foundation
import OutboxConnector
import Testing

/// The rules that decide what needs action, on reports built by hand (no database).
@Suite struct StatusReportTests {
    static let now = Date(timeIntervalSince1970: 1_800_000_000)

    static func healthySlot(version: Int = 150_008) -> SlotStatus {
        SlotStatus(
            name: "tg", serverVersion: version, exists: true, isLogicalPgoutput: true, active: true, activePID: 4242,
            activeClient: "local", walStatus: "reserved", invalidationReason: nil, currentLSN: "0/3000000",
            restartLSN: "0/2FF0000", confirmedFlushLSN: "0/3000000", retainedWALBytes: 65_536, lagBytes: 0,
            safeWALSizeBytes: nil, lagSeconds: 0, lagSource: "flush_lag", lastReply: now,
            publication: .init(name: "tg", table: "public.outbox_event", exists: true, tableExists: true, publishesInserts: true,
                               coversTable: true, partitioned: false, viaRoot: false),
            failover: .init(supported: version >= 170_000, enabled: version >= 170_000 ? true : nil))
    }

    static func group(stored: Int64, end: Int64, movedSecondsAgo: Double = 1, deadLettered: Int = 0, parked: Int? = nil) -> ConsumerGroupStatus {
        ConsumerGroupStatus(database: "dbname=svc", group: "svc", partitions: [
            .init(topic: "events", partition: 0, storedOffset: stored, endOffset: end, startOffset: 0,
                  updatedAt: now.addingTimeInterval(-movedSecondsAgo)),
        ], deadLettered: deadLettered, parked: parked, kafkaError: nil)
    }

    static func evaluate(slot: SlotStatus? = healthySlot(), slotError: String? = nil, probe: ConnectorProbe? = nil,
                         groups: [ConsumerGroupStatus] = [], thresholds: StatusReport.Thresholds = .init()) -> StatusReport {
        var report = StatusReport(connector: "c", database: "dbname=x", time: now, slot: slot, slotError: slotError,
                                  connectorProbe: probe, consumerGroups: groups, consumerErrors: [], thresholds: thresholds)
        report.evaluate()
        return report
    }

    @Test func aHealthyPipelineNeedsNothing() {
        let report = Self.evaluate(groups: [Self.group(stored: 10, end: 10)])
        #expect(report.findings.isEmpty, "\(report.findings)")
        #expect(report.exitCode == 0)
        #expect(report.table().hasSuffix("ok: nothing needs action"))
    }

    /// A named change to a healthy slot.
    static func changed(_ change: String) -> SlotStatus {
        var s = healthySlot()
        switch change {
        case "missing": s.exists = false
        case "lost": s.walStatus = "lost"; s.active = false
        case "invalidation_reason": s.serverVersion = 170_000; s.invalidationReason = "idle_timeout"
        case "unreserved": s.walStatus = "unreserved"
        case "extended": s.walStatus = "extended"
        case "inactive": s.active = false; s.activePID = nil
        case "lag_bytes": s.lagBytes = 65 << 20
        case "lag_seconds": s.lagSeconds = 61
        case "retained": s.retainedWALBytes = 2 << 30
        case "not_pgoutput": s.isLogicalPgoutput = false
        case "no_publication": s.publication.exists = false
        case "no_table": s.publication.tableExists = false
        case "no_inserts": s.publication.publishesInserts = false
        case "not_covered": s.publication.coversTable = false
        case "partitioned": s.publication.partitioned = true
        case "standby_lag": s.standby = SlotStatus.Standby(replayLagSeconds: 61, replayLagBytes: 1 << 20)
        default: Issue.record("unknown change \(change)")
        }
        return s
    }

    @Test(arguments: [
        ("missing", "slot_missing", Int32(3)),
        ("lost", "slot_invalidated", 3),
        ("invalidation_reason", "slot_invalidated", 3),
        ("unreserved", "slot_at_risk", 3),
        ("extended", "slot_wal_extended", 2),
        ("inactive", "slot_inactive", 2),
        ("lag_bytes", "replication_lag_bytes", 2),
        ("lag_seconds", "replication_lag_seconds", 2),
        ("retained", "retained_wal", 2),
        ("not_pgoutput", "slot_not_pgoutput", 3),
        ("no_publication", "publication_missing", 2),
        ("no_table", "outbox_table_missing", 2),
        ("no_inserts", "publication_without_inserts", 3),
        ("not_covered", "publication_missing_table", 3),
        ("partitioned", "publication_not_via_root", 3),
        ("standby_lag", "standby_replay_lag", 2),
    ] as [(String, String, Int32)])
    func eachSlotProblemHasItsCodeAndExitCode(change: String, code: String, exitCode: Int32) {
        let report = Self.evaluate(slot: Self.changed(change))
        #expect(report.findings.map(\.code).contains(code), "\(report.findings)")
        #expect(report.exitCode == exitCode)
        #expect(report.table().contains(code))
    }

    @Test func anInvalidatedSlotIsNotAlsoReportedAsInactiveOrLagging() {
        var slot = Self.healthySlot()
        slot.walStatus = "lost"
        slot.active = false
        slot.lagBytes = 1 << 40
        #expect(Self.evaluate(slot: slot).findings.map(\.code) == ["slot_invalidated"])
    }

    @Test func thresholdsAreLimitsNotTriggers() {
        var slot = Self.healthySlot()
        var thresholds = StatusReport.Thresholds()
        slot.lagBytes = thresholds.lagBytes
        slot.retainedWALBytes = thresholds.retainedWALBytes
        slot.lagSeconds = thresholds.lagSeconds
        #expect(Self.evaluate(slot: slot, thresholds: thresholds).findings.isEmpty)
        thresholds.lagBytes -= 1
        #expect(Self.evaluate(slot: slot, thresholds: thresholds).findings.map(\.code) == ["replication_lag_bytes"])
    }

    @Test func consumerGroupsLagStallDeadLettersAndParkedKeys() {
        #expect(Self.evaluate(groups: [Self.group(stored: 10, end: 1_011)]).findings.map(\.code) == ["consumer_lag"])
        #expect(Self.evaluate(groups: [Self.group(stored: 10, end: 1_010)]).findings.isEmpty)
        // Lag with no offset moving for longer than the stall limit; no lag is never a stall.
        #expect(Self.evaluate(groups: [Self.group(stored: 10, end: 11, movedSecondsAgo: 301)]).findings.map(\.code) == ["consumer_stalled"])
        #expect(Self.evaluate(groups: [Self.group(stored: 10, end: 10, movedSecondsAgo: 86_400)]).findings.isEmpty)
        #expect(Self.evaluate(groups: [Self.group(stored: 10, end: 10, deadLettered: 2)]).findings.map(\.code) == ["dead_letters"])
        #expect(Self.evaluate(groups: [Self.group(stored: 10, end: 10, parked: 3)]).findings.map(\.code) == ["parked_keys"])
        #expect(Self.evaluate(groups: [Self.group(stored: 10, end: 10, parked: 0)]).findings.isEmpty)
        var unreachable = Self.group(stored: 10, end: 10)
        unreachable.kafkaError = "timed out"
        unreachable.partitions[0].endOffset = nil
        let report = Self.evaluate(groups: [unreachable])
        #expect(report.findings.map(\.code) == ["kafka_unreachable"] && report.exitCode == 1)
    }

    @Test func aPartitionWithoutAStoredOffsetLagsFromTheLogStart() {
        let partition = ConsumerGroupStatus.Partition(topic: "t", partition: 1, storedOffset: nil, endOffset: 50, startOffset: 20)
        #expect(partition.lag == 30)
    }

    @Test func theHighestSeverityIsTheExitCode() {
        var slot = Self.healthySlot()
        slot.active = false
        var lost = slot
        lost.walStatus = "lost"
        let unreachable = ConnectorProbe(address: "127.0.0.1:1", error: "nothing answers", heartbeatIntervalSeconds: 10)
        #expect(Self.evaluate(slot: slot, probe: unreachable).findings.map(\.code) == ["slot_inactive"],
                "an inactive slot already says the connector is not running")
        #expect(Self.evaluate(probe: unreachable).findings.map(\.code) == ["connector_metrics_unreachable"])
        #expect(Self.evaluate(probe: unreachable).exitCode == 1)
        #expect(Self.evaluate(slot: nil, slotError: "connection refused").exitCode == 1)
        #expect(Self.evaluate(slot: lost, groups: [Self.group(stored: 0, end: 5_000)]).exitCode == 3)
    }

    @Test func theConnectorsOwnViewCounts() {
        let notStreaming = ConnectorProbe(address: "127.0.0.1:9464", streaming: false, heartbeatIntervalSeconds: 10)
        #expect(Self.evaluate(probe: notStreaming).findings.map(\.code) == ["connector_not_streaming"])
        var probe = ConnectorProbe(address: "127.0.0.1:9464", streaming: true, lastHeartbeat: Self.now.addingTimeInterval(-4),
                                   heartbeatIntervalSeconds: 10)
        let report = Self.evaluate(probe: probe)
        #expect(report.findings.isEmpty)
        #expect(report.table().contains("last heartbeat 4.0 s ago"))
        probe.lastHeartbeat = nil
        #expect(Self.evaluate(probe: probe).table().contains("last heartbeat none yet"))
    }

    @Test func failoverReadinessCountsWhenAStandbyWasChecked() {
        func codes(version: Int = 170_002, _ change: (inout SlotStatus.Failover) -> Void) -> [String] {
            var slot = Self.healthySlot(version: version)
            slot.failover.synchronizedStandbySlots = "standby1"
            slot.failover.standbyChecked = true
            slot.failover.ready = ["standby: sync_replication_slots = on"]
            change(&slot.failover)
            return Self.evaluate(slot: slot).findings.map(\.code)
        }
        #expect(codes { _ in }.isEmpty)
        #expect(codes { $0.problems = ["primary: synchronized_standby_slots is empty, …", "standby: hot_standby_feedback is off, …"] }
                == ["failover_not_ready", "failover_not_ready"])
        #expect(codes { $0.problems = ["standby: cannot connect: timeout"] } == ["standby_unreachable"])
        // Without a standby to check, problems are shown, not flagged: not every deployment has one.
        #expect(codes { $0.standbyChecked = false; $0.problems = ["primary: the slot lacks FAILOVER"] }.isEmpty)
        #expect(codes(version: 150_008) { $0.supported = false } == ["failover_unsupported"])
        var slot = Self.healthySlot(version: 170_002)
        slot.failover.problems = ["standby: the slot tg is not synchronized here yet"]
        slot.failover.standbyChecked = true
        let table = Self.evaluate(slot: slot).table()
        #expect(table.contains("NOT READY: standby: the slot tg is not synchronized here yet"))
    }

    @Test func theJSONNamesEveryFieldAndRoundTrips() throws {
        let report = Self.evaluate(groups: [Self.group(stored: 1, end: 3_000, deadLettered: 1)])
        let json = try report.json()
        for key in ["\"walStatus\"", "\"lagBytes\"", "\"retainedWALBytes\"", "\"consumerGroups\"", "\"findings\"", "\"severity\"", "\"storedOffset\"", "\"endOffset\""] {
            #expect(json.contains(key), "\(key) missing")
        }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        let decoded = try decoder.decode(StatusReport.self, from: Data(json.utf8))
        #expect(decoded.findings == report.findings && decoded.exitCode == 2)
    }
}
