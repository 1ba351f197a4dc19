import Foundation
import LibPQ
import OutboxConsumer
import RDKafka
import Synchronization
import TestSupport
import Testing

/// A service database with a ledger table, a Kafka (the mock cluster, or Tansu: see ``TestKafka``) with an `events` topic,
/// and a producer of outbox-like records.
struct ConsumerFixture {
    let postgres: TestPostgres
    let database: String
    let db: Connection
    let kafka: TestKafka
    let partitions: Int32

    static func make(postgres: TestPostgres? = nil, partitions: Int32 = 4) async throws -> ConsumerFixture {
        let postgres = if let postgres { postgres } else { try await TestPostgres.shared() }
        let database = try await postgres.createDatabase(prefix: "svc")
        let db = try await Connection.connect(postgres.conninfo(database: database))
        // One row per application, no unique constraint: a loss and a duplicate cannot cancel out.
        try await db.execute("CREATE TABLE ledger (event_id text NOT NULL, topic text, partition int, \"offset\" bigint, applied_at timestamptz DEFAULT clock_timestamp(), seq bigserial)")
        let kafka = try await TestKafka(brokers: 1)
        try await kafka.createTopic("events", partitions: Int(partitions))
        try await kafka.createTopic("svc.dead-letter", partitions: 1)
        return ConsumerFixture(postgres: postgres, database: database, db: db, kafka: kafka, partitions: partitions)
    }

    /// - Parameter conninfoSuffix: Appended to the service database's connection string (e.g. `options=…`).
    func configuration(group: String = "svc", batch: Int = 200, conninfoSuffix: String = "") -> ConsumerConfiguration {
        ConsumerConfiguration(groupID: group, topics: ["events"],
                              kafka: ["bootstrap.servers": kafka.bootstrapServers, "session.timeout.ms": "6000",
                                      "heartbeat.interval.ms": "500", "fetch.wait.max.ms": "50"],
                              postgres: postgres.conninfo(database: database) + conninfoSuffix, maxBatchSize: batch,
                              retryBackoff: .milliseconds(20), maxBackoff: .milliseconds(500), deadLetterTopic: "svc.dead-letter")
    }

    /// The handler every test uses: one ledger row per application.
    static let ledgerHandler: OutboxConsumer.Handler = { event, db in
        if event.type == "Poison" { throw PoisonError() }
        try db.execute("INSERT INTO ledger (event_id, topic, partition, \"offset\") VALUES ($1, $2, $3, $4)",
                       [event.id, event.topic, Int(event.partition), event.offset])
    }

    struct PoisonError: Error, CustomStringConvertible { var description: String { "poison pill" } }

    /// Produces records with `event_id` headers; `ids` in order, keyed so each key keeps its order.
    func produce(_ ids: [String], type: (String) -> String = { _ in "Tested" }, extraHeaders: [KafkaHeader] = []) async throws {
        let failures = Mutex(0)
        let producer = try KafkaProducer(configuration: .init(properties: ["bootstrap.servers": kafka.bootstrapServers]), log: { _ in }) { report in
            if report.error != nil { failures.withLock { $0 += 1 } }
        }
        for (index, id) in ids.enumerated() {
            try await producer.send(KafkaRecord(topic: "events", key: Array("key-\(index % 50)".utf8), value: Array("{\"n\":\(index)}".utf8),
                                                headers: [KafkaHeader(name: "event_id", string: id), KafkaHeader(name: "event_type", string: type(id))]
                                                    + extraHeaders),
                                    token: UInt64(index))
        }
        let left = await producer.close(timeout: .seconds(30))
        #expect(left == 0 && failures.withLock { $0 } == 0)
    }

    /// Produces records with explicit keys and types, in order.
    func produce(keyed events: [(id: String, key: String, type: String)]) async throws {
        let failures = Mutex(0)
        let producer = try KafkaProducer(configuration: .init(properties: ["bootstrap.servers": kafka.bootstrapServers]), log: { _ in }) { report in
            if report.error != nil { failures.withLock { $0 += 1 } }
        }
        for (index, event) in events.enumerated() {
            try await producer.send(KafkaRecord(topic: "events", key: Array(event.key.utf8), value: Array("{\"n\":\(index)}".utf8),
                                                headers: [KafkaHeader(name: "event_id", string: event.id), KafkaHeader(name: "event_type", string: event.type)]),
                                    token: UInt64(index))
        }
        let left = await producer.close(timeout: .seconds(30))
        #expect(left == 0 && failures.withLock { $0 } == 0)
    }

    /// Produces records with value `{}` in order, each with an `event_id` header unless its id is `nil`.
    func produce(records: [(key: String, eventID: String?)]) async throws {
        let producer = try KafkaProducer(configuration: .init(properties: ["bootstrap.servers": kafka.bootstrapServers]), log: { _ in }) { _ in }
        for (index, record) in records.enumerated() {
            let headers = record.eventID.map { [KafkaHeader(name: "event_id", string: $0)] } ?? []
            try await producer.send(KafkaRecord(topic: "events", key: Array(record.key.utf8), value: Array("{}".utf8), headers: headers),
                                    token: UInt64(index))
        }
        #expect(await producer.close(timeout: .seconds(30)) == 0)
    }

    /// Event ids in the order they were applied (one ledger row each).
    func appliedOrder() async throws -> [String] {
        try await db.query("SELECT event_id FROM ledger ORDER BY seq").rows.compactMap { $0["event_id"] }
    }

    /// Ledger rows per event id.
    func ledger() async throws -> [String: Int] {
        var counts: [String: Int] = [:]
        for row in try await db.query("SELECT event_id, count(*)::text AS n FROM ledger GROUP BY event_id").rows {
            counts[row["event_id"] ?? ""] = Int(row["n"] ?? "")
        }
        return counts
    }

    /// Inbox rows marked dead-lettered, by event id.
    func deadLetteredInInbox() async throws -> [String] {
        try await db.query("SELECT event_id FROM tailgate_inbox WHERE status = 'dead_lettered' ORDER BY event_id").rows.compactMap { $0["event_id"] }
    }

    func ledgerTotal() async throws -> Int {
        try await db.query("SELECT count(*)::text AS n FROM ledger").first?.int("n") ?? -1
    }

    func close() {
        kafka.close()
    }
}
