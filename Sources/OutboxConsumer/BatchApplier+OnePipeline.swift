import Foundation
import LibPQ
import RDKafka

extension BatchApplier {
    /// Sends the whole batch in one pipeline: BEGIN, the inbox insert that fails on a duplicate, the offsets, the
    /// parked-key guard, every event's statements, COMMIT. The statement handler runs for every record first, before
    /// anything is sent; its contract allows calls whose statements are then discarded.
    func applyInOnePipeline(_ records: [ConsumerRecord], _ session: Session,
                            _ statementHandler: OutboxConsumer.StatementHandler) throws -> Attempt {
        session.discardDeferred()
        let identified = Self.identified(records)
        for entry in identified where policy.received(isNew: true, hasEventID: entry.hasID, keyParked: false) != .runHandler {
            return .onePipelineFailed(roundTrips: 0, cause: "record \(entry.id) is not one to apply as it is (no event_id header)")
        }
        let next = OffsetStore.nextOffsets(after: records)
        var statements = [PipelineStatement("BEGIN"),
                          inbox.insertAllNew(identified.map { ($0.id, $0.record.topic, $0.record.partition, $0.record.offset) })]
        if let store = offsets.store(next) { statements.append(store) }
        if policy.parksKeys { statements.append(parked.failIfAnyParked(Set(identified.map { ParkedStore.key(of: $0.record, eventID: $0.id) }))) }
        var applied: [(eventType: String, commitTime: Date)] = []
        for (record, id, _) in identified {
            let event = Self.event(of: record, id: id)
            var produced = EventStatements()
            do {
                try statementHandler(event, &produced)
            } catch {
                if let rollback = databaseFailure(error) { throw rollback }
                // Which events fail, and whether they fail again, the careful way finds out (it runs the handler
                // again, for the new events only).
                return .onePipelineFailed(roundTrips: 0, cause: "the handler failed for event \(id): \(error)")
            }
            statements += produced.statements
            if let committed = event.commitTime { applied.append((event.type ?? "", committed)) }
        }
        statements.append(PipelineStatement("COMMIT"))
        let roundTripsBefore = session.roundTrips
        do throws(PostgresError) {
            try session.pipeline(statements)
        } catch {
            if let rollback = databaseFailure(error) {
                _ = try? session.query("ROLLBACK")
                throw rollback
            }
            // BEGIN ran, so the transaction is open and aborted, unless COMMIT itself failed (it then ended it).
            if error.statementIndex != statements.count - 1 { _ = try? session.query("ROLLBACK") }
            return .onePipelineFailed(roundTrips: session.roundTrips - roundTripsBefore, cause: "\(error)")
        }
        var counts = ConsumerMetrics.Snapshot()
        counts.applied = records.count
        counts.batches = 1
        counts.roundTrips = session.roundTrips - roundTripsBefore
        return .committed(Outcome(nextOffsets: next, counts: counts, applied: applied))
    }

    /// The rollback a failure in the one pipeline calls for when ``EventPolicy`` answers it as it answers a failure
    /// in the claim-first pass with ``EventPolicy/AfterFailure/rollBackBatch(reason:)`` (the database's state:
    /// retried after a backoff); `nil` for anything else, which the careful way sorts out.
    private func databaseFailure(_ error: any Error) -> BatchRollback? {
        guard case .rollBackBatch(let reason) = policy.handlerFailed(FailureClassifier.classify(error), failures: 1, in: .fast,
                                                                      reason: "\(error)") else { return nil }
        return BatchRollback(reason: reason, cause: error)
    }
}
