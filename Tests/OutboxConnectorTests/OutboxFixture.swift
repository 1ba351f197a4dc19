import Foundation
import LibPQ
import OutboxConnector
import PGOutput
import RDKafka
import Synchronization
import TestSupport
import Testing

/// A commerce-like database with an outbox table, a mock Kafka cluster, and a connector configuration for them.
struct OutboxFixture {
    let postgres: TestPostgres
    let database: String
    let db: Connection
    let kafka: KafkaMockCluster
    let stateDirectory: String
    var slot: String { "tg_\(database)" }
    var publication: String { "tg_\(database)" }

    static let outboxDDL = """
        CREATE TABLE outbox_event (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            topic text,
            aggregate_type text,
            aggregate_id text,
            event_type text NOT NULL,
            payload jsonb,
            created_at timestamptz NOT NULL DEFAULT now())
        """

    static func make(postgres: TestPostgres? = nil, partitions: Int = 6) async throws -> OutboxFixture {
        let postgres = try postgres ?? TestPostgres.shared()
        let database = try await postgres.createDatabase(prefix: "outbox")
        let db = try await Connection.connect(postgres.conninfo(database: database))
        try await db.execute(outboxDDL)
        let kafka = try KafkaMockCluster(brokers: 3, log: { _ in })
        for topic in ["order-events", "catalog-events", "tailgate.dead-letter"] {
            try kafka.createTopic(topic, partitions: partitions)
        }
        let stateDirectory = NSTemporaryDirectory() + "tailgate-state-\(database)"
        return OutboxFixture(postgres: postgres, database: database, db: db, kafka: kafka, stateDirectory: stateDirectory)
    }

    /// The connector file for this fixture; `changes` edits the JSON object before it is parsed.
    func configuration(_ changes: (inout [String: Any]) -> Void = { _ in }) throws -> ConnectorConfiguration {
        var document: [String: Any] = [
            "name": "test-\(database)",
            "postgres": ["conninfo": postgres.conninfo(database: database), "slot": slot, "publication": publication,
                         "createSlot": true, "createPublication": true],
            "outbox": ["table": "public.outbox_event", "eventIdColumn": "id", "keyColumn": "aggregate_id",
                       "payloadColumn": "payload", "topic": ["column": "topic"],
                       "allowedTopics": ["order-events", "catalog-events"],
                       "headers": ["event_type": "event_type", "aggregate_type": "aggregate_type"]],
            "kafka": ["bootstrap.servers": kafka.bootstrapServers, "linger.ms": "2"],
            "deadLetterTopic": "tailgate.dead-letter",
            "heartbeatIntervalSeconds": 1,
            "metrics": ["listen": "127.0.0.1:0"],
        ]
        changes(&document)
        var text = String(decoding: try JSONSerialization.data(withJSONObject: document), as: UTF8.self)
        // Keep the documented header order (JSONSerialization does not preserve it).
        text = text.replacingOccurrences(of: #"{"aggregate_type":"aggregate_type","event_type":"event_type"}"#,
                                         with: #"{"event_type":"event_type","aggregate_type":"aggregate_type"}"#)
        return try ConnectorConfiguration.parse(Data(text.utf8))
    }

    func connector(_ configuration: ConnectorConfiguration, log: LogLines? = nil) -> Connector {
        Connector(configuration: configuration,
                  options: Connector.Options(stateDirectory: stateDirectory, shutdownTimeout: .seconds(30), statusInterval: .milliseconds(500)),
                  logger: Logger(minimumLevel: .debug, write: { line in log?.append(line) }))
    }

    /// Reads `topics` back from the beginning until `expected` records arrived.
    func readBack(_ topics: [String], expected: Int, partitions: Int32 = 6, timeout: Duration = .seconds(60)) async throws -> [ConsumerRecord] {
        let consumer = try KafkaConsumer(properties: ["bootstrap.servers": kafka.bootstrapServers, "group.id": "verify",
                                                      "fetch.wait.max.ms": "50"], log: { _ in })
        defer { try? consumer.close() }
        var starts: [TopicPartition: StartOffset] = [:]
        for topic in topics { for partition in 0..<partitions { starts[TopicPartition(topic: topic, partition: partition)] = .beginning } }
        try consumer.assign(starts)
        var records: [ConsumerRecord] = []
        let deadline = ContinuousClock.now + timeout
        while records.count < expected, ContinuousClock.now < deadline {
            records += try await consumer.pollOnQueue(maxRecords: 5_000, timeout: .milliseconds(200))
        }
        // Anything beyond `expected` that is already there.
        records += try await consumer.pollOnQueue(maxRecords: 5_000, timeout: .milliseconds(500))
        return records
    }

    func slotState() async throws -> ReplicationConnection.SlotState? {
        let replication = try await ReplicationConnection.connect(postgres.conninfo(database: database))
        defer { Task { await replication.close() } }
        return try await replication.slotState(slot)
    }

    func close() {
        kafka.close()
        try? FileManager.default.removeItem(atPath: stateDirectory)
    }
}

/// Collects a connector's log lines.
final class LogLines: Sendable {
    private let lines = Mutex<[String]>([])
    func append(_ line: String) { lines.withLock { $0.append(line) } }
    var all: [String] { lines.withLock { $0 } }
    func contains(_ text: String) -> Bool { all.contains { $0.contains(text) } }
}

extension ConsumerRecord {
    func headerText(_ name: String) -> String? { header(name)?.stringValue }
    var valueText: String { String(decoding: value ?? [], as: UTF8.self) }
    var keyText: String { String(decoding: key ?? [], as: UTF8.self) }
}
