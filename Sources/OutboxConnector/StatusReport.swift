import Foundation

/// Everything `tailgate status` found, and what of it needs action.
///
/// ``evaluate(at:)`` is the one place that decides what needs action; it is pure (no I/O), so every rule is tested
/// without a database. The exit code is the highest ``Finding/Severity`` found: 0 nothing to do, 1 something could
/// not be checked, 2 needs attention, 3 critical (events are being or will be lost).
package struct StatusReport: Sendable, Codable {
    /// Limits above which a value needs attention.
    package struct Thresholds: Sendable, Hashable, Codable {
        /// Slot lag (current WAL − confirmed position) in bytes.
        package var lagBytes: Int64 = 64 << 20
        /// Slot lag in seconds.
        package var lagSeconds: Double = 60
        /// WAL the slot holds (current WAL − `restart_lsn`) in bytes.
        package var retainedWALBytes: Int64 = 1 << 30
        /// Records a consumer group has not applied, summed over its partitions.
        package var consumerLag: Int64 = 1_000
        /// Seconds a consumer group with lag may go without storing an offset.
        package var consumerStallSeconds: Double = 300

        /// The defaults.
        package init() {}
    }

    /// One thing that needs action (or, with severity `ok`, the statement that nothing does).
    package struct Finding: Sendable, Hashable, Codable, CustomStringConvertible {
        /// How bad it is; the exit code is the highest one.
        package enum Severity: Int, Sendable, Hashable, Codable, Comparable, CustomStringConvertible {
            /// Nothing needs action.
            case ok = 0
            /// Something could not be checked (a database or Kafka unreachable).
            case unknown = 1
            /// Needs attention: lagging, inactive, dead letters, an unsafe failover.
            case attention = 2
            /// Events are being or will be lost: slot missing, invalidated or about to be.
            case critical = 3

            package static func < (lhs: Severity, rhs: Severity) -> Bool { lhs.rawValue < rhs.rawValue }

            /// The process exit code for this severity.
            package var exitCode: Int32 { Int32(rawValue) }

            package var description: String {
                switch self {
                case .ok: "ok"
                case .unknown: "unknown"
                case .attention: "attention"
                case .critical: "critical"
                }
            }
        }

        /// How bad it is.
        package var severity: Severity
        /// A stable name for scripts, e.g. `slot_inactive`.
        package var code: String
        /// What it concerns: `slot NAME`, `group NAME`, `connector NAME`.
        package var subject: String
        /// What is wrong and what to do.
        package var message: String

        /// Creates a finding.
        package init(_ severity: Severity, _ code: String, _ subject: String, _ message: String) {
            self.severity = severity
            self.code = code
            self.subject = subject
            self.message = message
        }

        /// `severity code subject: message`.
        package var description: String { "\(severity) \(code) \(subject): \(message)" }
    }

    /// A consumer database that could not be read.
    package struct ConsumerDatabaseError: Sendable, Hashable, Codable {
        /// The database, password masked.
        package var database: String
        /// Why.
        package var error: String
    }

    /// The connector's name.
    package var connector: String
    /// The connector's database, password masked.
    package var database: String
    /// When the report was made.
    package var time: Date
    /// The slot, publication and failover state; `nil` when the database could not be reached (see ``slotError``).
    package var slot: SlotStatus?
    /// Why the database could not be read.
    package var slotError: String?
    /// The running connector's own view, when it has a metrics address.
    package var connectorProbe: ConnectorProbe?
    /// Consumer groups found in the given consumer databases.
    package var consumerGroups: [ConsumerGroupStatus]
    /// Consumer databases that could not be read.
    package var consumerErrors: [ConsumerDatabaseError]
    /// The limits used.
    package var thresholds: Thresholds
    /// What needs action; filled by ``evaluate(at:)``.
    package var findings: [Finding] = []

    /// Creates a report; call ``evaluate(at:)`` to fill ``findings``.
    package init(connector: String, database: String, time: Date, slot: SlotStatus?, slotError: String?,
                connectorProbe: ConnectorProbe?, consumerGroups: [ConsumerGroupStatus],
                consumerErrors: [ConsumerDatabaseError], thresholds: Thresholds) {
        self.connector = connector
        self.database = database
        self.time = time
        self.slot = slot
        self.slotError = slotError
        self.connectorProbe = connectorProbe
        self.consumerGroups = consumerGroups
        self.consumerErrors = consumerErrors
        self.thresholds = thresholds
    }

    /// The highest severity found.
    package var severity: Finding.Severity { findings.map(\.severity).max() ?? .ok }

    /// The process exit code: 0 ok, 1 something could not be checked, 2 needs attention, 3 critical.
    package var exitCode: Int32 { severity.exitCode }

    /// The report as pretty-printed JSON (dates in ISO 8601, keys sorted).
    package func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }
}
