import Foundation
import LibPQ
import OutboxConsumer
import RDKafka
import Synchronization
import TestSupport
import Testing

/// A statement handler's batches (``OutboxConsumer/runStatements(_:)``): one round trip while nothing is a duplicate
/// or parked, and the same exactly-once ledger as the careful way whenever the one pipeline falls back.
@Suite struct OnePipelineTests {
    /// The ledger handler as a statement handler: one ledger row per application (the ledger has no unique
    /// constraint, so a duplicate application shows).
    static let ledgerStatements: OutboxConsumer.StatementHandler = { event, statements in
        if event.type == "Poison" { throw ConsumerFixture.PoisonError() }
        statements.execute("INSERT INTO ledger (event_id, topic, partition, \"offset\") VALUES ($1, $2, $3, $4)",
                           [event.id, event.topic, Int(event.partition), event.offset])
    }

    /// Runs a consumer with `handler` until `done`, then stops it; returns its last metrics.
    static func consume(_ configuration: ConsumerConfiguration, _ handler: @escaping OutboxConsumer.StatementHandler = ledgerStatements,
                        lines: LogLines = LogLines(), timeout: Duration = .seconds(45),
                        until done: @escaping @Sendable (ConsumerMetrics.Snapshot) -> Bool) async throws -> ConsumerMetrics.Snapshot {
        let consumer = try OutboxConsumer(configuration: configuration, log: { lines.append($0) })
        let running = Task { try await consumer.runStatements(handler) }
        let reached = await eventually(timeout: timeout) { done(consumer.metrics.snapshot) }
        consumer.stop()
        try await running.value
        #expect(reached, "\(consumer.metrics.snapshot) \(lines.all.suffix(5))")
        return consumer.metrics.snapshot
    }

    @Test func newEventsCommitInOneRoundTripPerBatch() async throws {
        let fixture = try await ConsumerFixture.make(partitions: 2)
        defer { fixture.close() }
        try await fixture.produce((0..<500).map { "n-\($0)" })
        let snapshot = try await Self.consume(fixture.configuration(batch: 50)) { $0.applied == 500 }
        #expect(snapshot.batches >= 10)
        #expect(snapshot.roundTrips == snapshot.batches, "\(snapshot.roundTrips) round trips for \(snapshot.batches) batches")
        #expect(snapshot.onePipelineFallbacks == 0 && snapshot.duplicatesSkipped == 0)
        let ledger = try await fixture.ledger()
        #expect(ledger.count == 500 && ledger.values.allSatisfy { $0 == 1 })
        // The inbox and the offsets committed with the statements.
        #expect(try await fixture.db.query("SELECT count(*)::text AS n FROM tailgate_inbox WHERE status = 'applied'").first?.int("n") == 500)
        let stored = try await fixture.db.query("SELECT sum(next_offset)::text AS total FROM tailgate_offsets WHERE consumer_group = 'svc'").first
        #expect(stored?.int("total") == 500)
    }

    /// Redelivered events (published twice, and the whole topic again from offsets rewound to the start): the one
    /// pipeline fails on the inbox insert, the batch is applied again claim first, nothing twice.
    @Test func redeliveredEventsFallBackAndAreAppliedOnce() async throws {
        let fixture = try await ConsumerFixture.make(partitions: 2)
        defer { fixture.close() }
        var ids: [String] = []
        for index in 0..<1_000 {
            ids.append("r-\(index)")
            if index >= 500 && index % 50 == 0 { ids.append("r-\(index - 500)") }
        }
        try await fixture.produce(ids)
        let records = ids.count
        let first = try await Self.consume(fixture.configuration(batch: 50)) { $0.applied + $0.duplicatesSkipped == records }
        #expect(first.applied == 1_000 && first.duplicatesSkipped == 10)
        #expect(first.onePipelineFallbacks > 0 && first.onePipelineFallbacks <= 10, "only batches with a duplicate fall back: \(first)")
        #expect(try await fixture.ledger().values.allSatisfy { $0 == 1 })

        // A restart from offsets rewound to the start: every record is a duplicate.
        try await fixture.db.execute("UPDATE tailgate_offsets SET next_offset = 0 WHERE consumer_group = 'svc'")
        try await fixture.produce((0..<20).map { "late-\($0)" })
        let again = try await Self.consume(fixture.configuration(batch: 50)) { $0.applied + $0.duplicatesSkipped == records + 20 }
        #expect(again.applied == 20 && again.duplicatesSkipped == records)
        #expect(again.onePipelineFallbacks > 0)
        let ledger = try await fixture.ledger()
        #expect(ledger.count == 1_020, "every event applied")
        #expect(ledger.values.allSatisfy { $0 == 1 }, "\(ledger.filter { $0.value > 1 }.count) applied twice")
    }

    /// A handler that throws for one event: the batch falls back, the event is retried in its savepoint and
    /// dead-lettered or parked, every other event applied once.
    @Test(arguments: [ConsumerConfiguration.PoisonPolicy.deadLetter, .parkKey])
    func aPoisonEventIsSetAsideAndTheRestAppliedOnce(policy: ConsumerConfiguration.PoisonPolicy) async throws {
        let fixture = try await ConsumerFixture.make(partitions: 1)
        defer { fixture.close() }
        try await fixture.produce(keyed: (0..<40).map { (id: "p-\($0)", key: "k-\($0 % 4)", type: $0 == 13 ? "Poison" : "Fine") })
        var configuration = fixture.configuration(batch: 10)
        configuration.poisonPolicy = policy
        // With parkKey, p-13's key k-1 parks p-17 … p-37 behind it.
        let setAside = policy == .parkKey ? [13, 17, 21, 25, 29, 33, 37].map { "p-\($0)" } : ["p-13"]
        let snapshot = try await Self.consume(configuration) { $0.applied == 40 - setAside.count && $0.deadLettered + $0.parked == setAside.count }
        #expect(snapshot.handlerFailures == 3, "the savepoint pass tries p-13 handlerAttempts times")
        #expect(snapshot.onePipelineFallbacks >= 1)
        let ledger = try await fixture.ledger()
        #expect(Set(ledger.keys) == Set((0..<40).map { "p-\($0)" }).subtracting(setAside) && ledger.values.allSatisfy { $0 == 1 })
        if policy == .deadLetter {
            #expect(try await fixture.deadLetteredInInbox() == ["p-13"])
        } else {
            #expect(snapshot.parked == setAside.count)
        }
    }

    /// A key parked before: a new event of that key arrives in a batch the one pipeline would otherwise commit. The
    /// guard fails it; claim first, the event parks behind its key and is not applied.
    @Test func aNewEventOfAParkedKeyIsParkedNotApplied() async throws {
        let fixture = try await ConsumerFixture.make(partitions: 1)
        defer { fixture.close() }
        try await fixture.produce(keyed: [(id: "q-0", key: "stuck", type: "Poison"), (id: "q-1", key: "free", type: "Fine")])
        let lines = LogLines()
        let consumer = try OutboxConsumer(configuration: fixture.configuration(batch: 10), log: { lines.append($0) })
        let running = Task { try await consumer.runStatements(Self.ledgerStatements) }
        #expect(await eventually { consumer.metrics.snapshot.parked == 1 && consumer.metrics.snapshot.applied == 1 }, "\(consumer.metrics.snapshot)")
        let fallbacksBefore = consumer.metrics.snapshot.onePipelineFallbacks
        // A batch of its own: nothing in it is a duplicate or poison, only the key is parked.
        try await fixture.produce(keyed: [(id: "q-2", key: "stuck", type: "Fine"), (id: "q-3", key: "free", type: "Fine")])
        #expect(await eventually { consumer.metrics.snapshot.parked == 2 && consumer.metrics.snapshot.applied == 2 }, "\(consumer.metrics.snapshot)")
        consumer.stop()
        try await running.value
        #expect(consumer.metrics.snapshot.onePipelineFallbacks > fallbacksBefore, "the guard failed the one pipeline")
        #expect(Set(try await fixture.ledger().keys) == ["q-1", "q-3"], "q-2 waits behind its parked key")
        #expect(lines.contains("event=parked_behind"))
        let parked = try await fixture.db.query("SELECT event_id FROM tailgate_parked ORDER BY \"offset\"").rows.compactMap { $0["event_id"] }
        #expect(parked == ["q-0", "q-2"])
    }

    /// A statement of the handler fails (a check constraint) for one event: the one pipeline rolls back, and the
    /// savepoint pass pins the failure on that event.
    @Test(arguments: [ConsumerConfiguration.PoisonPolicy.deadLetter, .parkKey])
    func aFailingStatementSetsItsEventAsideAndTheRestAppliedOnce(policy: ConsumerConfiguration.PoisonPolicy) async throws {
        let fixture = try await ConsumerFixture.make(partitions: 1)
        defer { fixture.close() }
        try await fixture.db.execute("ALTER TABLE ledger ADD CONSTRAINT ledger_no_s7 CHECK (event_id <> 's-7')")
        try await fixture.produce(keyed: (0..<20).map { (id: "s-\($0)", key: "k-\($0)", type: "Fine") })
        var configuration = fixture.configuration(batch: 20)
        configuration.poisonPolicy = policy
        let snapshot = try await Self.consume(configuration) { $0.applied == 19 && $0.deadLettered + $0.parked == 1 }
        #expect(snapshot.onePipelineFallbacks >= 1 && snapshot.batchRetries == 0, "a handler's failure, not the database's")
        let ledger = try await fixture.ledger()
        #expect(ledger.count == 19 && ledger["s-7"] == nil && ledger.values.allSatisfy { $0 == 1 })
        let status = try await fixture.db.query("SELECT status FROM tailgate_inbox WHERE event_id = 's-7'").first?["status"]
        #expect(status == (policy == .parkKey ? "parked" : "dead_lettered"))
    }

    /// A record without an `event_id` that the policy dead-letters: the batch goes claim first before anything is
    /// sent (the one pipeline would apply it), the record is dead-lettered, the others applied once.
    @Test func aRecordWithoutAnEventIDToDeadLetterSendsTheBatchClaimFirst() async throws {
        let fixture = try await ConsumerFixture.make(partitions: 1)
        defer { fixture.close() }
        try await fixture.produce(records: (0..<6).map { index in (key: "k-\(index)", eventID: index == 3 ? nil : "m-\(index)") })
        var configuration = fixture.configuration(batch: 20)
        configuration.missingEventID = .deadLetter
        let snapshot = try await Self.consume(configuration) { $0.applied == 5 && $0.deadLettered == 1 }
        #expect(snapshot.onePipelineFallbacks >= 1)
        #expect(Set(try await fixture.ledger().keys) == ["m-0", "m-1", "m-2", "m-4", "m-5"])
        #expect(try await fixture.ledger().values.allSatisfy { $0 == 1 })
        #expect(try await fixture.deadLetteredInInbox() == ["events/0/3"])
    }

    /// The consumer's connection is terminated again and again while one-pipeline batches are in flight (each
    /// event's statements take 10 ms in the server): each cut batch rolls back and is retried after a backoff; the
    /// ledger ends exact.
    @Test func aDatabaseOutageRollsOnePipelineBatchesBackAndLosesNothing() async throws {
        let fixture = try await ConsumerFixture.make(partitions: 2)
        defer { fixture.close() }
        let lines = LogLines()
        let consumer = try OutboxConsumer(configuration: fixture.configuration(batch: 20), log: { lines.append($0) })
        let running = Task {
            try await consumer.runStatements { event, statements in
                try Self.ledgerStatements(event, &statements)
                statements.execute("SELECT pg_sleep(0.01)")
            }
        }
        let total = 400
        try await fixture.produce((0..<total).map { "o-\($0)" })
        // The cuts start once batches flow (the group has formed).
        #expect(await eventually { consumer.metrics.snapshot.applied > 0 })
        var cuts = 0
        while consumer.metrics.snapshot.applied < total && cuts < 12 {
            try await Task.sleep(for: .milliseconds(150))
            try await fixture.db.query("""
                SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
                """)
            cuts += 1
        }
        #expect(await eventually(timeout: .seconds(60)) { consumer.metrics.snapshot.applied == total }, "\(consumer.metrics.snapshot)")
        consumer.stop()
        try await running.value
        let snapshot = consumer.metrics.snapshot
        #expect(snapshot.batchRetries >= 1, "a one-pipeline batch met the cut connection and was rolled back: \(snapshot)")
        #expect(lines.contains("event=batch_rolled_back"))
        let ledger = try await fixture.ledger()
        #expect(ledger.count == total, "every event applied")
        #expect(ledger.values.allSatisfy { $0 == 1 }, "\(ledger.filter { $0.value > 1 }.count) applied twice")
    }
}
