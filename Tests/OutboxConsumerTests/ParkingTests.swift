import Foundation
import LibPQ
@testable import OutboxConsumer
import RDKafka
import Synchronization
import TestSupport
import Testing

/// The default poison policy keeps per-key order: a poison event parks its key, later events of that key wait behind
/// it in order, other keys flow, and a release applies the parked ones in order, exactly once.
@Suite struct ParkingTests {
    @Test func aPoisonEventParksItsKeyWhileOtherKeysFlowAndAReleaseAppliesTheRestInOrder() async throws {
        let fixture = try await ConsumerFixture.make(partitions: 1)
        defer { fixture.close() }
        // Keys k-0, k-1, k-2 interleaved; k-1's e-10 is poison until cured.
        let events = (0..<30).map { (id: "e-\($0)", key: "k-\($0 % 3)", type: $0 == 10 ? "Poison" : "Fine") }
        try await fixture.produce(keyed: events)
        let cured = Atomic<Bool>(false)
        let lines = LogLines()
        let consumer = try OutboxConsumer(configuration: fixture.configuration(batch: 7), log: { lines.append($0) })
        #expect(consumer.configuration.poisonPolicy == .parkKey, "parking is the default")
        let running = Task {
            try await consumer.run { event, db in
                if event.type == "Poison" && !cured.load(ordering: .acquiring) { throw ConsumerFixture.PoisonError() }
                try db.execute("INSERT INTO ledger (event_id, topic, partition, \"offset\") VALUES ($1, $2, $3, $4)",
                               [event.id, event.topic, Int(event.partition), event.offset])
            }
        }
        let parkedIDs = [10, 13, 16, 19, 22, 25, 28].map { "e-\($0)" }
        #expect(try await eventually(timeout: .seconds(30)) { try await fixture.ledgerTotal() == 23 })
        let applied = try await fixture.appliedOrder()
        #expect(Set(applied) == Set(events.map(\.id)).subtracting(parkedIDs), "every other key flowed, and k-1 up to its poison event")
        #expect(consumer.metrics.snapshot.parked == 7 && consumer.metrics.snapshot.deadLettered == 0)
        #expect(await eventually { consumer.metrics.snapshot.parkedKeys == 1 && consumer.metrics.snapshot.parkedEvents == 7 })
        #expect(lines.contains("event=key_parked") && lines.contains("event=parked_behind"))

        // Listed by the API and the CLI.
        let parked = ParkedKeys(postgres: fixture.postgres.conninfo(database: fixture.database))
        let listed = try await parked.list(group: "svc")
        #expect(listed.count == 1)
        #expect(listed.first?.key == "k-1" && listed.first?.events == 7 && listed.first?.firstEventID == "e-10" && listed.first?.error == "poison pill")
        let log = NSTemporaryDirectory() + "parked-\(getpid())-\(UUID().uuidString).log"
        defer { unlink(log) }
        let list = try ChildProcess(ChildProcess.productsDirectory + "/tailgate",
                                    ["parked", "list", "--postgres", fixture.postgres.conninfo(database: fixture.database)], outputPath: log)
        #expect(await list.exitStatus() == 0)
        #expect(list.output.contains("group=svc topic=events partition=0 key=k-1 events=7 first_offset=10 first_event_id=e-10"), "\(list.output)")
        #expect(list.output.contains("error=\"poison pill\""))

        // The fix, then the release: the parked events in their original order, once; k-1 flows again afterwards.
        cured.store(true, ordering: .releasing)
        #expect(try await parked.requestRelease(group: "svc", topic: "events", partition: 0, key: "k-1") == 7)
        #expect(try await eventually(timeout: .seconds(20)) { try await fixture.ledgerTotal() == 30 })
        try await fixture.produce(keyed: [(id: "e-30", key: "k-1", type: "Fine"), (id: "e-31", key: "k-0", type: "Fine")])
        #expect(try await eventually(timeout: .seconds(20)) { try await fixture.ledgerTotal() == 32 })
        let order = try await fixture.appliedOrder()
        #expect(order.filter { ["e-1", "e-4", "e-7", "e-30"].contains($0) || parkedIDs.contains($0) }
                == ["e-1", "e-4", "e-7"] + parkedIDs + ["e-30"], "k-1 in its original order")
        #expect(try await fixture.ledger().values.allSatisfy { $0 == 1 })
        #expect(try await parked.list().isEmpty)
        #expect(consumer.metrics.snapshot.released == 7)
        #expect(await eventually { consumer.metrics.snapshot.parkedKeys == 0 })
        #expect(lines.contains("event=key_released"))
        let statuses = try await fixture.db.query("SELECT DISTINCT status FROM tailgate_inbox").rows.compactMap { $0["status"] }
        #expect(statuses == ["applied"])
        consumer.stop()
        try await running.value
    }

    /// A release is carried out at the next batch boundary while records keep arriving on the partition (25 a
    /// second, as in the report): it used to wait for a poll that returned nothing, which a trickle never gives.
    @Test func aReleaseRunsWithinSecondsWhileTrafficFlowsOnThePartition() async throws {
        let fixture = try await ConsumerFixture.make(partitions: 1)
        defer { fixture.close() }
        try await fixture.produce(keyed: [(id: "p-0", key: "k", type: "Poison"), (id: "p-1", key: "k", type: "Fine")])
        let cured = Atomic<Bool>(false)
        let consumer = try OutboxConsumer(configuration: fixture.configuration(batch: 50), log: { _ in })
        let running = Task {
            try await consumer.run { event, db in
                if event.type == "Poison" && !cured.load(ordering: .acquiring) { throw ConsumerFixture.PoisonError() }
                try db.execute("INSERT INTO ledger (event_id, topic, partition, \"offset\") VALUES ($1, $2, $3, $4)",
                               [event.id, event.topic, Int(event.partition), event.offset])
            }
        }
        let parked = ParkedKeys(postgres: fixture.postgres.conninfo(database: fixture.database))
        #expect(await eventually { (try? await parked.list())?.first?.events == 2 })

        let trickling = Atomic<Bool>(true)
        let producer = try KafkaProducer(configuration: .init(properties: ["bootstrap.servers": fixture.kafka.bootstrapServers,
                                                                          "linger.ms": "0"]), log: { _ in }) { _ in }
        let trickle = Task {
            var sequence = 0
            while trickling.load(ordering: .acquiring) {
                try await producer.send(KafkaRecord(topic: "events", key: Array("t-\(sequence % 5)".utf8), value: Array("{}".utf8),
                                                    headers: [KafkaHeader(name: "event_id", string: "t-\(sequence)"),
                                                              KafkaHeader(name: "event_type", string: "Fine")]),
                                        token: UInt64(sequence))
                sequence += 1
                try await Task.sleep(for: .milliseconds(40))
            }
            _ = await producer.close(timeout: .seconds(10))
        }
        // The trickle is being applied: the consumer is busy, not idle.
        #expect(try await eventually { try await fixture.ledgerTotal() >= 10 })

        cured.store(true, ordering: .releasing)
        let requested = ContinuousClock.now
        #expect(try await parked.requestRelease(group: "svc", topic: "events", partition: 0, key: "k") == 2)
        let released = try await eventually(timeout: .seconds(15), every: .milliseconds(100)) { try await parked.list().isEmpty }
        let took = ContinuousClock.now - requested
        let trickledMeanwhile = try await fixture.ledgerTotal()
        trickling.store(false, ordering: .releasing)
        try await trickle.value
        #expect(released && took < .seconds(5), "released: \(released) after \(took)")
        #expect(trickledMeanwhile > 12, "the trickle kept flowing")
        let order = try await fixture.appliedOrder().filter { $0.hasPrefix("p-") }
        #expect(order == ["p-0", "p-1"], "the poison head first, once")
        consumer.stop()
        try await running.value
    }

    @Test func aReleaseThatFailsAgainStopsThereWithTheNewError() async throws {
        let fixture = try await ConsumerFixture.make(partitions: 1)
        defer { fixture.close() }
        try await fixture.produce(keyed: [(id: "a", key: "k", type: "Fine"), (id: "b", key: "k", type: "Poison"), (id: "c", key: "k", type: "Fine")])
        let consumer = try OutboxConsumer(configuration: fixture.configuration(), log: { _ in })
        let running = Task { try await consumer.run(ConsumerFixture.ledgerHandler) }
        let parked = ParkedKeys(postgres: fixture.postgres.conninfo(database: fixture.database))
        #expect(await eventually { (try? await parked.list())?.first?.events == 2 })
        #expect(try await parked.requestRelease(group: "svc", topic: "events", partition: 0, key: "k") == 2)
        #expect(try await eventually { try await parked.list().first?.releaseRequested == false })
        let entry = try await parked.list().first
        #expect(entry?.events == 2 && entry?.firstEventID == "b" && entry?.error == "poison pill", "\(String(describing: entry))")
        #expect(try await fixture.ledger() == ["a": 1])
        consumer.stop()
        try await running.value
    }
}

@Suite struct ParkedStoreTests {
    /// A key's parked events come back in numeric offset order across offsets of different widths: the poison head
    /// (37) before the events parked behind it (160-249). Ordered by the offset as text, 160-249 came first.
    @Test func parkedEventsComeBackInNumericOffsetOrder() async throws {
        let postgres = try await TestPostgres.shared()
        let database = try await postgres.createDatabase(prefix: "parked")
        let store = ParkedStore(table: QualifiedName(parsing: "tailgate_parked")!, group: "svc")
        let connection = try await Connection.connect(postgres.conninfo(database: database))
        defer { Task { await connection.close() } }
        let offsets: [Int64] = [37] + Array(160..<250)
        let key = ParkedStore.Key(topic: "events", partition: 0, key: "k")
        let released = try await connection.withSession { session in
            for statement in store.createStatements() { try session.query(statement) }
            try session.query("BEGIN")
            for offset in offsets.shuffled() {
                let record = ConsumerRecord(topic: "events", partition: 0, offset: offset, key: Array("k".utf8), value: nil, headers: [],
                                            timestampMilliseconds: nil)
                try store.park(session, record, eventID: "e-\(offset)", key: key, error: offset == 37 ? "poison pill" : nil)
            }
            let events = try store.events(session, of: key)
            try session.query("COMMIT")
            return events.map(\.record.offset)
        }
        #expect(released == offsets)
    }

    @Test func byteaTextAndHeadersRoundTrip() {
        #expect(ParkedStore.decodeBytea("\\x00ff10Ab") == [0x00, 0xFF, 0x10, 0xAB])
        #expect(ParkedStore.decodeBytea("\\x0") == nil, "an odd number of digits")
        #expect(ParkedStore.decodeBytea("\\xzz") == nil)
        let headers = [KafkaHeader(name: "event_id", string: "e-1"), KafkaHeader(name: "raw", value: [0xC3, 0x28]), KafkaHeader(name: "none", value: nil)]
        #expect(ParkedStore.decodeHeaders(ParkedStore.encodeHeaders(headers)) == headers)
    }
}

@Suite struct InboxMigrationTests {
    @Test func aVersionOneInboxLearnsTheParkedStatus() async throws {
        let fixture = try await ConsumerFixture.make(partitions: 1)
        defer { fixture.close() }
        // The inbox as release 1 created it.
        try await fixture.db.execute("""
            CREATE TABLE tailgate_inbox (consumer_group text NOT NULL, event_id text NOT NULL, topic text NOT NULL, partition int NOT NULL,
                "offset" bigint NOT NULL, status text NOT NULL DEFAULT 'applied' CHECK (status IN ('applied', 'dead_lettered')),
                error text, processed_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (consumer_group, event_id))
            """)
        try await fixture.db.execute("CREATE TABLE tailgate_schema_version (component text PRIMARY KEY, version int NOT NULL)")
        try await fixture.db.execute("INSERT INTO tailgate_schema_version VALUES ('outbox_consumer', 1)")
        try await fixture.produce(keyed: [(id: "m-0", key: "k", type: "Poison"), (id: "m-1", key: "k", type: "Fine"), (id: "m-2", key: "j", type: "Fine")])
        let consumer = try OutboxConsumer(configuration: fixture.configuration(), log: { _ in })
        let running = Task { try await consumer.run(ConsumerFixture.ledgerHandler) }
        #expect(await eventually { consumer.metrics.snapshot.parked == 2 && consumer.metrics.snapshot.applied == 1 }, "\(consumer.metrics.snapshot)")
        consumer.stop()
        try await running.value
        let statuses = try await fixture.db.query("SELECT event_id, status FROM tailgate_inbox ORDER BY event_id").rows.map { "\($0["event_id"] ?? ""):\($0["status"] ?? "")" }
        #expect(statuses == ["m-0:parked", "m-1:parked", "m-2:applied"])
        #expect(try await fixture.db.query("SELECT version::text AS v FROM tailgate_schema_version").first?.int("v") == 2)
    }
}
