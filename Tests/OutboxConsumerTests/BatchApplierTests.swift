import Foundation
import LibPQ
import OutboxConsumer
import TestSupport
import Testing

@Suite struct BatchApplierTests {
    @Test func aBatchWithoutFailuresCostsFiveStatementsWhateverItsSize() async throws {
        let fixture = try await ConsumerFixture.make(partitions: 1)
        defer { fixture.close() }
        try await fixture.produce((0..<300).map { "f-\($0)" })
        let consumer = try OutboxConsumer(configuration: fixture.configuration(batch: 100), log: { _ in })
        let running = Task { try await consumer.run(ConsumerFixture.ledgerHandler) }
        #expect(await eventually { consumer.metrics.snapshot.applied == 300 })
        consumer.stop()
        try await running.value
        let snapshot = consumer.metrics.snapshot
        // BEGIN, inbox claim, parked keys, offsets, COMMIT: no savepoint per event when no handler fails.
        #expect(snapshot.roundTrips == 5 * snapshot.batches, "\(snapshot.roundTrips) statements for \(snapshot.batches) batches")
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
}
