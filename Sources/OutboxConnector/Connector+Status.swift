import Foundation
import LibPQ
import PGOutput
import RDKafka

extension Connector {
    /// Where the run loop is, as `/status` tells it; written by ``run()`` at each step.
    struct Lifecycle: Sendable {
        var state: ConnectorStatus.State = .running
        var phase: String? = "preparing"
        var since = Date()
        var waiting: ConnectorStatus.Waiting?
        var failure: ConnectorStatus.Failure?
        var lastError: ConnectorStatus.Event?
        /// The position last reported to PostgreSQL by an earlier session.
        var reportedPosition = LSN.invalid

        mutating func enter(_ state: ConnectorStatus.State, phase: String? = nil, waiting: ConnectorStatus.Waiting? = nil) {
            // STOPPING and FAILED are final: a step ending after the stop request does not undo them.
            if self.state == .failed || (self.state == .stopping && state != .failed) { return }
            if self.state != state || self.phase != phase { since = Date() }
            self.state = state
            self.phase = phase
            self.waiting = waiting
        }
    }

    /// The connector's state now, as `GET /status` answers it.
    public var status: ConnectorStatus {
        let reported = deliveries.current?.reportedPosition ?? .invalid
        let lifecycle = self.lifecycle.withLock { lifecycle in
            lifecycle.reportedPosition = max(lifecycle.reportedPosition, reported)
            return lifecycle
        }
        var state = lifecycle.state, phase = lifecycle.phase, since = lifecycle.since, waiting = lifecycle.waiting
        let kafkaReachable = metrics.isKafkaReachable
        // Waiting for Kafka is not a step of the run loop: the session streams while librdkafka reconnects and records
        // wait in the producer. It shows once /healthz would say so (unreachable or unacknowledged past --kafka-timeout).
        if state == .running, phase == "streaming", let stalled = metrics.kafkaStalledFor, stalled > options.kafkaTimeout {
            state = .waiting
            phase = nil
            since = Date().addingTimeInterval(-stalled.seconds)
            waiting = kafkaReachable
                ? ConnectorStatus.Waiting(cause: "kafka_unacknowledged", nextAttempt: nil,
                                          detail: "records have waited \(Int(stalled.seconds)) s for Kafka's acknowledgement; nothing past them is confirmed")
                : ConnectorStatus.Waiting(cause: "kafka_unreachable", nextAttempt: nil,
                                          detail: "no Kafka broker has been reachable for \(Int(stalled.seconds)) s; librdkafka reconnects at least every second, records wait in the producer and nothing past them is confirmed")
        }
        return ConnectorStatus(connector: configuration.name, state: state, phase: phase, since: since, slot: configuration.slot,
                               waiting: waiting, failure: lifecycle.failure, confirmedLSN: lifecycle.reportedPosition,
                               acknowledgedLSN: LSN(rawValue: metrics.confirmedPosition), inFlightRecords: metrics.inFlightRecords,
                               kafkaReachable: kafkaReachable, lastError: lifecycle.lastError)
    }

    /// Records a step of the run loop for ``status``.
    func record(_ state: ConnectorStatus.State, phase: String? = nil) {
        lifecycle.withLock { $0.enter(state, phase: phase) }
    }

    /// Records a backoff after `cause` for ``status``: the next attempt is `delay` from now.
    func recordWait(_ cause: ConnectorStateMachine.Failure, delay: Duration) {
        let (name, error, detail): (String, any Error, String) = switch cause {
        case .postgresUnavailable(let error): ("postgres_unavailable", error, "PostgreSQL cannot be reached or the connection broke; reconnecting with backoff")
        case .slotInUse(let error): ("slot_in_use", error, "another process streams from slot \(configuration.slot); taking over once it is free")
        case .kafkaFatal(let error): ("kafka_fatal", error, "the Kafka producer failed fatally; a new one resumes from the slot")
        case .slotRecordUnavailable(let error): ("slot_record_unavailable", error, "the slot is missing and its record in Kafka cannot be read; checking again before creating anything")
        case .permanent(let error): ("error", error, "retrying")
        }
        let now = Date()
        lifecycle.withLock {
            $0.enter(.waiting, waiting: ConnectorStatus.Waiting(cause: name, nextAttempt: now.addingTimeInterval(delay.seconds), detail: detail))
            $0.lastError = ConnectorStatus.Event(message: ConnectorConfiguration.mask("\(error)"), at: now)
        }
    }

    /// Records the error that stopped the connector for ``status``.
    func recordFailure(_ error: any Error) {
        let message = ConnectorConfiguration.mask("\(error)")
        let action = if let error = error as? ConnectorError {
            "\(error.code): do what the error says, then start the connector again; it resumes from the slot's confirmed position"
        } else {
            "fix what the error names (the configuration, a privilege, the Kafka settings), then start the connector again; it resumes from the slot's confirmed position"
        }
        lifecycle.withLock {
            $0.enter(.failed)
            $0.failure = ConnectorStatus.Failure(error: message, action: action)
            $0.lastError = ConnectorStatus.Event(message: message, at: Date())
        }
    }
}
