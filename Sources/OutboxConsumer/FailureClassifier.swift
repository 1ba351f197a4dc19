import LibPQ
import RDKafka

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
    /// input; `nil` for errors that belong to the event (constraint violations, bad input, …).
    static func databaseState(_ error: PostgresError) -> String? {
        switch error.code {
        case .connectionFailed, .connectionLost, .closed:
            return "the database is unreachable; check that it is running and reachable"
        case .protocolViolation:
            return "the database connection misbehaved; reconnecting"
        default:
            break
        }
        guard let state = error.sqlState, state.rawValue.count == 5 else { return nil }
        let sqlClass = state.errorClass
        switch sqlClass {
        case "08": return "the database connection failed (SQLSTATE \(state)); check that it is running and reachable"
        case "53": return state == "53300"
            ? "the database has too many connections (SQLSTATE 53300); raise max_connections or pool"
            : "the database server is out of a resource (SQLSTATE \(state), e.g. disk full or out of memory); free it"
        case "57": return state == "57014"
            ? "a statement was cancelled or timed out (SQLSTATE 57014); check statement_timeout and long locks"
            : "the database is shutting down or restarting (SQLSTATE \(state))"
        case "58": return "the database server hit a system error (SQLSTATE \(state)); see its log"
        default: break
        }
        switch state {
        case "40001": return "serialization failure (SQLSTATE 40001); retrying"
        case "40P01": return "deadlock (SQLSTATE 40P01); retrying"
        case "25006": return "the database is read-only (SQLSTATE 25006): a failover in progress, or connected to a standby"
        case "42P01": return "a table does not exist (SQLSTATE 42P01): run the service's migrations"
        case "42703": return "a column does not exist (SQLSTATE 42703): run the service's migrations"
        case "3F000": return "a schema does not exist (SQLSTATE 3F000): run the service's migrations"
        case "42501": return "insufficient privilege (SQLSTATE 42501): grant the consumer's role access"
        case "55P03": return "a lock was not available in time (SQLSTATE 55P03); another session holds it"
        case "55006": return "an object is in use (SQLSTATE 55006); retrying"
        default: return nil
        }
    }

    /// Whether the connection that raised `error` must be replaced before the next attempt.
    static func dropsConnection(_ error: PostgresError) -> Bool {
        if error.code != .queryFailed { return true }
        guard let state = error.sqlState else { return false }
        return state.errorClass == .connectionException || state.rawValue.hasPrefix("57P") || state.errorClass == .systemError
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
