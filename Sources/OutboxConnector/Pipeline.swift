import Foundation
import LibPQ
import Observability
import PGOutput
import RDKafka
import Synchronization

/// One replication session's bookkeeping, shared between the reading loop and the producer's poll thread.
///
/// It feeds the ``AckTracker`` and forwards every position the tracker releases to the replication stream. After
/// a delivery failure it confirms nothing further.
final class Pipeline: Sendable {
    private struct State {
        var tracker: AckTracker
        var commitTimes: [UInt64: PostgresTimestamp] = [:]
        var failure: (any Error)?
    }

    private let state: Mutex<State>
    private let stream: ReplicationStream
    private let metrics: ConnectorMetrics
    private let logger: EventLogger
    private let deadLetterTopic: String?
    private let onAcknowledged: (@Sendable (Double) -> Void)?

    init(stream: ReplicationStream, startingAt position: LSN, session: UInt64, metrics: ConnectorMetrics, logger: EventLogger,
         deadLetterTopic: String?, onAcknowledged: (@Sendable (Double) -> Void)? = nil) {
        self.stream = stream
        self.onAcknowledged = onAcknowledged
        self.metrics = metrics
        self.logger = logger
        self.deadLetterTopic = deadLetterTopic
        // 2^40 tokens per session: a late report from an earlier session matches no token of this one.
        self.state = Mutex(State(tracker: AckTracker(startingAt: position, firstToken: session << 40)))
    }

    var failure: (any Error)? { state.withLock { $0.failure } }
    var inFlightRecords: Int { state.withLock { $0.tracker.inFlightRecords } }
    var confirmable: LSN { state.withLock { $0.tracker.confirmable } }

    func begin() {
        state.withLock { $0.tracker.begin() }
    }

    func commit(endLSN: LSN) {
        confirm(state.withLock { $0.tracker.commit(endLSN: endLSN) })
    }

    func keepalive(_ serverWALEnd: LSN) {
        metrics.serverWALEnd(serverWALEnd.rawValue)
        confirm(state.withLock { $0.tracker.keepalive(serverWALEnd: serverWALEnd) })
    }

    /// Registers a record of the open transaction before it is sent; returns its token.
    func recordProduced(commitTime: PostgresTimestamp) -> UInt64 {
        let (token, inFlight) = state.withLock { state in
            let token = state.tracker.recordProduced()
            state.commitTimes[token] = commitTime
            return (token, state.tracker.inFlightRecords)
        }
        metrics.setInFlight(inFlight)
        return token
    }

    func fail(_ error: any Error) {
        state.withLock { if $0.failure == nil { $0.failure = error } }
    }

    /// Called on the producer's poll thread.
    func delivered(_ report: DeliveryReport) {
        if let error = report.error {
            logger.error("delivery_failed", ("topic", report.topic), ("error", error.description))
            fail(error.isFatal ? error as any Error
                 : ConnectorError(.deliveryFailed, "Kafka did not accept a record for topic \(report.topic): \(error). Nothing past the last acknowledged transaction was confirmed; fix the cause and restart."))
            return
        }
        let (moved, commitTime, inFlight) = state.withLock { state in
            (state.tracker.acknowledged(token: report.token), state.commitTimes.removeValue(forKey: report.token), state.tracker.inFlightRecords)
        }
        metrics.setInFlight(inFlight)
        if report.topic == deadLetterTopic { metrics.deadLettered(topic: report.topic) } else { metrics.delivered(topic: report.topic) }
        if let commitTime {
            let seconds = max(0, Date().timeIntervalSince(commitTime.date))
            metrics.latency(seconds: seconds)
            onAcknowledged?(seconds)
        }
        confirm(moved)
    }

    private func confirm(_ position: LSN?) {
        guard let position, failure == nil else { return }
        stream.confirm(position)
        metrics.confirmed(position.rawValue)
    }
}
