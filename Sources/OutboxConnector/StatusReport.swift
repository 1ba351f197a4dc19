import Foundation

/// Everything `tailgate status` found, and what of it needs action.
///
/// ``evaluate(at:)`` is the one place that decides what needs action; it is pure (no I/O), so every rule is tested
/// without a database. The exit code is the highest ``Finding/Severity`` found: 0 nothing to do, 1 something could
/// not be checked, 2 needs attention, 3 critical (events are being or will be lost).
public struct StatusReport: Sendable, Codable {
    /// Limits above which a value needs attention.
    public struct Thresholds: Sendable, Hashable, Codable {
        /// Slot lag (current WAL − confirmed position) in bytes.
        public var lagBytes: Int64 = 64 << 20
        /// Slot lag in seconds.
        public var lagSeconds: Double = 60
        /// WAL the slot holds (current WAL − `restart_lsn`) in bytes.
        public var retainedWALBytes: Int64 = 1 << 30
        /// Records a consumer group has not applied, summed over its partitions.
        public var consumerLag: Int64 = 1_000
        /// Seconds a consumer group with lag may go without storing an offset.
        public var consumerStallSeconds: Double = 300

        /// The defaults.
        public init() {}
    }

    /// One thing that needs action (or, with severity `ok`, the statement that nothing does).
    public struct Finding: Sendable, Hashable, Codable, CustomStringConvertible {
        /// How bad it is; the exit code is the highest one.
        public enum Severity: Int, Sendable, Hashable, Codable, Comparable, CustomStringConvertible {
            /// Nothing needs action.
            case ok = 0
            /// Something could not be checked (a database or Kafka unreachable).
            case unknown = 1
            /// Needs attention: lagging, inactive, dead letters, an unsafe failover.
            case attention = 2
            /// Events are being or will be lost: slot missing, invalidated or about to be.
            case critical = 3

            public static func < (lhs: Severity, rhs: Severity) -> Bool { lhs.rawValue < rhs.rawValue }

            /// The process exit code for this severity.
            public var exitCode: Int32 { Int32(rawValue) }

            public var description: String {
                switch self {
                case .ok: "ok"
                case .unknown: "unknown"
                case .attention: "attention"
                case .critical: "critical"
                }
            }
        }

        /// How bad it is.
        public var severity: Severity
        /// A stable name for scripts, e.g. `slot_inactive`.
        public var code: String
        /// What it concerns: `slot NAME`, `group NAME`, `connector NAME`.
        public var subject: String
        /// What is wrong and what to do.
        public var message: String

        /// Creates a finding.
        public init(_ severity: Severity, _ code: String, _ subject: String, _ message: String) {
            self.severity = severity
            self.code = code
            self.subject = subject
            self.message = message
        }

        /// `severity code subject: message`.
        public var description: String { "\(severity) \(code) \(subject): \(message)" }
    }

    /// A consumer database that could not be read.
    public struct ConsumerDatabaseError: Sendable, Hashable, Codable {
        /// The database, password masked.
        public var database: String
        /// Why.
        public var error: String
    }

    /// The connector's name.
    public var connector: String
    /// The connector's database, password masked.
    public var database: String
    /// When the report was made.
    public var time: Date
    /// The slot, publication and failover state; `nil` when the database could not be reached (see ``slotError``).
    public var slot: SlotStatus?
    /// Why the database could not be read.
    public var slotError: String?
    /// The running connector's own view, when it has a metrics address.
    public var connectorProbe: ConnectorProbe?
    /// Consumer groups found in the given consumer databases.
    public var consumerGroups: [ConsumerGroupStatus]
    /// Consumer databases that could not be read.
    public var consumerErrors: [ConsumerDatabaseError]
    /// The limits used.
    public var thresholds: Thresholds
    /// What needs action; filled by ``evaluate(at:)``.
    public var findings: [Finding] = []

    /// Creates a report; call ``evaluate(at:)`` to fill ``findings``.
    public init(connector: String, database: String, time: Date, slot: SlotStatus?, slotError: String?,
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
    public var severity: Finding.Severity { findings.map(\.severity).max() ?? .ok }

    /// The process exit code: 0 ok, 1 something could not be checked, 2 needs attention, 3 critical.
    public var exitCode: Int32 { severity.exitCode }

    /// The report as pretty-printed JSON (dates in ISO 8601, keys sorted).
    public func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }
}
