@testable import OutboxConnector
import RDKafka
import TestSupport
import Testing

@Suite struct ConnectorMetricsTests {
    func busyMetrics() -> ConnectorMetrics {
        let metrics = ConnectorMetrics(connector: "orders")
        let report = { (topic: String) in DeliveryReport(token: 0, topic: topic, partition: 0, offset: 0, error: nil) }
        metrics.acknowledged([report("order-events"), report("catalog-events"), report("tailgate.dead-letter")],
                             deadLetterTopic: "tailgate.dead-letter", latencies: [0.004, 42], inFlight: 3)
        metrics.confirmed(0x16B3748)
        metrics.serverWALEnd(0x16B4000)
        metrics.reconnected()
        metrics.heartbeat()
        metrics.setStreaming(true)
        metrics.slot(walStatus: "reserved", safeWALSize: 1 << 30)
        return metrics
    }

    /// Every family has HELP and TYPE, and Prometheus's own checker accepts the output, idle and busy.
    @Test func promtoolAcceptsTheExposition() async throws {
        for metrics in [ConnectorMetrics(connector: "idle"), busyMetrics()] {
            let text = metrics.render()
            let (status, output) = try await promtoolCheckMetrics(text)
            #expect(status == 0, "\(output)\n\(text)")
        }
    }

    /// The names and labels dashboards and alert rules use stay as they were.
    @Test func namesAndLabelsAreUnchanged() {
        let text = busyMetrics().render()
        for line in [
            #"tailgate_events_delivered_total{connector="orders",topic="order-events"} 1"#,
            #"tailgate_events_dead_lettered_total{connector="orders",topic="tailgate.dead-letter"} 1"#,
            #"tailgate_in_flight_records{connector="orders"} 3"#,
            #"tailgate_confirmed_lsn{connector="orders"} 23803720"#,
            #"tailgate_replication_lag_bytes{connector="orders"} 2232"#,
            #"tailgate_reconnects_total{connector="orders"} 1"#,
            #"tailgate_heartbeats_total{connector="orders"} 1"#,
            #"tailgate_streaming{connector="orders"} 1"#,
            #"tailgate_slot_wal_status{connector="orders",wal_status="reserved"} 1"#,
            #"tailgate_slot_safe_wal_size_bytes{connector="orders"} 1073741824"#,
            #"tailgate_commit_to_ack_seconds_bucket{connector="orders",le="0.005"} 1"#,
            #"tailgate_commit_to_ack_seconds_bucket{connector="orders",le="10.0"} 1"#,
            #"tailgate_commit_to_ack_seconds_bucket{connector="orders",le="+Inf"} 2"#,
            #"tailgate_commit_to_ack_seconds_count{connector="orders"} 2"#,
        ] {
            #expect(text.contains("\n" + line + "\n"), "missing \(line) in\n\(text)")
        }
    }

    /// On a standby the replay lag is exported; on a primary (and after a promotion) the lag series have no sample
    /// while their families stay declared, and `tailgate_slot_on_standby` says which it is.
    @Test func theStandbyReplayLagIsExportedOnlyOnAStandby() async throws {
        let metrics = busyMetrics()
        metrics.standby(SlotStatus.Standby(replayLagSeconds: 1.5, replayLagBytes: 40960))
        let onStandby = metrics.render()
        for line in [#"tailgate_slot_on_standby{connector="orders"} 1"#,
                     #"tailgate_standby_replay_lag_seconds{connector="orders"} 1.5"#,
                     #"tailgate_standby_replay_lag_bytes{connector="orders"} 40960"#] {
            #expect(onStandby.contains("\n" + line + "\n"), "missing \(line) in\n\(onStandby)")
        }
        let (status, output) = try await promtoolCheckMetrics(onStandby)
        #expect(status == 0, "\(output)\n\(onStandby)")

        metrics.standby(SlotStatus.Standby(replayLagSeconds: 0, replayLagBytes: nil))
        let primaryUnreachable = metrics.render()
        #expect(primaryUnreachable.contains("\ntailgate_standby_replay_lag_seconds{connector=\"orders\"} 0.0\n"), "\(primaryUnreachable)")
        #expect(!primaryUnreachable.contains("\ntailgate_standby_replay_lag_bytes{"), "no byte lag while the primary cannot be asked")

        metrics.standby(nil)
        let promoted = metrics.render()
        #expect(promoted.contains("\ntailgate_slot_on_standby{connector=\"orders\"} 0\n"))
        #expect(!promoted.contains("\ntailgate_standby_replay_lag_seconds{") && !promoted.contains("\ntailgate_standby_replay_lag_bytes{"),
                "no lag sample on a primary: \(promoted)")
        #expect(promoted.contains("# TYPE tailgate_standby_replay_lag_seconds gauge\n") && promoted.contains("# TYPE tailgate_standby_replay_lag_bytes gauge\n"))
    }
}
