import Foundation
import LibPQ
import OutboxConnector
import TestSupport
import Testing

/// The broken connector files in `BadConfigs/`: each is refused with a message naming the field and the fix, and
/// `tailgate run` on it exits without touching the database it points at.
@Suite struct BadConfigCorpusTests {
    /// What each file's refusal must say.
    static let expected: [String: [String]] = [
        "wrong-types.json": ["$.name: must be a string, not a number (line 1, column 2)",
                             "$.heartbeatIntervalSeconds: must be a whole number, not a string (line 1, column 221)"],
        "unknown-key.json": ["$.postgress: unknown key; the keys here are"],
        "missing-everything.json": ["$.name: missing", "$.postgres: missing", "$.outbox: missing", "$.kafka: missing"],
        "injection-slot.json": ["$.postgres.slot: 'x\"; DROP TABLE outbox_event; --' is not a valid slot name"],
        "injection-publication.json": ["$.postgres.publication: 'p; DROP PUBLICATION x' is not a valid name"],
        "injection-table.json": ["$.outbox.table: 'public.outbox_event; DROP TABLE outbox_event' is not a table name"],
        "injection-column.json": ["$.outbox.eventIdColumn: 'id\" FROM pg_authid; --' is not a valid column name"],
        "huge-numbers.json": ["$.heartbeatIntervalSeconds: 1e308 is out of range",
                              "$.maxInFlightRecords: 99999999999999999999999 is out of range"],
        "truncated.json": ["not valid JSON: line 2, column 1: expected ',' or '}' after a member of the object, found the end of the file"],
        "empty.json": ["not valid JSON"],
        "invalid-utf8.json": ["not valid JSON: line 1, column 11: byte 0xFF does not start valid UTF-8"],
        "template-without-value.json": ["$.outbox.topic.template: must contain ${value}"],
        "weakened-kafka.json": ["$.kafka: property 'enable.idempotence' is 'false' but must be 'true'"],
        "bad-listen.json": ["$.metrics.listen: '0.0.0.0:99999' is not host:port"],
        "bad-listen-ipv6.json": [#"$.metrics.listen: '::1:9464' looks like an IPv6 address without brackets; write it as "[::1]:9464""#],
        "cloudevents-without-source.json": ["$.cloudEvents.source: missing: ce_source is required",
                                            "(in $.cloudEvents at line 4, column 27)"],
        "bad-listen-hostname.json": ["$.metrics.listen: 'metrics.internal' in 'metrics.internal:9464' is not an IP address or localhost"],
    ]

    static func corpus() throws -> URL {
        try #require(Bundle.module.url(forResource: "BadConfigs", withExtension: nil))
    }

    @Test func everyFileInTheCorpusHasItsExpectedMessage() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: try Self.corpus().path).filter { $0.hasSuffix(".json") }
        #expect(Set(files) == Set(Self.expected.keys), "each corpus file has its expectation, and each expectation its file")
        for file in files.sorted() {
            let error = #expect(throws: ConfigurationError.self, "\(file) was accepted") {
                try ConnectorConfiguration.load(path: try Self.corpus().appendingPathComponent(file).path,
                                                environment: ["TG_TEST_CONNINFO": "host=/nowhere dbname=x"])
            }
            for message in Self.expected[file] ?? [] {
                #expect(error?.description.contains(message) == true, "\(file): expected \"\(message)\" in\n\(error?.description ?? "")")
            }
        }
    }

    static let hugeDocuments: [String: (text: String, expected: String)] = [
        "deeply nested": (String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000),
                          "line 1, column 65: more than 64 nested lists and objects"),
        "a megabyte name": (#"{"name": ""# + String(repeating: "n", count: 1_000_000) + #""}"#, "$.name: "),
        "a megabyte key": ("{\"" + String(repeating: "k", count: 1_000_000) + "\": 1}", "unknown key"),
    ]

    @Test(arguments: ["deeply nested", "a megabyte name", "a megabyte key"])
    func hugeAndDeepDocumentsAreRefusedWithoutACrash(name: String) throws {
        let (text, expected) = try #require(Self.hugeDocuments[name])
        let error = #expect(throws: ConfigurationError.self, "\(name) was accepted") {
            try ConnectorConfiguration.parse(Data(text.utf8))
        }
        let message = error?.description ?? ""
        #expect(message.contains(expected) || message.contains("not valid JSON"), "\(name): \(message.prefix(300))")
        #expect(message.count < 8_000, "the message quotes a bounded part of a huge value (\(message.count) characters)")
    }

    @Test func tailgateRunOnEachFileExitsAndTouchesNothing() async throws {
        let postgres = try await TestPostgres.shared()
        let database = try await postgres.createDatabase(prefix: "badconfig")
        let db = try await Connection.connect(postgres.conninfo(database: database))
        try await db.execute(OutboxFixture.outboxDDL)
        let before = try await Self.snapshot(db)
        let output = NSTemporaryDirectory() + "badconfig-\(database).log"
        defer { unlink(output) }
        for file in Self.expected.keys.sorted() {
            let child = try ChildProcess(ChildProcess.productsDirectory + "/tailgate",
                                         ["run", "--config", try Self.corpus().appendingPathComponent(file).path,
                                          "--state-dir", NSTemporaryDirectory() + "badconfig-state-\(database)"],
                                         outputPath: output, environment: ["TG_TEST_CONNINFO": postgres.conninfo(database: database)])
            let status = await child.exitStatus(timeout: .seconds(30))
            #expect(status != 0, "\(file): tailgate run exited \(status)")
        }
        #expect(try await Self.snapshot(db) == before, "no table, slot, publication or row changed")
        await db.close()
    }

    /// Tables, this database's slots (other tests share the cluster), publications and the outbox's row count.
    static func snapshot(_ db: Connection) async throws -> [String] {
        try await db.query("""
            SELECT 'table ' || relname FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace
            UNION ALL SELECT 'slot ' || slot_name FROM pg_replication_slots WHERE database = current_database()
            UNION ALL SELECT 'publication ' || pubname FROM pg_publication
            UNION ALL SELECT 'outbox rows ' || count(*) FROM outbox_event
            ORDER BY 1
            """).rows.compactMap { $0[0] }
    }
}
