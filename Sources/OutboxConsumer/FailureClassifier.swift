import LibPQ
import RDKafka
import ServiceRuntime

/// Decides what a failure while applying a batch means: the database's state (roll back, wait, retry the batch),
/// or the event's (retry the event, then treat it as poison). Pure: it looks at the error alone.
///
/// A database state is never poison: retrying the same event will succeed once the database is back, writable, and
/// migrated, so such failures are retried for as long as it takes, loudly, and never dead-lettered or parked.
enum FailureClassifier {
    /// What to do about one failure.
    enum Verdict: Hashable, Sendable {
        /// The database (or something else outside the event) is not in a state to apply anything: roll the whole
        /// batch back and retry it after a backoff. `reason` says what to look at.
        case retryBatch(reason: String)
        /// The handler failed for this event; another attempt may succeed.
        case retryEvent
        /// Retrying this event cannot succeed.
        case poison
    }

    /// The verdict on an error thrown while applying one event (by the handler or by the consumer's own SQL).
    static func classify(_ error: any Error) -> Verdict {
        switch error {
        case let failure as HandlerFailure:
            if failure.kind == .poison { return .poison }
            if failure.kind == .retryLater { return .retryBatch(reason: "the handler asked to retry later: \(failure.message)") }
            return .retryEvent
        case let error as PostgresError:
            if let reason = databaseState(error) { return .retryBatch(reason: reason) }
            return .retryEvent
        case let error as KafkaError:
            // Only the dead-letter producer raises these inside a batch: Kafka's state, not the event's.
            return .retryBatch(reason: "the dead-letter topic did not acknowledge (\(error.codeName)); is Kafka reachable?")
        default:
            return .retryEvent
        }
    }

    /// What the error says about the database, if it describes the database's state rather than one statement's
    /// input (``DatabaseCondition``, the table shared with the connector); `nil` for errors that belong to the
    /// event (constraint violations, bad input, …).
    static func databaseState(_ error: PostgresError) -> String? {
        DatabaseCondition(error)?.reason(error)
    }
}

extension FailureClassifier {
    /// What to say about an error that rolled a whole batch back outside any handler (the consumer's own SQL, the
    /// connection, the dead-letter topic).
    static func batchReason(_ error: any Error) -> String {
        switch classify(error) {
        case .retryBatch(let reason): reason
        case .retryEvent, .poison: "the consumer's own statements failed; see the error"
        }
    }
}
