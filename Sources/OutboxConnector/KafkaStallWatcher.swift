import Observability
import ServiceRuntime

/// Says so in the log when Kafka stalls: no broker reachable, or records waiting without an acknowledgement, for
/// longer than the connector's Kafka timeout — the moment `/healthz` turns 503 — and again when it ends.
///
/// librdkafka notices a silently dropped network only after `socket.timeout.ms` (60 s by default) and reports
/// nothing before; the stall itself is visible at once in ``ConnectorMetrics/kafkaStalledFor``, which this reads
/// once a second.
struct KafkaStallWatcher: Sendable {
    let timeout: Duration
    let metrics: ConnectorMetrics
    let logger: EventLogger

    /// Starts watching; cancel the task to stop.
    func start() -> Task<Void, Never> {
        Task {
            var detector = StallDetector(threshold: timeout, now: .now)
            while !Task.isCancelled {
                // A timer: the stall is a matter of time passing, not of an event that would announce it.
                try? await Task.sleep(for: .seconds(1))
                let now = ContinuousClock.now
                switch detector.observe(now: now, waitingSince: metrics.kafkaStalledFor.map { now - $0 }) {
                case .stalled(let waited):
                    logger.warning("kafka_stalled", ("for", "\(waited.components.seconds)s"), ("in_flight", "\(metrics.inFlightRecords)"),
                                   ("detail", "Kafka has acknowledged nothing, or no broker has been reachable, for longer than --kafka-timeout; records wait, nothing past them is confirmed, and /healthz answers 503"))
                case .recovered:
                    logger.info("kafka_stall_ended", ("detail", "Kafka acknowledges records again"))
                case nil:
                    break
                }
            }
        }
    }
}
