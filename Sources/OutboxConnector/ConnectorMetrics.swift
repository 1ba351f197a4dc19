import Synchronization

/// The connector's counters and gauges, rendered in Prometheus text format.
public final class ConnectorMetrics: Sendable {
    private struct State {
        var delivered: [String: Int] = [:]
        var deadLettered: [String: Int] = [:]
        var inFlight = 0
        var confirmedLSN: UInt64 = 0
        var serverWALEnd: UInt64 = 0
        var reconnects = 0
        var heartbeats = 0
        var traceContextsDropped = 0
        var walStatus = ""
        var safeWALSize: Int64?
        var latencyBuckets = [Int](repeating: 0, count: ConnectorMetrics.latencyBounds.count + 1)
        var latencySum = 0.0
        var latencyCount = 0
        var streaming = false
    }

    /// Upper bounds (seconds) of the commit-to-acknowledgement latency histogram.
    static let latencyBounds: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

    private let state = Mutex(State())
    private let connector: String

    /// Creates metrics for the connector named `connector`.
    public init(connector: String) {
        self.connector = connector
    }

    func delivered(topic: String) { state.withLock { $0.delivered[topic, default: 0] += 1 } }
    func deadLettered(topic: String) { state.withLock { $0.deadLettered[topic, default: 0] += 1 } }
    func setInFlight(_ count: Int) { state.withLock { $0.inFlight = count } }
    func confirmed(_ lsn: UInt64) { state.withLock { $0.confirmedLSN = max($0.confirmedLSN, lsn) } }
    func serverWALEnd(_ lsn: UInt64) { state.withLock { $0.serverWALEnd = max($0.serverWALEnd, lsn) } }
    func reconnected() { state.withLock { $0.reconnects += 1 } }
    func heartbeat() { state.withLock { $0.heartbeats += 1 } }
    func traceContextDropped() { state.withLock { $0.traceContextsDropped += 1 } }
    func setStreaming(_ streaming: Bool) { state.withLock { $0.streaming = streaming } }
    func slot(walStatus: String?, safeWALSize: Int64?) {
        state.withLock {
            $0.walStatus = walStatus ?? ""
            $0.safeWALSize = safeWALSize
        }
    }
    func latency(seconds: Double) {
        state.withLock {
            let bucket = Self.latencyBounds.firstIndex { seconds <= $0 } ?? Self.latencyBounds.count
            $0.latencyBuckets[bucket] += 1
            $0.latencySum += seconds
            $0.latencyCount += 1
        }
    }

    /// Events acknowledged by Kafka, all topics.
    public var deliveredTotal: Int { state.withLock { $0.delivered.values.reduce(0, +) } }
    /// Whether the connector is streaming now (for `/healthz`).
    public var isStreaming: Bool { state.withLock { $0.streaming } }

    /// The Prometheus text exposition.
    public func render() -> String {
        let s = state.withLock { $0 }
        let label = "connector=\"\(connector)\""
        var lines: [String] = []
        func metric(_ name: String, _ type: String, _ help: String, _ samples: [(String, String)]) {
            lines.append("# HELP \(name) \(help)")
            lines.append("# TYPE \(name) \(type)")
            for (labels, value) in samples { lines.append("\(name){\(label)\(labels)} \(value)") }
        }
        metric("tailgate_events_delivered_total", "counter", "Outbox events acknowledged by Kafka.",
               s.delivered.sorted { $0.key < $1.key }.map { (",topic=\"\($0.key)\"", "\($0.value)") })
        metric("tailgate_events_dead_lettered_total", "counter", "Outbox rows sent to the dead-letter topic.",
               s.deadLettered.sorted { $0.key < $1.key }.map { (",topic=\"\($0.key)\"", "\($0.value)") })
        metric("tailgate_in_flight_records", "gauge", "Records produced and not yet acknowledged.", [("", "\(s.inFlight)")])
        metric("tailgate_confirmed_lsn", "gauge", "The WAL position last confirmed to PostgreSQL.", [("", "\(s.confirmedLSN)")])
        metric("tailgate_replication_lag_bytes", "gauge", "Server WAL end minus the confirmed position.",
               [("", "\(s.serverWALEnd > s.confirmedLSN ? s.serverWALEnd - s.confirmedLSN : 0)")])
        metric("tailgate_reconnects_total", "counter", "Replication reconnects.", [("", "\(s.reconnects)")])
        metric("tailgate_heartbeats_total", "counter", "Heartbeat messages emitted.", [("", "\(s.heartbeats)")])
        metric("tailgate_trace_context_dropped_total", "counter", "Invalid traceparent/tracestate values left out of records.",
               [("", "\(s.traceContextsDropped)")])
        metric("tailgate_streaming", "gauge", "1 while the connector streams.", [("", s.streaming ? "1" : "0")])
        metric("tailgate_slot_wal_status", "gauge", "The slot's wal_status (1 for the current value).",
               s.walStatus.isEmpty ? [] : [(",wal_status=\"\(s.walStatus)\"", "1")])
        metric("tailgate_slot_safe_wal_size_bytes", "gauge", "WAL that can still be written before the slot is at risk.",
               s.safeWALSize.map { [("", "\($0)")] } ?? [])
        lines.append("# HELP tailgate_commit_to_ack_seconds Time from a transaction's commit to Kafka's acknowledgement of its record.")
        lines.append("# TYPE tailgate_commit_to_ack_seconds histogram")
        var cumulative = 0
        for (index, bound) in Self.latencyBounds.enumerated() {
            cumulative += s.latencyBuckets[index]
            lines.append("tailgate_commit_to_ack_seconds_bucket{\(label),le=\"\(bound)\"} \(cumulative)")
        }
        cumulative += s.latencyBuckets[Self.latencyBounds.count]
        lines.append("tailgate_commit_to_ack_seconds_bucket{\(label),le=\"+Inf\"} \(cumulative)")
        lines.append("tailgate_commit_to_ack_seconds_sum{\(label)} \(s.latencySum)")
        lines.append("tailgate_commit_to_ack_seconds_count{\(label)} \(s.latencyCount)")
        return lines.joined(separator: "\n") + "\n"
    }
}
