import Foundation
import Observability
import RDKafka

/// The connector's counters and gauges, rendered in Prometheus text format.
///
/// Built like the consumer's `OutboxConsumer.ConsumerMetrics`: one ``Snapshot`` value read as a whole, changed in
/// one step per event, rendered for `/metrics` with the connector's name as the `connector` label.
public final class ConnectorMetrics: Sendable {
    /// Every counter and gauge of the connector, as ``snapshot`` reads them.
    public struct Snapshot: Sendable, Hashable {
        /// Records acknowledged by Kafka, per topic.
        public var delivered: [String: Int] = [:]
        /// Outbox rows sent to the dead-letter topic, per topic.
        public var deadLettered: [String: Int] = [:]
        /// Records produced and not yet acknowledged.
        public var inFlight = 0
        /// The WAL position last confirmed to PostgreSQL.
        public var confirmedLSN: UInt64 = 0
        /// The server's WAL end, as the stream last reported it.
        public var serverWALEnd: UInt64 = 0
        /// Replication reconnects.
        public var reconnects = 0
        /// Heartbeat messages emitted.
        public var heartbeats = 0
        /// Invalid traceparent/tracestate values left out of records.
        public var traceContextsDropped = 0
        /// Unix time of the last heartbeat message emitted.
        public var lastHeartbeat: Double?
        /// The slot's `wal_status` (empty before the first check).
        public var walStatus = ""
        /// WAL that can still be written before the slot is at risk.
        public var safeWALSize: Int64?
        /// WAL PostgreSQL keeps for the slot.
        public var retainedWAL: Int64?
        /// From a transaction's commit to Kafka's acknowledgement of its record.
        public var latency = PrometheusHistogram(upperBounds: PrometheusHistogram.latencySeconds)
        /// Whether the connector streams.
        public var streaming = false
        /// Since when records have waited without an acknowledgement (the last one, or the first record sent
        /// while none was in flight); `nil` with nothing in flight.
        public var unacknowledgedSince: ContinuousClock.Instant?
        /// Since when no broker has been reachable; `nil` while one is.
        public var kafkaUnreachableSince: ContinuousClock.Instant?
        /// The decoding server's replay lag behind the primary; `nil` while it is a primary.
        package var standby: SlotStatus.Standby?
    }

    private let registry = MetricsRegistry(Snapshot())
    private let connector: String

    /// Creates metrics for the connector named `connector`.
    public init(connector: String) {
        self.connector = connector
    }

    /// Every counter and gauge, as they are now.
    public var snapshot: Snapshot { registry.snapshot }

    /// Records a batch of delivery reports in one step: the acknowledged ones counted by topic (dead letters
    /// apart), their commit→acknowledgement latencies, and the records still in flight (progress).
    func acknowledged(_ reports: [DeliveryReport], deadLetterTopic: String?, latencies: [Double], inFlight: Int) {
        registry.update { state in
            var progressed = false
            for report in reports where report.error == nil {
                progressed = true
                if report.topic == deadLetterTopic {
                    state.deadLettered[report.topic, default: 0] += 1
                } else {
                    state.delivered[report.topic, default: 0] += 1
                }
            }
            for seconds in latencies { state.latency.observe(seconds) }
            Self.record(inFlight: inFlight, progressed: progressed, in: &state)
        }
    }
    /// Records the number of records in flight (sent; acknowledgements come through
    /// ``acknowledged(_:deadLetterTopic:latencies:inFlight:)``).
    func setInFlight(_ count: Int) {
        registry.update { Self.record(inFlight: count, progressed: false, in: &$0) }
    }
    /// The in-flight gauge and since when records wait: reset by an acknowledgement (`progressed`), started by the
    /// first record sent while none was in flight, cleared when none is.
    private static func record(inFlight count: Int, progressed: Bool, in state: inout Snapshot) {
        if count == 0 {
            state.unacknowledgedSince = nil
        } else if progressed || state.unacknowledgedSince == nil {
            state.unacknowledgedSince = .now
        }
        state.inFlight = count
    }
    func kafkaReachable(_ reachable: Bool) {
        registry.update { state in
            if reachable { state.kafkaUnreachableSince = nil } else if state.kafkaUnreachableSince == nil { state.kafkaUnreachableSince = .now }
        }
    }
    func confirmed(_ lsn: UInt64) { registry.update { $0.confirmedLSN = max($0.confirmedLSN, lsn) } }
    func serverWALEnd(_ lsn: UInt64) { registry.update { $0.serverWALEnd = max($0.serverWALEnd, lsn) } }
    func reconnected() { registry.update { $0.reconnects += 1 } }
    func heartbeat() {
        let now = Date().timeIntervalSince1970
        registry.update {
            $0.heartbeats += 1
            $0.lastHeartbeat = now
        }
    }
    func traceContextDropped() { registry.update { $0.traceContextsDropped += 1 } }
    func setStreaming(_ streaming: Bool) { registry.update { $0.streaming = streaming } }
    func slot(walStatus: String?, safeWALSize: Int64?, retainedWAL: Int64? = nil) {
        registry.update {
            $0.walStatus = walStatus ?? ""
            $0.safeWALSize = safeWALSize
            if let retainedWAL { $0.retainedWAL = retainedWAL }
        }
    }
    /// Records the standby's replay lag (`nil`: the slot is on a primary, and the lag series disappear).
    func standby(_ lag: SlotStatus.Standby?) { registry.update { $0.standby = lag } }

    /// Events acknowledged by Kafka, all topics.
    public var deliveredTotal: Int { snapshot.delivered.values.reduce(0, +) }
    /// Records produced and not yet acknowledged.
    public var inFlightRecords: Int { snapshot.inFlight }
    /// Whether a Kafka broker is reachable, as librdkafka last reported (`true` before any report).
    public var isKafkaReachable: Bool { snapshot.kafkaUnreachableSince == nil }
    /// The newest position Kafka's acknowledgements released for confirmation (`tailgate_confirmed_lsn`).
    var confirmedPosition: UInt64 { snapshot.confirmedLSN }
    /// Whether the connector is streaming now.
    public var isStreaming: Bool { snapshot.streaming }

    /// How long Kafka has left records unacknowledged (`nil`: nothing waits), or been unreachable (no broker up),
    /// whichever is longer.
    public var kafkaStalledFor: Duration? {
        let state = snapshot, now = ContinuousClock.now
        return [state.unacknowledgedSince, state.kafkaUnreachableSince].compactMap { $0.map { now - $0 } }.max()
    }

    /// What `/healthz` answers: streaming, and Kafka not stalled for longer than `kafkaTimeout`.
    public func isHealthy(kafkaTimeout: Duration) -> Bool {
        guard isStreaming else { return false }
        guard let stalled = kafkaStalledFor else { return true }
        return stalled <= kafkaTimeout
    }

    /// The Prometheus text exposition.
    public func render() -> String {
        let s = snapshot
        let connector = [("connector", self.connector)]
        var text = PrometheusText()
        text.family("tailgate_events_delivered_total", .counter, help: "Outbox events acknowledged by Kafka.")
        for (topic, count) in s.delivered.sorted(by: { $0.key < $1.key }) {
            text.sample("tailgate_events_delivered_total", labels: connector + [("topic", topic)], count)
        }
        text.family("tailgate_events_dead_lettered_total", .counter, help: "Outbox rows sent to the dead-letter topic.")
        for (topic, count) in s.deadLettered.sorted(by: { $0.key < $1.key }) {
            text.sample("tailgate_events_dead_lettered_total", labels: connector + [("topic", topic)], count)
        }
        text.gauge("tailgate_in_flight_records", help: "Records produced and not yet acknowledged.", labels: connector, s.inFlight)
        text.gauge("tailgate_confirmed_lsn", help: "The WAL position last confirmed to PostgreSQL.", labels: connector, s.confirmedLSN)
        text.gauge("tailgate_replication_lag_bytes", help: "Server WAL end minus the confirmed position.", labels: connector,
                   s.serverWALEnd > s.confirmedLSN ? s.serverWALEnd - s.confirmedLSN : 0)
        text.counter("tailgate_reconnects_total", help: "Replication reconnects.", labels: connector, s.reconnects)
        text.counter("tailgate_heartbeats_total", help: "Heartbeat messages emitted.", labels: connector, s.heartbeats)
        text.family("tailgate_last_heartbeat_timestamp_seconds", .gauge, help: "Unix time of the last heartbeat message emitted.")
        if let lastHeartbeat = s.lastHeartbeat { text.sample("tailgate_last_heartbeat_timestamp_seconds", labels: connector, lastHeartbeat) }
        text.counter("tailgate_trace_context_dropped_total", help: "Invalid traceparent/tracestate values left out of records.",
                     labels: connector, s.traceContextsDropped)
        text.gauge("tailgate_streaming", help: "1 while the connector streams.", labels: connector, s.streaming ? 1 : 0)
        text.gauge("tailgate_kafka_reachable", help: "0 while no Kafka broker can be reached, else 1.", labels: connector,
                   s.kafkaUnreachableSince == nil ? 1 : 0)
        let waited = s.unacknowledgedSince.map { ContinuousClock.now - $0 } ?? .zero
        text.gauge("tailgate_kafka_unacknowledged_seconds",
                   help: "How long records have waited without an acknowledgement from Kafka (0 when none waits).", labels: connector,
                   waited.seconds)
        text.family("tailgate_slot_wal_status", .gauge, help: "The slot's wal_status (1 for the current value).")
        if !s.walStatus.isEmpty { text.sample("tailgate_slot_wal_status", labels: connector + [("wal_status", s.walStatus)], 1) }
        text.family("tailgate_slot_safe_wal_size_bytes", .gauge, help: "WAL that can still be written before the slot is at risk.")
        if let safeWALSize = s.safeWALSize { text.sample("tailgate_slot_safe_wal_size_bytes", labels: connector, safeWALSize) }
        text.family("tailgate_slot_retained_wal_bytes", .gauge, help: "WAL PostgreSQL keeps for the slot (current WAL position minus restart_lsn).")
        if let retainedWAL = s.retainedWAL { text.sample("tailgate_slot_retained_wal_bytes", labels: connector, retainedWAL) }
        text.histogram("tailgate_commit_to_ack_seconds", help: "Time from a transaction's commit to Kafka's acknowledgement of its record.",
                       labels: connector, s.latency)
        // On a primary the lag families have no sample: absent rather than 0, since 0 would claim a standby that
        // has caught up.
        text.gauge("tailgate_slot_on_standby", help: "1 while the slot is on a physical standby (decoding there, PostgreSQL 16+), else 0.",
                   labels: connector, s.standby == nil ? 0 : 1)
        text.family("tailgate_standby_replay_lag_seconds", .gauge,
                    help: "How far the standby holding the slot has replayed behind the primary, in seconds (0 when it replayed all it received); no sample on a primary.")
        if let seconds = s.standby?.replayLagSeconds { text.sample("tailgate_standby_replay_lag_seconds", labels: connector, seconds) }
        text.family("tailgate_standby_replay_lag_bytes", .gauge,
                    help: "The primary's WAL position minus the standby's replayed position; no sample on a primary or while the primary cannot be asked.")
        if let bytes = s.standby?.replayLagBytes { text.sample("tailgate_standby_replay_lag_bytes", labels: connector, bytes) }
        return text.output
    }
}
