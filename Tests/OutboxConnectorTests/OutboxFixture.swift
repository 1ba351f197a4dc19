import Foundation
import LibPQ
import Observability
import OutboxConnector
import PGOutput
import RDKafka
import Synchronization
import TestSupport
import Testing

/// A commerce-like database with an outbox table, a Kafka (the mock cluster, or Tansu: see ``TestKafka``), and a
/// connector configuration for them.
struct OutboxFixture {
    let postgres: TestPostgres
    let database: String
    let db: Connection
    let kafka: TestKafka
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
        let postgres = if let postgres { postgres } else { try await TestPostgres.shared() }
        let database = try await postgres.createDatabase(prefix: "outbox")
        let db = try await Connection.connect(postgres.conninfo(database: database))
        try await db.execute(outboxDDL)
        let kafka = try await TestKafka(brokers: 3)
        for topic in ["order-events", "catalog-events", "tailgate.dead-letter"] {
            try await kafka.createTopic(topic, partitions: partitions)
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
                  logger: EventLogger(minimumLevel: .debug, write: { line in log?.append(line) }))
    }

    /// Starts a connector in this process and waits until it streams.
    func start(_ configuration: ConnectorConfiguration, log: LogLines? = nil) async throws -> RunningConnector {
        let connector = self.connector(configuration, log: log)
        let task = Task { try await connector.run() }
        let streaming = await eventually { connector.metrics.isStreaming }
        if !streaming {
            Issue.record("the connector never started streaming: \(log?.all.suffix(5) ?? []); the server: \(await serverActivity())")
        }
        return RunningConnector(connector: connector, task: task)
    }

    /// What the server is busy with: replication connections and open transactions (a logical slot is created only
    /// once every transaction that holds an xid has ended), for a failure message.
    func serverActivity() async -> String {
        guard let admin = try? await Connection.connect(postgres.conninfo(database: database)) else { return "unreachable" }
        defer { Task { await admin.close() } }
        let rows = try? await admin.query("""
            SELECT pid || ' ' || backend_type || ' ' || coalesce(datname, '-') || ' ' || coalesce(state, '-')
                   || ' wait=' || coalesce(wait_event_type || ':' || wait_event, '-') || ' xid=' || coalesce(backend_xid::text, '-')
                   || ' for=' || coalesce(round(extract(epoch FROM now() - xact_start))::text || 's', '-')
                   || ' ' || left(regexp_replace(coalesce(query, ''), '\\s+', ' ', 'g'), 100) AS line
            FROM pg_stat_activity
            WHERE backend_type = 'walsender' OR backend_xid IS NOT NULL OR now() - xact_start > interval '5 seconds'
            ORDER BY xact_start NULLS LAST
            """)
        return rows.map { $0.rows.compactMap { $0["line"] }.joined(separator: " | ") } ?? "no answer"
    }

    /// Reads `topics` back from the beginning until `expected` records arrived.
    func readBack(_ topics: [String], expected: Int, partitions: Int32 = 6, timeout: Duration = .seconds(60)) async throws -> [ConsumerRecord] {
        try await readBack(topics, partitions: partitions, timeout: timeout) { $0.count >= expected }
    }

    /// Reads `topics` back from the beginning until `done` holds for what arrived, or `timeout` passes.
    func readBack(_ topics: [String], partitions: Int32 = 6, timeout: Duration = .seconds(60),
                  until done: ([ConsumerRecord]) -> Bool) async throws -> [ConsumerRecord] {
        try await KafkaReader.readBack(bootstrap: kafka.bootstrapServers, topics: topics, partitions: partitions,
                                       timeout: timeout, until: done)
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

/// A connector running in a task of this process.
struct RunningConnector {
    let connector: Connector
    let task: Task<Void, any Error>

    var metrics: ConnectorMetrics { connector.metrics }

    /// Graceful stop; rethrows what `run()` threw.
    func stop() async throws {
        connector.requestStop()
        try await task.value
    }
}

extension ConsumerRecord {
    func headerText(_ name: String) -> String? { header(name)?.stringValue }
    var valueText: String { String(decoding: value ?? [], as: UTF8.self) }
    var keyText: String { String(decoding: key ?? [], as: UTF8.self) }
}

/// `tailgate run` as a child process, the way operators run it.
final class ConnectorProcess {
    let child: ChildProcess
    let metricsPort: Int

    /// Writes `configuration` (as JSON text) to a file and starts the connector on it.
    init(fixture: OutboxFixture, json: String, metricsPort: Int, extraArguments: [String] = []) throws {
        let directory = fixture.stateDirectory
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let configPath = directory + "/connector-\(UUID().uuidString).json"
        try json.write(toFile: configPath, atomically: true, encoding: .utf8)
        self.metricsPort = metricsPort
        child = try ChildProcess(ChildProcess.productsDirectory + "/tailgate",
                                 ["run", "--config", configPath, "--state-dir", directory, "--shutdown-timeout", "20",
                                  "--status-interval", "1"] + extraArguments,
                                 outputPath: directory + "/connector.log")
    }

    /// `tailgate_events_delivered_total` summed over topics, from `/metrics`.
    var delivered: Int? {
        get async {
            guard let body = await httpGet(port: metricsPort, path: "/metrics")?.body else { return nil }
            return body.split(separator: "\n").filter { $0.hasPrefix("tailgate_events_delivered_total{") }
                .compactMap { $0.split(separator: " ").last.flatMap { Int($0) } }.reduce(0, +)
        }
    }

    /// `tailgate_in_flight_records`, from `/metrics`.
    var inFlight: Int? {
        get async {
            await httpGet(port: metricsPort, path: "/metrics")?.body.split(separator: "\n")
                .first { $0.hasPrefix("tailgate_in_flight_records{") }?.split(separator: " ").last.flatMap { Int($0) }
        }
    }

    var isStreaming: Bool { get async { await httpGet(port: metricsPort, path: "/healthz")?.status.contains("200") == true } }

    /// The process's peak resident set size (`VmHWM`) in KiB.
    var peakRSSKiB: Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(child.pid)/status", encoding: .utf8) else { return nil }
        return status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") }?.split(separator: " ").dropFirst().first.flatMap { Int($0) }
    }
}

extension OutboxFixture {
    /// The connector file as JSON text, for a child process.
    func json(metricsPort: Int, extra: String = "") -> String {
        """
        {"name": "proc-\(database)",
         "postgres": {"conninfo": "\(postgres.conninfo(database: database))", "slot": "\(slot)", "publication": "\(publication)"},
         "outbox": {"table": "public.outbox_event", "topic": {"column": "topic"},
                    "headers": {"event_type": "event_type", "aggregate_type": "aggregate_type"}},
         "kafka": {"bootstrap.servers": "\(kafka.bootstrapServers)", "linger.ms": "2", "reconnect.backoff.max.ms": "500"},
         "deadLetterTopic": "tailgate.dead-letter",
         "heartbeatIntervalSeconds": 1,
         "metrics": {"listen": "127.0.0.1:\(metricsPort)"}\(extra)}
        """
    }

    /// Inserts `transactions` transactions of `rowsPerTransaction` rows over `keys` keys; payload `{"seq": N}`.
    func load(transactions: Range<Int>, rowsPerTransaction: Int = 10, keys: Int = 100, pause: Duration = .zero) async throws {
        for transaction in transactions {
            try await db.execute("""
                INSERT INTO outbox_event (topic, aggregate_type, aggregate_id, event_type, payload)
                SELECT CASE WHEN g % 2 = 0 THEN 'order-events' ELSE 'catalog-events' END, 'product',
                       'key-' || (($1::int * $2::int + g) % $3::int), 'E', jsonb_build_object('seq', $1::int * $2::int + g)
                FROM generate_series(0, $2::int - 1) g
                """, [transaction, rowsPerTransaction, keys])
            if pause > .zero { try await Task.sleep(for: pause) }
        }
    }

    /// Maps each event id to the end LSN of the transaction that inserted it, from a witness slot created before
    /// the load (read without consuming).
    func witness(slot witnessSlot: String) async throws -> [String: LSN] {
        try await Self.witness(db: db, slot: witnessSlot, publication: publication)
    }

    /// ``witness(slot:)`` for any database: `db` is connected to it, `publication` names the outbox table.
    static func witness(db: Connection, slot witnessSlot: String, publication: String) async throws -> [String: LSN] {
        let rows = try await db.query("""
            SELECT encode(data, 'hex') AS hex FROM pg_logical_slot_peek_binary_changes($1, NULL, NULL,
                'proto_version', '1', 'publication_names', $2)
            """, [witnessSlot, publication]).rows.compactMap { $0["hex"] }
        var decoder = PGOutputDecoder()
        var pending: [String] = []
        var map: [String: LSN] = [:]
        for hex in rows {
            var bytes: [UInt8] = []
            var index = hex.startIndex
            while index < hex.endIndex {
                let next = hex.index(index, offsetBy: 2)
                bytes.append(UInt8(hex[index..<next], radix: 16)!)
                index = next
            }
            switch try decoder.decode(bytes) {
            case .insert(let insert):
                if let id = insert.newTuple.values.first?.string { pending.append(id) }
            case .commit(let commit):
                for id in pending { map[id] = commit.endLSN }
                pending.removeAll()
            default: break
            }
        }
        return map
    }
}
