import Foundation
import LibPQ
import OutboxConsumer
import RDKafka
import TestSupport
import Testing

@Suite struct BatchApplierTests {
    @Test func aBatchWithoutFailuresCostsTwoRoundTripsWhateverItsSize() async throws {
        let fixture = try await ConsumerFixture.make(partitions: 1)
        defer { fixture.close() }
        try await fixture.produce((0..<300).map { "f-\($0)" })
        let consumer = try OutboxConsumer(configuration: fixture.configuration(batch: 100), log: { _ in })
        let running = Task { try await consumer.run(ConsumerFixture.ledgerHandler) }
        #expect(await eventually { consumer.metrics.snapshot.applied == 300 })
        consumer.stop()
        try await running.value
        let snapshot = consumer.metrics.snapshot
        // One pipeline (BEGIN, inbox claim, offsets, parked keys), then COMMIT: no savepoint per event when no handler
        // fails, and the statements' preparation travels in the first pipeline.
        #expect(snapshot.roundTrips == 2 * snapshot.batches, "\(snapshot.roundTrips) round trips for \(snapshot.batches) batches")
        #expect(try await fixture.ledger().count == 300)
    }

    @Test func aHandlerFailureRollsTheFastAttemptBackAndRetriesWithSavepoints() async throws {
        let fixture = try await ConsumerFixture.make(partitions: 1)
        defer { fixture.close() }
        try await fixture.produce((0..<20).map { "g-\($0)" }) { $0 == "g-7" ? "Poison" : "Fine" }
        var configuration = fixture.configuration(batch: 20)
        configuration.poisonPolicy = .deadLetter
        let consumer = try OutboxConsumer(configuration: configuration, log: { _ in })
        let running = Task { try await consumer.run(ConsumerFixture.ledgerHandler) }
        #expect(await eventually { consumer.metrics.snapshot.applied == 19 && consumer.metrics.snapshot.deadLettered == 1 })
        consumer.stop()
        try await running.value
        // The rows the first attempt wrote before g-7 failed were rolled back with it: each event applied once.
        let ledger = try await fixture.ledger()
        #expect(ledger.count == 19 && ledger.values.allSatisfy { $0 == 1 } && ledger["g-7"] == nil)
        #expect(consumer.metrics.snapshot.handlerFailures == 3, "the savepoint pass tries the event handlerAttempts times")
    }

    @Test func aNewConnectionPreparesTheConsumersStatementsAgain() async throws {
        let fixture = try await ConsumerFixture.make(partitions: 1)
        defer { fixture.close() }
        try await fixture.produce((0..<50).map { "r-\($0)" })
        let consumer = try OutboxConsumer(configuration: fixture.configuration(batch: 20), log: { _ in })
        let running = Task { try await consumer.run(ConsumerFixture.ledgerHandler) }
        #expect(await eventually { consumer.metrics.snapshot.applied == 50 })
        // The consumer's connection dies; the next one has no prepared statements and must prepare them again.
        try await fixture.db.query("""
            SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
            """)
        try await fixture.produce((50..<100).map { "r-\($0)" })
        #expect(await eventually { consumer.metrics.snapshot.applied == 100 })
        consumer.stop()
        try await running.value
        let ledger = try await fixture.ledger()
        #expect(ledger.count == 100 && ledger.values.allSatisfy { $0 == 1 })
        // At most the batch that met the dead connection was rolled back; none failed on a missing statement.
        #expect(consumer.metrics.snapshot.batchRetries <= 1, "\(consumer.metrics.snapshot.batchRetries) rollbacks")
    }

    /// The ledger handler with its insert deferred: sent with the batch's COMMIT.
    static let deferredLedgerHandler: OutboxConsumer.Handler = { event, db in
        db.executeDeferred("INSERT INTO ledger (event_id, topic, partition, \"offset\") VALUES ($1, $2, $3, $4)",
                           [event.id, event.topic, Int(event.partition), event.offset])
    }

    @Test func aHandlerThatDefersItsStatementsAddsNoRoundTrip() async throws {
        let fixture = try await ConsumerFixture.make(partitions: 1)
        defer { fixture.close() }
        try await fixture.produce((0..<300).map { "d-\($0)" })
        let consumer = try OutboxConsumer(configuration: fixture.configuration(batch: 100), log: { _ in })
        let running = Task { try await consumer.run(Self.deferredLedgerHandler) }
        #expect(await eventually { consumer.metrics.snapshot.applied == 300 })
        consumer.stop()
        try await running.value
        let snapshot = consumer.metrics.snapshot
        #expect(snapshot.roundTrips == 2 * snapshot.batches, "\(snapshot.roundTrips) round trips for \(snapshot.batches) batches")
        let ledger = try await fixture.ledger()
        #expect(ledger.count == 300 && ledger.values.allSatisfy { $0 == 1 })
    }

    @Test func aFailingDeferredStatementIsPinnedToItsEventBySavepoints() async throws {
        let fixture = try await ConsumerFixture.make(partitions: 1)
        defer { fixture.close() }
        // h-7's insert fails only when COMMIT sends it; the other events' inserts are fine.
        try await fixture.db.execute("ALTER TABLE ledger ADD CONSTRAINT ledger_no_h7 CHECK (event_id <> 'h-7')")
        try await fixture.produce((0..<20).map { "h-\($0)" })
        var configuration = fixture.configuration(batch: 20)
        configuration.poisonPolicy = .deadLetter
        let consumer = try OutboxConsumer(configuration: configuration, log: { _ in })
        let running = Task { try await consumer.run(Self.deferredLedgerHandler) }
        #expect(await eventually { consumer.metrics.snapshot.applied == 19 && consumer.metrics.snapshot.deadLettered == 1 })
        consumer.stop()
        try await running.value
        let ledger = try await fixture.ledger()
        #expect(ledger.count == 19 && ledger.values.allSatisfy { $0 == 1 } && ledger["h-7"] == nil)
        #expect(consumer.metrics.snapshot.handlerFailures == 3, "the savepoint pass tries h-7 handlerAttempts times")
        #expect(consumer.metrics.snapshot.batchRetries == 0, "a handler's failure, not the database's")
    }

    @Test func aDeferredFailureNeverSendsADeadLetterTwice() async throws {
        let fixture = try await ConsumerFixture.make(partitions: 1)
        defer { fixture.close() }
        try await fixture.db.execute("ALTER TABLE ledger ADD CONSTRAINT ledger_no_m3 CHECK (event_id <> 'm-3')")
        // m-0 … m-5, and a record without an event_id (dead-lettered at once) after m-3, all in one batch.
        try await fixture.produce(records: (0..<7).map { index in (key: "k", eventID: index == 4 ? nil : "m-\(index < 4 ? index : index - 1)") })
        var configuration = fixture.configuration(batch: 20)
        configuration.poisonPolicy = .deadLetter
        configuration.missingEventID = .deadLetter
        let consumer = try OutboxConsumer(configuration: configuration, log: { _ in })
        let running = Task { try await consumer.run(Self.deferredLedgerHandler) }
        #expect(await eventually { consumer.metrics.snapshot.applied == 5 && consumer.metrics.snapshot.deadLettered == 2 })
        consumer.stop()
        try await running.value
        #expect(Set(try await fixture.ledger().keys) == ["m-0", "m-1", "m-2", "m-4", "m-5"])

        // The dead-letter topic holds each of the two once (read until nothing more arrives for 3 s).
        let reader = try KafkaConsumer(properties: ["bootstrap.servers": fixture.kafka.bootstrapServers, "group.id": "dlq-reader",
                                                    "auto.offset.reset": "earliest"], log: { _ in })
        try reader.subscribe(["svc.dead-letter"])
        var letters: [String] = []
        var quiet = 0
        for _ in 0..<600 where quiet < 30 { // at most 60 s; done after 3 s without records once two arrived
            let records = try await reader.pollOnQueue(maxRecords: 100, timeout: .milliseconds(100))
            quiet = records.isEmpty ? quiet + (letters.count >= 2 ? 1 : 0) : 0
            letters += records.map { $0.header("event_id")?.stringValue ?? "none" }
        }
        try await reader.close()
        #expect(letters.sorted() == ["m-3", "none"], "\(letters)")
    }
}
