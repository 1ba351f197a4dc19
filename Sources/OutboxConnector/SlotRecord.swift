import Foundation
import LibPQ
import Observability
import PGOutput
import ServiceRuntime

/// Remembers that this connector has used slot S on database system D since LSN X, where a fresh container still
/// finds it: a table in the source database, `<outbox schema>.tailgate_connector_slot`.
///
/// A slot that disappears after it has been used must stop the connector loudly: silently creating a new one would
/// start after the events committed in between, losing them. PostgreSQL keeps no trace of a dropped slot, so the
/// connector keeps its own. The table lives beside the outbox (a physical standby has it too, so a promoted
/// standby still knows); the connector creates it when its role may (`CREATE` on the schema), or an administrator
/// does (``createStatement``). When the role can neither create nor write it, the record goes to a compacted Kafka
/// topic (``KafkaSlotRecord``) and, if that fails too, to a file in the state directory (`stateDirectory/NAME.slot`,
/// to be kept on a volume), each time saying so in the log. An existing file is migrated into the table
/// automatically (`event=slot_record_migrated`) and still read.
struct SlotRecord {
    /// The state-directory file: the record before this table existed, and the fallback.
    let path: String
    /// The table, quoted.
    let table: String
    let connector: String
    let admin: DatabaseLink
    let logger: EventLogger
    /// The fallback in Kafka; `nil` for none.
    let kafka: KafkaSlotRecord?

    static let tableName = "tailgate_connector_slot"
    static let deadline = Duration.seconds(10)

    init(directory: String, connector: String, schema: String, admin: DatabaseLink, logger: EventLogger,
         kafka: [String: String]? = nil) {
        path = (directory as NSString).appendingPathComponent("\(connector).slot")
        table = SQLIdentifier.quoteQualified(QualifiedName(schema: schema, name: Self.tableName))
        self.connector = connector
        self.admin = admin
        self.logger = logger
        self.kafka = kafka.map { KafkaSlotRecord(kafka: $0, connector: connector) }
    }

    /// The DDL, for the connector itself and for an administrator to run when the role may not create tables.
    var createStatement: String {
        """
        CREATE TABLE IF NOT EXISTS \(table) (
            connector text NOT NULL,
            system_identifier text NOT NULL,
            slot_name text NOT NULL,
            since_lsn pg_lsn,
            recorded_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (connector, system_identifier, slot_name))
        """
    }

    /// Whether `slot` on the cluster `systemID` was used before, by the file, the table, or (when the table cannot be
    /// read) the Kafka topic.
    ///
    /// - Throws: ``PostgresError`` when the table cannot be read for another reason than its absence or a missing
    ///   privilege (the run loop waits a lost connection out); ``SlotRecordUnavailable`` when the Kafka topic
    ///   cannot be read to its end (waited out too).
    func contains(systemID: String, slot: String) async throws -> Bool {
        if fileLines().contains("\(systemID) \(slot)") { return true }
        do {
            let rows = try await query("""
                SELECT 1 FROM \(table) WHERE connector = $1 AND system_identifier = $2 AND slot_name = $3
                """, [connector, systemID, slot])
            return !rows.rows.isEmpty
        } catch let tableError as PostgresError where [.undefinedTable, .insufficientPrivilege].contains(tableError.sqlState) {
            guard let kafka else { return false }
            do {
                return try await kafka.contains(systemID: systemID, slot: slot)
            } catch {
                throw SlotRecordUnavailable(description: "replication slot \(slot) does not exist and the slot record cannot be read: the table \(table) is not usable (\(tableError.description)) and Kafka topic \(KafkaSlotRecord.topic) could not be read (\(error)). Without the record Tailgate cannot tell a first start from a lost slot, so it creates nothing and checks again; make Kafka reachable (or create the table, see connectors/README.md)")
            }
        }
    }

    /// Records that `slot` on `systemID` is in use since `position`, and moves any lines of the state file into the
    /// table. Falls back to the state file, with a warning, when the role may neither create nor write the table.
    func remember(systemID: String, slot: String, since position: LSN) async throws {
        do {
            try await ensureTable()
            let lines = fileLines()
            // The slot in use first, then whatever else the state file remembers (other slots, other clusters).
            var entries = [(systemID: systemID, slot: slot, since: position == .invalid ? nil : position,
                            fromFile: lines.contains("\(systemID) \(slot)"))]
            for line in lines where line != "\(systemID) \(slot)" {
                let parts = line.split(separator: " ", maxSplits: 1).map(String.init)
                if parts.count == 2 { entries.append((parts[0], parts[1], nil, true)) }
            }
            for entry in entries {
                let inserted = try await query("""
                    INSERT INTO \(table) (connector, system_identifier, slot_name, since_lsn) VALUES ($1, $2, $3, $4::pg_lsn)
                    ON CONFLICT DO NOTHING RETURNING 1
                    """, [connector, entry.systemID, entry.slot, entry.since?.description])
                guard !inserted.rows.isEmpty else { continue }
                if entry.fromFile {
                    logger.info("slot_record_migrated", ("slot", entry.slot), ("system_identifier", entry.systemID), ("from", path), ("to", table))
                } else {
                    logger.info("slot_recorded", ("slot", entry.slot), ("system_identifier", entry.systemID),
                                ("since", entry.since?.description ?? "unknown"), ("table", table))
                }
            }
        } catch let error as PostgresError where Self.cannotWrite(error) {
            if let kafka {
                do {
                    try await kafka.remember(systemID: systemID, slot: slot, since: position == .invalid ? nil : position.description)
                    logger.info("slot_record_kafka", ("slot", slot), ("topic", KafkaSlotRecord.topic), ("table_error", error.description),
                                ("detail", "the role may not create or write \(table), so the slot record is kept in Kafka topic \(KafkaSlotRecord.topic) (create it with cleanup.policy=compact)"))
                    try rememberInFile(systemID: systemID, slot: slot)
                    return
                } catch let kafkaError {
                    logger.warning("slot_record_kafka_failed", ("topic", KafkaSlotRecord.topic), ("error", "\(kafkaError)"))
                }
            }
            logger.warning("slot_record_local", ("table", table), ("error", error.description), ("file", path),
                           ("detail", "the role may not create or write the slot record table, so only the state directory remembers the slot; keep it on a volume, or have an administrator run \(createStatement.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: " ")) and GRANT SELECT, INSERT ON \(table) TO the connector's role"))
            try rememberInFile(systemID: systemID, slot: slot)
        }
    }

    /// What to run, once the slot is re-created and the missed rows backfilled, so that the connector starts again.
    func forgetInstructions(systemID: String, slot: String) -> String {
        var text = "DELETE FROM \(table) WHERE connector = '\(connector)' AND slot_name = '\(slot)'"
        if fileLines().contains("\(systemID) \(slot)") { text += ", and remove the line for \(slot) from \(path)" }
        return text
    }

    /// A query on the admin connection; a deadline passed counts as a lost connection, which the run loop waits out
    /// (the record is checked again at the next connect), instead of stopping the connector.
    @discardableResult
    private func query(_ sql: String, _ parameters: [(any PostgresBindable)?] = []) async throws -> QueryResult {
        do {
            return try await admin.query(deadline: Self.deadline, sql, parameters)
        } catch let error as DeadlineExceeded {
            throw PostgresError(code: .connectionLost, message: "the slot record (\(table)): \(error)")
        }
    }

    private func ensureTable() async throws {
        do {
            try await query(createStatement)
        } catch let error as PostgresError where [.uniqueViolation, .duplicateObject].contains(error.sqlState) {
            // Two connectors created it at once: it exists.
        } catch let error as PostgresError where error.sqlState == .insufficientPrivilege {
            // An administrator may have created it: writing it is what matters.
            let exists = try await query("SELECT to_regclass($1) IS NOT NULL AS present", [table]).first?.bool("present")
            if exists != true { throw error }
        }
    }

    private static func cannotWrite(_ error: PostgresError) -> Bool {
        [.insufficientPrivilege, .readOnlySQLTransaction, .undefinedTable].contains(error.sqlState)
    }

    private func fileLines() -> [String] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").map(String.init)
    }

    private func rememberInFile(systemID: String, slot: String) throws {
        guard !fileLines().contains("\(systemID) \(slot)") else { return }
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let existing = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        try (existing + "\(systemID) \(slot)\n").write(toFile: path, atomically: true, encoding: .utf8)
    }
}
