import Foundation
import LibPQ
import OutboxConsumer
import RDKafka
import Synchronization
import TestSupport
import Testing

@Suite struct OutboxConsumerTests {
    @Test func anEventDeliveredTwiceIsAppliedOnce() async throws {
        let fixture = try await ConsumerFixture.make()
        defer { fixture.close() }
        // 10,000 events; 200 of them published a second time (other offsets, same event_id), interleaved.
        var ids: [String] = []
        for index in 0..<10_000 {
            ids.append("evt-\(index)")
            if index >= 5_000 && index % 25 == 0 { ids.append("evt-\(index - 5_000)") }
        }
        #expect(ids.count == 10_200)
        try await fixture.produce(ids)
        let consumer = try OutboxConsumer(configuration: fixture.configuration(), log: { _ in })
        let running = Task { try await consumer.run(ConsumerFixture.ledgerHandler) }
        #expect(await eventually(timeout: .seconds(90)) {
            let s = consumer.metrics.snapshot
            return s.applied + s.duplicatesSkipped >= 10_200
        }, "\(consumer.metrics.snapshot)")
        consumer.stop()
        try await running.value
        let ledger = try await fixture.ledger()
        #expect(ledger.count == 10_000, "every event applied")
        #expect(ledger.values.allSatisfy { $0 == 1 }, "none applied twice")
        #expect(consumer.metrics.snapshot.duplicatesSkipped == 200)
        // The stored offsets are each partition's end: a restart reads nothing again.
        let stored = try await fixture.db.query("SELECT sum(next_offset)::text AS total FROM tailgate_offsets WHERE consumer_group = 'svc'").first?.int("total")
        #expect(stored == 10_200)
    }

    @Test func freshnessFromTheSourceCommitIsMeasuredPerEventType() async throws {
        // The connector's tailgate_commit_time header says when the source transaction committed; the consumer
        // measures from there to its own commit, per event type: end-to-end freshness, not only Kafka lag.
        let fixture = try await ConsumerFixture.make()
        defer { fixture.close() }
        let committed = Int64((Date().timeIntervalSince1970 - 3) * 1_000_000)
        try await fixture.produce((0..<40).map { "f-\($0)" }, type: { $0.hasSuffix("7") ? "OrderCancelled" : "OrderPlaced" },
                                  extraHeaders: [KafkaHeader(name: "tailgate_commit_time", string: String(committed))])
        try await fixture.produce(["backfilled"], extraHeaders: [KafkaHeader(name: "tailgate_commit_time", string: "0")])
        let consumer = try OutboxConsumer(configuration: fixture.configuration(), log: { _ in })
        let running = Task { try await consumer.run(ConsumerFixture.ledgerHandler) }
        #expect(await eventually { consumer.metrics.snapshot.applied == 41 })
        let histograms = consumer.metrics.snapshot.commitToApplied
        #expect(histograms["OrderPlaced"]?.count == 36 && histograms["OrderCancelled"]?.count == 4, "\(histograms.mapValues(\.count))")
        #expect(histograms["Tested"] == nil, "a backfilled record (commit time 0) is not measured")
        let placed = try #require(histograms["OrderPlaced"])
        #expect(placed.sum / Double(placed.count) >= 3, "measured from the source commit three seconds ago, not from Kafka")
        let text = consumer.metrics.render(group: "svc")
        #expect(text.contains(#"tailgate_consumer_commit_to_applied_seconds_count{group="svc",event_type="OrderCancelled"} 4"#), "\(text)")
        consumer.stop()
        try await running.value
    }

    @Test func aRestartResumesAtTheStoredOffsetsAndTheMirrorFollows() async throws {
        let fixture = try await ConsumerFixture.make()
        defer { fixture.close() }
        try await fixture.produce((0..<300).map { "a-\($0)" })
        var consumer = try OutboxConsumer(configuration: fixture.configuration(), log: { _ in })
        var running = Task { [consumer] in try await consumer.run(ConsumerFixture.ledgerHandler) }
        #expect(await eventually { consumer.metrics.snapshot.applied == 300 })
        consumer.stop()
        try await running.value
        try await fixture.produce((0..<100).map { "b-\($0)" })
        consumer = try OutboxConsumer(configuration: fixture.configuration(), log: { _ in })
        running = Task { [consumer] in try await consumer.run(ConsumerFixture.ledgerHandler) }
        #expect(await eventually { consumer.metrics.snapshot.applied == 100 })
        try await Task.sleep(for: .milliseconds(500))
        #expect(consumer.metrics.snapshot.duplicatesSkipped == 0, "the second run started at the stored offsets, not before")
        consumer.stop()
        try await running.value
        #expect(try await fixture.ledgerTotal() == 400)
        // Kafka's committed offsets mirror the database's (for lag dashboards).
        let reader = try KafkaConsumer(properties: ["bootstrap.servers": fixture.kafka.bootstrapServers, "group.id": "svc"], log: { _ in })
        let committed = try await reader.committedOffsets((0..<fixture.partitions).map { TopicPartition(topic: "events", partition: $0) })
        #expect(committed.values.reduce(0, +) == 400)
        try await reader.close()
    }

    @Test func aPoisonEventIsRetriedDeadLetteredAndThePartitionContinues() async throws {
        let fixture = try await ConsumerFixture.make(partitions: 1)
        defer { fixture.close() }
        try await fixture.produce((0..<50).map { "p-\($0)" }) { $0 == "p-20" ? "Poison" : "Fine" }
        let lines = LogLines()
        var configuration = fixture.configuration(batch: 10)
        configuration.poisonPolicy = .deadLetter
        let consumer = try OutboxConsumer(configuration: configuration, log: { lines.append($0) })
        let running = Task { try await consumer.run(ConsumerFixture.ledgerHandler) }
        #expect(await eventually(timeout: .seconds(30)) { consumer.metrics.snapshot.applied == 49 }, "\(consumer.metrics.snapshot)")
        consumer.stop()
        try await running.value
        let ledger = try await fixture.ledger()
        #expect(ledger["p-20"] == nil && ledger.count == 49 && ledger["p-49"] == 1)
        #expect(consumer.metrics.snapshot.deadLettered == 1)
        #expect(consumer.metrics.snapshot.handlerFailures == 3, "three attempts before dead-lettering")
        let status = try await fixture.db.query("SELECT status, error FROM tailgate_inbox WHERE event_id = 'p-20'").first
        #expect(status?["status"] == "dead_lettered" && status?["error"] == "poison pill")
        let dead = try await KafkaReader.readBack(bootstrap: fixture.kafka.bootstrapServers, topics: ["svc.dead-letter"], partitions: 1) { $0.count >= 1 }
        #expect(dead.count == 1)
        #expect(dead.first?.header("event_id")?.stringValue == "p-20")
        #expect(dead.first?.header("tailgate_error")?.stringValue == "poison pill")
        #expect(dead.first?.header("tailgate_original_offset")?.stringValue == "20")
        #expect(lines.contains("event=dead_lettered"))
    }

    @Test func aDatabaseRestartMidRunLosesAndDuplicatesNothing() async throws {
        let postgres = try await TestPostgres.start(settings: ["synchronous_commit = on"])
        let fixture = try await ConsumerFixture.make(postgres: postgres)
        defer { fixture.close() }
        let lines = LogLines()
        let consumer = try OutboxConsumer(configuration: fixture.configuration(batch: 50), log: { lines.append($0) })
        let running = Task { try await consumer.run(ConsumerFixture.ledgerHandler) }
        try await fixture.produce((0..<2_000).map { "r-\($0)" })
        #expect(await eventually { consumer.metrics.snapshot.applied > 200 })
        try await postgres.restart(mode: .immediate)
        try await fixture.produce((2_000..<3_000).map { "r-\($0)" })
        let db = try await Connection.connect(postgres.conninfo(database: fixture.database))
        #expect(try await eventually(timeout: .seconds(60)) {
            try await db.query("SELECT count(DISTINCT event_id)::text AS n FROM ledger").first?.int("n") == 3_000
        })
        consumer.stop()
        try await running.value
        let counts = try await db.query("SELECT count(*)::text AS total, count(DISTINCT event_id)::text AS distinct FROM ledger").first
        #expect(counts?.int("total") == 3_000 && counts?.int("distinct") == 3_000, "exactly once across the restart")
        // Said once, whichever use of the connection met the restart first (a batch, or an idle check).
        #expect(lines.contains("event=database_connection_lost"), "the restart was noticed: \(lines.all.suffix(3))")
        try await postgres.stop(mode: .immediate)
    }

    /// A handler may await (another service, an actor) inside the batch's transaction: what it writes before and
    /// after the await commits with the batch, once; its statements run on the consumer's own thread, the one that
    /// owns the connection, never on the cooperative pool; a poison event still parks its key (aw-7's key-7, with
    /// aw-57, aw-107 and aw-157 behind it).
    @Test func aHandlerThatAwaitsWritesInTheBatchTransactionOnTheConsumersThread() async throws {
        actor Pricing {
            var calls = 0
            func price(_ id: String) async throws -> Int {
                calls += 1
                try await Task.sleep(for: .milliseconds(1))
                return id.count
            }
        }
        let fixture = try await ConsumerFixture.make(partitions: 2)
        defer { fixture.close() }
        try await fixture.db.execute("CREATE TABLE priced (event_id text PRIMARY KEY, price int NOT NULL)")
        try await fixture.produce((0..<200).map { "aw-\($0)" }) { $0 == "aw-7" ? "Poison" : "Fine" }
        let pricing = Pricing()
        // The thread each handler's statements ran on, before and after its await (pthread ids: on Linux a thread's
        // name is inherited from whichever thread started it, so names prove nothing).
        let threads = Mutex<(before: Set<UInt>, after: Set<UInt>)>(([], []))
        let consumer = try OutboxConsumer(configuration: fixture.configuration(batch: 50), log: { _ in })
        let running = Task {
            try await consumer.run { event, db in
                try db.execute("INSERT INTO ledger (event_id, topic, partition, \"offset\") VALUES ($1, $2, $3, $4)",
                               [event.id, event.topic, Int(event.partition), event.offset])
                threads.withLock { _ = $0.before.insert(UInt(pthread_self())) }
                let price = try await pricing.price(event.id)
                threads.withLock { _ = $0.after.insert(UInt(pthread_self())) }
                if event.type == "Poison" { throw ConsumerFixture.PoisonError() }
                try db.execute("INSERT INTO priced VALUES ($1, $2)", [event.id, price])
            }
        }
        #expect(await eventually { consumer.metrics.snapshot.applied == 196 && consumer.metrics.snapshot.parked == 4 },
                "\(consumer.metrics.snapshot)")
        consumer.stop()
        try await running.value
        let ledger = try await fixture.ledger()
        #expect(ledger.count == 196 && ledger.values.allSatisfy { $0 == 1 } && ledger["aw-7"] == nil,
                "the poison event's first insert was rolled back with its savepoint")
        #expect(try await fixture.db.query("SELECT count(*)::text AS n FROM priced").first?.int("n") == 196)
        let (before, after) = threads.withLock { $0 }
        #expect(before.count == 1 && after == before, "one thread, the consumer's, before and after every await: \(before) \(after)")
        #expect(await pricing.calls >= 197)
    }

    @Test func badSettingsAreRejectedByName() {
        let base = ConsumerConfiguration(groupID: "g", topics: ["t"], kafka: [:], postgres: "dbname=x")
        var noTopics = base
        noTopics.topics = []
        #expect((try? OutboxConsumer(configuration: noTopics)) == nil)
        var badTable = base
        badTable.inboxTable = "a.b.c"
        let error = #expect(throws: ConsumerError.self) { try OutboxConsumer(configuration: badTable) }
        #expect(error?.message.contains("inboxTable 'a.b.c'") == true)
    }
}

@Suite struct ConsumerOperationsTests {
    @Test func deadLettersAreListedAndReplayedAfterAFix() async throws {
        let fixture = try await ConsumerFixture.make(partitions: 1)
        defer { fixture.close() }
        try await fixture.produce((0..<10).map { "d-\($0)" }) { $0 == "d-3" ? "Poison" : "Fine" }
        var deadLettering = fixture.configuration()
        deadLettering.poisonPolicy = .deadLetter
        var consumer = try OutboxConsumer(configuration: deadLettering, log: { _ in })
        var running = Task { [consumer] in try await consumer.run(ConsumerFixture.ledgerHandler) }
        #expect(await eventually { consumer.metrics.snapshot.deadLettered == 1 && consumer.metrics.snapshot.applied == 9 })
        consumer.stop()
        try await running.value

        let tailgate = ChildProcess.productsDirectory + "/tailgate"
        let log = NSTemporaryDirectory() + "dead-letters-\(getpid())-\(UUID().uuidString).log"
        defer { unlink(log) }
        let list = try ChildProcess(tailgate, ["dead-letters", "list", "--bootstrap", fixture.kafka.bootstrapServers, "--topic", "svc.dead-letter"],
                                    outputPath: log)
        #expect(await list.exitStatus() == 0)
        #expect(list.output.contains("event_id=d-3 group=svc original_topic=events error=\"poison pill\""), "\(list.output)")

        // The fix: a handler that accepts the event. Replay, then run the fixed consumer.
        consumer = try OutboxConsumer(configuration: fixture.configuration(), log: { _ in })
        running = Task { [consumer] in
            try await consumer.run { event, db in
                try db.execute("INSERT INTO ledger (event_id, topic, partition, \"offset\") VALUES ($1, $2, $3, $4)",
                               [event.id, event.topic, Int(event.partition), event.offset])
            }
        }
        let replay = try ChildProcess(tailgate, ["dead-letters", "replay", "--bootstrap", fixture.kafka.bootstrapServers, "--topic", "svc.dead-letter",
                                                 "--postgres", fixture.postgres.conninfo(database: fixture.database), "--event-ids", "d-3"],
                                      outputPath: log)
        #expect(await replay.exitStatus() == 0, "\(replay.output)")
        #expect(replay.output.contains("replayed 1 of 1"))
        #expect(await eventually { consumer.metrics.snapshot.applied == 1 })
        consumer.stop()
        try await running.value
        let ledger = try await fixture.ledger()
        #expect(ledger.count == 10 && ledger.values.allSatisfy { $0 == 1 })
    }

    @Test func recordsWithoutOrWithGarbageIdentityFollowThePolicy() async throws {
        let fixture = try await ConsumerFixture.make(partitions: 1)
        defer { fixture.close() }
        let producer = try KafkaProducer(configuration: .init(properties: ["bootstrap.servers": fixture.kafka.bootstrapServers]), log: { _ in }) { _ in }
        try await producer.send(KafkaRecord(topic: "events", key: nil, value: nil), token: 0)
        try await producer.send(KafkaRecord(topic: "events", key: [0xFF, 0xFE], value: [UInt8](repeating: 0, count: 200_000),
                                            headers: [KafkaHeader(name: "event_id", value: [0xC3, 0x28]), KafkaHeader(name: "junk", value: nil)]), token: 1)
        try await producer.send(KafkaRecord(topic: "events", key: Array("k".utf8), value: Array("{}".utf8),
                                            headers: [KafkaHeader(name: "event_id", string: "normal")]), token: 2)
        // A CloudEvents binary-mode record from another producer: only `ce_id`.
        try await producer.send(KafkaRecord(topic: "events", key: Array("k".utf8), value: Array("{}".utf8),
                                            headers: [KafkaHeader(name: "ce_specversion", string: "1.0"), KafkaHeader(name: "ce_id", string: "ce-only")]), token: 3)
        #expect(await producer.close(timeout: .seconds(10)) == 0)

        // Default policy: records without an event_id are identified by topic/partition/offset and applied.
        let consumer = try OutboxConsumer(configuration: fixture.configuration(), log: { _ in })
        let running = Task { try await consumer.run(ConsumerFixture.ledgerHandler) }
        #expect(await eventually { consumer.metrics.snapshot.applied == 4 })
        consumer.stop()
        try await running.value
        let ids = Set(try await fixture.ledger().keys)
        #expect(ids.contains("events/0/0") && ids.contains("normal") && ids.contains("events/0/1") && ids.contains("ce-only"), "\(ids)")

        // The dead-letter policy, on a fresh group: only the identified records (event_id or ce_id) are applied.
        var strict = fixture.configuration(group: "strict")
        strict.missingEventID = .deadLetter
        let strictConsumer = try OutboxConsumer(configuration: strict, log: { _ in })
        let strictRunning = Task { try await strictConsumer.run { _, _ in } }
        #expect(await eventually { strictConsumer.metrics.snapshot.applied + strictConsumer.metrics.snapshot.deadLettered == 4 })
        strictConsumer.stop()
        try await strictRunning.value
        #expect(strictConsumer.metrics.snapshot.deadLettered == 2 && strictConsumer.metrics.snapshot.applied == 2)
    }

    @Test func oldInboxRowsAreSweptAndLagIsReported() async throws {
        let fixture = try await ConsumerFixture.make(partitions: 2)
        defer { fixture.close() }
        try await fixture.produce((0..<100).map { "s-\($0)" })
        var configuration = fixture.configuration()
        configuration.inboxRetention = .seconds(1)
        configuration.retentionInterval = .milliseconds(300)
        let consumer = try OutboxConsumer(configuration: configuration, log: { _ in })
        let running = Task { try await consumer.run(ConsumerFixture.ledgerHandler) }
        #expect(await eventually { consumer.metrics.snapshot.applied == 100 })
        #expect(await eventually { consumer.metrics.snapshot.lag == ["events[0]": 0, "events[1]": 0] }, "\(consumer.metrics.snapshot.lag)")
        #expect(try await eventually(timeout: .seconds(20)) {
            try await fixture.db.query("SELECT count(*)::text AS n FROM tailgate_inbox").first?.int("n") == 0
        }, "inbox rows past the retention were deleted")
        consumer.stop()
        try await running.value
        #expect(consumer.metrics.render(group: "svc").contains("tailgate_consumer_events_applied_total{group=\"svc\"} 100"))
        #expect(try await fixture.ledgerTotal() == 100)
    }
}
