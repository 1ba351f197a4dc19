import Foundation
import LibPQ
import Observability
import PGOutput
import RDKafka
import Synchronization

/// One replication session's bookkeeping, shared between the reading task and the producer's poll thread.
///
/// It feeds the ``AckTracker``, which alone decides what is confirmable (after a failure, nothing more), and
/// forwards every position the tracker releases to the replication stream. Back-pressure is an event: ``waitForRoom(below:)`` parks the reading task
/// until an acknowledgement makes room, a failure ends the session, or the task is cancelled (a stop request).
final class Pipeline: Sendable {
    private struct State {
        var tracker: AckTracker
        var failure: (any Error)?
        /// The reading task waiting for fewer than `limit` records in flight.
        var roomWaiter: (continuation: CheckedContinuation<Void, any Error>, limit: Int)?
        var cancelled = false
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
    /// The position last reported to PostgreSQL as flushed.
    var reportedPosition: LSN { stream.flushedPositionSent }

    /// A Begin arrived at `position`; the transaction committed at `commitTime` (its records' acknowledgements are
    /// timed from it).
    ///
    /// - Throws: ``ConnectorError`` `invalidStream` for a Begin inside an open transaction.
    func begin(at position: LSN, commitTime: PostgresTimestamp) throws(ConnectorError) {
        try track(at: position) { state throws(AckTracker.ProtocolViolation) in try state.tracker.begin(commitTime: commitTime) }
    }

    /// The open transaction committed.
    ///
    /// - Throws: ``ConnectorError`` `invalidStream` for a Commit without a Begin.
    func commit(endLSN: LSN) throws(ConnectorError) {
        let moved = try track(at: endLSN) { state throws(AckTracker.ProtocolViolation) in try state.tracker.commit(endLSN: endLSN) }
        confirm(moved)
    }

    /// The reader published records from a batch of frames: updates the in-flight gauge once for the batch.
    func publishedBatch() {
        metrics.setInFlight(inFlightRecords)
    }

    func keepalive(_ serverWALEnd: LSN) {
        metrics.serverWALEnd(serverWALEnd.rawValue)
        confirm(state.withLock { $0.tracker.keepalive(serverWALEnd: serverWALEnd) })
    }

    /// Registers a record of the open transaction before it is sent; returns its token. (The in-flight gauge is
    /// updated once per batch of frames by the reader, ``publishedBatch()``, not per record.)
    ///
    /// - Throws: ``ConnectorError`` `invalidStream` for a row outside a transaction.
    func recordProduced(at position: LSN) throws(ConnectorError) -> UInt64 {
        try track(at: position) { state throws(AckTracker.ProtocolViolation) in try state.tracker.recordProduced() }
    }

    /// Runs `body` on the state under the lock (one lock per call); a protocol violation becomes `invalidStream`.
    private func track<T>(at position: LSN, _ body: (inout State) throws(AckTracker.ProtocolViolation) -> T) throws(ConnectorError) -> T {
        let result = state.withLock { state -> Result<T, AckTracker.ProtocolViolation> in
            do throws(AckTracker.ProtocolViolation) {
                return .success(try body(&state))
            } catch {
                return .failure(error)
            }
        }
        switch result {
        case .success(let value):
            return value
        case .failure(let violation):
            throw Self.invalidStream(violation, at: position)
        }
    }

    private static func invalidStream(_ violation: AckTracker.ProtocolViolation, at position: LSN) -> ConnectorError {
        ConnectorError(.invalidStream, "the replication stream broke the protocol at LSN \(position): \(violation). Nothing from this transaction on was confirmed; the connector stopped rather than guess. Restart it to replay from the slot; if it happens again, report it with the LSN and the PostgreSQL version")
    }

    /// Waits until fewer than `limit` records are in flight.
    ///
    /// - Throws: The session's failure, if one ends it meanwhile; `CancellationError` when the task is cancelled.
    func waitForRoom(below limit: Int) async throws {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let outcome = state.withLock { state -> Result<Void, any Error>? in
                    if let failure = state.failure { return .failure(failure) }
                    if state.cancelled { return .failure(CancellationError()) }
                    if state.tracker.inFlightRecords < limit { return .success(()) }
                    state.roomWaiter = (continuation, limit)
                    return nil
                }
                if let outcome { continuation.resume(with: outcome) }
            }
        } onCancel: {
            let waiter = state.withLock { state in
                state.cancelled = true
                defer { state.roomWaiter = nil }
                return state.roomWaiter
            }
            waiter?.continuation.resume(throwing: CancellationError())
        }
    }

    func fail(_ error: any Error) {
        let waiter = state.withLock { state -> CheckedContinuation<Void, any Error>? in
            if state.failure == nil { state.failure = error }
            state.tracker.fail()
            defer { state.roomWaiter = nil }
            return state.roomWaiter?.continuation
        }
        waiter?.resume(throwing: error)
    }

    /// Called on the producer's poll thread with one batch of delivery reports: one lock, one metrics update and
    /// one confirmation for the batch.
    func delivered(_ reports: [DeliveryReport]) {
        for report in reports {
            guard let error = report.error else { continue }
            logger.error("delivery_failed", ("topic", report.topic), ("error", error.description))
            fail(error.isFatal ? error as any Error
                 : ConnectorError(.deliveryFailed, "Kafka did not accept a record for topic \(report.topic): \(error). Nothing past the last acknowledged transaction was confirmed; fix the cause and restart."))
        }
        var commitTimes: [PostgresTimestamp] = []
        commitTimes.reserveCapacity(reports.count)
        let (moved, inFlight, waiter) = state.withLock { state in
            var moved: LSN?
            for report in reports where report.error == nil {
                let acknowledged = state.tracker.acknowledged(token: report.token)
                if let position = acknowledged.moved { moved = position }
                if let commitTime = acknowledged.commitTime { commitTimes.append(commitTime) }
            }
            var waiter: CheckedContinuation<Void, any Error>?
            if let room = state.roomWaiter, state.tracker.inFlightRecords < room.limit {
                waiter = room.continuation
                state.roomWaiter = nil
            }
            return (moved, state.tracker.inFlightRecords, waiter)
        }
        waiter?.resume()
        let now = Date()
        let latencies = commitTimes.map { max(0, now.timeIntervalSince($0.date)) }
        metrics.acknowledged(reports, deadLetterTopic: deadLetterTopic, latencies: latencies, inFlight: inFlight)
        if let onAcknowledged { for seconds in latencies { onAcknowledged(seconds) } }
        confirm(moved)
    }

    /// Forwards a position the tracker released (after a failure it releases none).
    private func confirm(_ position: LSN?) {
        guard let position else { return }
        stream.confirm(position)
        metrics.confirmed(position.rawValue)
    }
}
