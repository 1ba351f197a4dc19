import Foundation
import Observability
import PGOutput

/// What `GET /status` answers: the connector's lifecycle state in Kafka Connect's vocabulary, and the positions,
/// records and reachability behind it. Pure: built from snapshots, rendered without I/O.
///
/// States: `RUNNING` (``phase`` says `preparing`, `connecting` or `streaming`), `WAITING` (a backoff before the next
/// attempt, or Kafka unreachable or not acknowledging: see ``Waiting``), `STOPPING` (a stop was requested; records in
/// flight drain), `FAILED` (an error retrying cannot fix: see ``Failure``). No field ever holds a secret: error texts
/// pass through ``ConnectorConfiguration/mask(_:)`` before they get here.
public struct ConnectorStatus: Sendable, Hashable, Codable {
    /// The lifecycle state, named as Kafka Connect names a task's.
    public enum State: String, Sendable, Codable {
        /// Preparing, connecting or streaming.
        case running = "RUNNING"
        /// Backing off before the next attempt, or waiting for Kafka.
        case waiting = "WAITING"
        /// A stop was requested; records in flight drain.
        case stopping = "STOPPING"
        /// Stopped by an error retrying cannot fix.
        case failed = "FAILED"
    }

    /// Why the connector waits, and until when.
    public struct Waiting: Sendable, Hashable, Codable {
        /// `postgres_unavailable`, `slot_in_use`, `kafka_fatal`, `slot_record_unavailable`, `kafka_unreachable` or
        /// `kafka_unacknowledged`.
        public var cause: String
        /// When the next attempt starts; `nil` while librdkafka reconnects on its own (Kafka causes).
        public var nextAttempt: Date?
        /// What is happening, in a sentence.
        public var detail: String

        /// Creates a value.
        public init(cause: String, nextAttempt: Date?, detail: String) {
            self.cause = cause
            self.nextAttempt = nextAttempt
            self.detail = detail
        }

        enum CodingKeys: String, CodingKey {
            case cause, detail
            case nextAttempt = "next_attempt"
        }
    }

    /// The error that stopped the connector, and what to do.
    public struct Failure: Sendable, Hashable, Codable {
        /// The error.
        public var error: String
        /// What to do about it.
        public var action: String

        /// Creates a value.
        public init(error: String, action: String) { (self.error, self.action) = (error, action) }
    }

    /// An error and when it happened.
    public struct Event: Sendable, Hashable, Codable {
        /// The error.
        public var message: String
        /// When it happened.
        public var at: Date

        /// Creates a value.
        public init(message: String, at: Date) { (self.message, self.at) = (message, at) }
    }

    /// The connector's name.
    public var connector: String
    /// The state.
    public var state: State
    /// With `RUNNING`: `preparing` (checking the database), `connecting` (opening the replication session) or
    /// `streaming`.
    public var phase: String?
    /// Since when the connector has been in this state and phase.
    public var since: Date
    /// The replication slot.
    public var slot: String
    /// With `WAITING`: the cause and the next attempt.
    public var waiting: Waiting?
    /// With `FAILED`: the error and what to do.
    public var failure: Failure?
    /// The position last reported to PostgreSQL as flushed (the slot's `confirmed_flush_lsn` follows it); `nil`
    /// before the first.
    public var confirmedLSN: String?
    /// The newest position Kafka's acknowledgements released for confirmation; `nil` before the first.
    public var acknowledgedLSN: String?
    /// Records produced and not yet acknowledged.
    public var inFlightRecords: Int
    /// Whether a Kafka broker is reachable, as librdkafka last reported.
    public var kafkaReachable: Bool
    /// The last error, retried or not.
    public var lastError: Event?

    enum CodingKeys: String, CodingKey {
        case connector, state, phase, since, slot, waiting, failure
        case confirmedLSN = "confirmed_lsn", acknowledgedLSN = "acknowledged_lsn", inFlightRecords = "in_flight_records"
        case kafkaReachable = "kafka_reachable", lastError = "last_error"
    }

    /// Creates a status.
    public init(connector: String, state: State, phase: String? = nil, since: Date, slot: String, waiting: Waiting? = nil,
                failure: Failure? = nil, confirmedLSN: LSN? = nil, acknowledgedLSN: LSN? = nil, inFlightRecords: Int = 0,
                kafkaReachable: Bool = true, lastError: Event? = nil) {
        self.connector = connector
        self.state = state
        self.phase = phase
        self.since = since
        self.slot = slot
        self.waiting = waiting
        self.failure = failure
        self.confirmedLSN = confirmedLSN.flatMap { $0 == .invalid ? nil : $0.description }
        self.acknowledgedLSN = acknowledgedLSN.flatMap { $0 == .invalid ? nil : $0.description }
        self.inFlightRecords = inFlightRecords
        self.kafkaReachable = kafkaReachable
        self.lastError = lastError
    }

    /// The JSON document `/status` answers: keys in a fixed order, times in RFC 3339 (UTC, microseconds), absent
    /// values `null`.
    public var json: String {
        func string(_ text: String?) -> String { text.map(EventLogger.Format.quoted) ?? "null" }
        func time(_ date: Date?) -> String { string(date.map { PostgresTimestamp($0).rfc3339 }) }
        let members: [(String, String)] = [
            ("connector", string(connector)),
            ("state", string(state.rawValue)),
            ("phase", string(phase)),
            ("since", time(since)),
            ("slot", string(slot)),
            ("waiting", waiting.map { "{\"cause\": \(string($0.cause)), \"next_attempt\": \(time($0.nextAttempt)), \"detail\": \(string($0.detail))}" } ?? "null"),
            ("failure", failure.map { "{\"error\": \(string($0.error)), \"action\": \(string($0.action))}" } ?? "null"),
            ("confirmed_lsn", string(confirmedLSN)),
            ("acknowledged_lsn", string(acknowledgedLSN)),
            ("in_flight_records", String(inFlightRecords)),
            ("kafka_reachable", kafkaReachable ? "true" : "false"),
            ("last_error", lastError.map { "{\"message\": \(string($0.message)), \"at\": \(time($0.at))}" } ?? "null"),
        ]
        return "{\n" + members.map { "  \"\($0.0)\": \($0.1)" }.joined(separator: ",\n") + "\n}\n"
    }

    /// Reads a `/status` document back (``json``'s form).
    ///
    /// - Throws: `DecodingError` when `text` is not one.
    public init(json text: String) throws {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let text = try decoder.singleValueContainer().decode(String.self)
            let formatter = ISO8601DateFormatter()
            formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            guard let date = formatter.date(from: text) else {
                throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "'\(text)' is not an RFC 3339 time"))
            }
            return date
        }
        self = try decoder.decode(ConnectorStatus.self, from: Data(text.utf8))
    }
}
