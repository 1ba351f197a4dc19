import Foundation
import LibPQ
import OutboxConsumer
import RDKafka
import Synchronization
import TestSupport
import Testing

/// Database states are outages, not poison: the batch waits and retries, nothing is dead-lettered, `run` never
/// throws, and every event is applied exactly once afterwards. Stop and cancellation reach every wait.
@Suite struct ConsumerLivenessTests {
    /// 40 events on 2 partitions, `x-17` a poison pill.
    func produceWithOnePoison(_ fixture: ConsumerFixture, prefix: String) async throws {
        try await fixture.produce((0..<40).map { "\(prefix)-\($0)" }) { $0 == "\(prefix)-17" ? "Poison" : "Fine" }
    }

    /// After the outage: 39 applied once each, the poison pill dead-lettered (in the inbox and the topic), nothing else.
    func expectAppliedOnceWithOnlyThePoisonDeadLettered(_ fixture: ConsumerFixture, _ consumer: OutboxConsumer, prefix: String) async throws {
        #expect(try await eventually(timeout: .seconds(60)) { try await fixture.ledger().count == 39 }, "\(consumer.metrics.snapshot)")
        let ledger = try await fixture.ledger()
        #expect(ledger.values.allSatisfy { $0 == 1 } && ledger["\(prefix)-17"] == nil)
        #expect(await eventually { consumer.metrics.snapshot.deadLettered == 1 })
        #expect(try await fixture.deadLetteredInInbox() == ["\(prefix)-17"])
        let dead = try await KafkaReader.readBack(bootstrap: fixture.kafka.bootstrapServers, topics: ["svc.dead-letter"], partitions: 1) { $0.count >= 1 }
        #expect(Set(dead.compactMap { $0.header("event_id")?.stringValue }) == ["\(prefix)-17"])
    }

    @Test func aConsumerStartedBeforeItsTableExistsWaitsForIt() async throws {
        let fixture = try await ConsumerFixture.make(partitions: 2)
        defer { fixture.close() }
        try await fixture.db.execute("DROP TABLE ledger")
        try await produceWithOnePoison(fixture, prefix: "t")
        let lines = LogLines()
        var configuration = fixture.configuration(batch: 10)
        configuration.poisonPolicy = .deadLetter
        let consumer = try OutboxConsumer(configuration: configuration, log: { lines.append($0) })
        let running = Task { try await consumer.run(ConsumerFixture.ledgerHandler) }
        #expect(await eventually { consumer.metrics.snapshot.batchRetries >= 3 })
        #expect(consumer.metrics.snapshot.deadLettered == 0 && consumer.metrics.snapshot.applied == 0)
        #expect(consumer.metrics.snapshot.lastRetryReason?.contains("42P01") == true, "\(consumer.metrics.snapshot)")
        #expect(try await fixture.deadLetteredInInbox().isEmpty, "a missing table is not the event's fault")
        #expect(lines.contains("event=batch_rolled_back"))
        // The migration runs late.
        try await fixture.db.execute("CREATE TABLE ledger (event_id text NOT NULL, topic text, partition int, \"offset\" bigint, applied_at timestamptz DEFAULT clock_timestamp())")
        try await expectAppliedOnceWithOnlyThePoisonDeadLettered(fixture, consumer, prefix: "t")
        #expect(consumer.metrics.snapshot.consecutiveBatchRetries == 0 && consumer.metrics.snapshot.lastRetryReason == nil)
        consumer.stop()
        try await running.value
    }

    @Test func aLockTimeoutWhileAnotherSessionHoldsTheTableIsWaitedOut() async throws {
        let fixture = try await ConsumerFixture.make(partitions: 2)
        defer { fixture.close() }
        let holder = try await Connection.connect(fixture.postgres.conninfo(database: fixture.database))
        try await holder.execute("BEGIN")
        try await holder.execute("LOCK TABLE ledger IN ACCESS EXCLUSIVE MODE")
        try await produceWithOnePoison(fixture, prefix: "l")
        var configuration = fixture.configuration(batch: 10, conninfoSuffix: " options='-c lock_timeout=200'")
        configuration.poisonPolicy = .deadLetter
        let consumer = try OutboxConsumer(configuration: configuration, log: { _ in })
        let running = Task { try await consumer.run(ConsumerFixture.ledgerHandler) }
        #expect(await eventually { consumer.metrics.snapshot.batchRetries >= 3 })
        #expect(consumer.metrics.snapshot.lastRetryReason?.contains("55P03") == true, "\(consumer.metrics.snapshot)")
        #expect(consumer.metrics.snapshot.deadLettered == 0 && consumer.metrics.snapshot.applied == 0)
        try await holder.execute("COMMIT")
        try await expectAppliedOnceWithOnlyThePoisonDeadLettered(fixture, consumer, prefix: "l")
        consumer.stop()
        try await running.value
        await holder.close()
    }

    @Test func aReadOnlyDatabaseFor20SecondsIsWaitedOutAndShownAsAStall() async throws {
        // ALTER SYSTEM changes the whole cluster: a cluster of its own.
        let postgres = try await TestPostgres.start()
        let fixture = try await ConsumerFixture.make(postgres: postgres, partitions: 2)
        defer { fixture.close() }
        try await fixture.db.execute("SET default_transaction_read_only = off") // the test's own session stays writable
        let lines = LogLines()
        var configuration = fixture.configuration(batch: 10)
        configuration.stallThreshold = .seconds(3)
        configuration.poisonPolicy = .deadLetter
        let consumer = try OutboxConsumer(configuration: configuration, log: { lines.append($0) })
        let running = Task { try await consumer.run(ConsumerFixture.ledgerHandler) }
        try await fixture.produce((0..<20).map { "before-\($0)" })
        #expect(try await eventually(timeout: .seconds(30)) { try await fixture.ledgerTotal() == 20 })

        try await fixture.db.execute("ALTER SYSTEM SET default_transaction_read_only = on")
        try await fixture.db.execute("SELECT pg_reload_conf()")
        try await produceWithOnePoison(fixture, prefix: "ro")
        let readOnlyUntil = ContinuousClock.now + .seconds(20)
        #expect(await eventually { consumer.metrics.snapshot.lastRetryReason?.contains("25006") == true }, "\(consumer.metrics.snapshot)")
        #expect(await eventually(timeout: .seconds(15)) { consumer.metrics.snapshot.stalled }, "\(consumer.metrics.snapshot)")
        #expect(lines.contains("event=stalled"))
        #expect(consumer.metrics.render(group: "svc").contains("tailgate_consumer_stalled{group=\"svc\"} 1"))
        try await Task.sleep(until: readOnlyUntil)
        #expect(consumer.metrics.snapshot.deadLettered == 0 && consumer.metrics.snapshot.applied == 20)
        let poisonMarked = try await fixture.deadLetteredInInbox()
        #expect(poisonMarked.isEmpty)

        try await fixture.db.execute("ALTER SYSTEM RESET default_transaction_read_only")
        try await fixture.db.execute("SELECT pg_reload_conf()")
        #expect(try await eventually(timeout: .seconds(60)) { try await fixture.ledgerTotal() == 59 })
        let ledger = try await fixture.ledger()
        #expect(ledger.count == 59 && ledger.values.allSatisfy { $0 == 1 } && ledger["ro-17"] == nil)
        #expect(await eventually { !consumer.metrics.snapshot.stalled })
        #expect(lines.contains("event=stall_ended"))
        #expect(try await fixture.deadLetteredInInbox() == ["ro-17"])
        consumer.stop()
        try await running.value
        try await postgres.stop(mode: .immediate)
    }

    @Test func aDatabaseNotThereAtStartIsWaitedForAndCancellationStopsTheWait() async throws {
        let fixture = try await ConsumerFixture.make(partitions: 2)
        defer { fixture.close() }
        try await fixture.produce((0..<30).map { "s-\($0)" })
        let later = "later_\(getpid())_\(UInt32.random(in: 0..<UInt32.max))"
        var configuration = fixture.configuration()
        configuration.postgres = fixture.postgres.conninfo(database: later)
        let lines = LogLines()
        let consumer = try OutboxConsumer(configuration: configuration, log: { lines.append($0) })
        let running = Task { try await consumer.run(ConsumerFixture.ledgerHandler) }
        #expect(await eventually { lines.all.filter { $0.contains("event=postgres_unavailable") }.count >= 2 })
        let admin = try await Connection.connect(fixture.postgres.conninfo())
        try await admin.execute("CREATE DATABASE \(later)")
        await admin.close()
        let db = try await Connection.connect(fixture.postgres.conninfo(database: later))
        try await db.execute("CREATE TABLE ledger (event_id text NOT NULL, topic text, partition int, \"offset\" bigint, applied_at timestamptz DEFAULT clock_timestamp())")
        #expect(await eventually(timeout: .seconds(30)) { consumer.metrics.snapshot.applied == 30 })
        #expect(try await db.query("SELECT count(DISTINCT event_id)::text AS n, count(*)::text AS total FROM ledger").first?.int("total") == 30)
        await db.close()
        running.cancel()
        let finished = Atomic<Bool>(false)
        Task { _ = try? await running.value; finished.store(true, ordering: .releasing) }
        #expect(await eventually(timeout: .seconds(20)) { finished.load(ordering: .acquiring) }, "cancelling the task stops run")
        #expect(lines.contains("event=stopped"))
    }

    @Test func cancellationReachesALongBackoff() async throws {
        let fixture = try await ConsumerFixture.make(partitions: 1)
        defer { fixture.close() }
        var configuration = fixture.configuration()
        configuration.postgres = "host=127.0.0.1 port=\(try TestPostgres.freePort()) dbname=nothing connect_timeout=2"
        configuration.retryBackoff = .seconds(60)
        configuration.maxBackoff = .seconds(60)
        let lines = LogLines()
        let consumer = try OutboxConsumer(configuration: configuration, log: { lines.append($0) })
        let running = Task { try await consumer.run(ConsumerFixture.ledgerHandler) }
        #expect(await eventually { lines.contains("event=postgres_unavailable") })
        running.cancel()
        let finished = Atomic<Bool>(false)
        Task { _ = try? await running.value; finished.store(true, ordering: .releasing) }
        #expect(await eventually(timeout: .seconds(20)) { finished.load(ordering: .acquiring) }, "the 60 s backoff was cut short")
    }

    /// A stop while a handler's statement waits for a row lock another session holds (no lock_timeout, no
    /// statement_timeout: nothing on the server would end the wait) cancels the statement: `run` returns within
    /// seconds, the batch is rolled back (nothing applied, no offset stored), and once the lock is released a new
    /// consumer applies the event exactly once from the stored offsets.
    @Test func aStopCancelsAStatementWaitingForARowLockAndTheBatchIsAppliedOnceLater() async throws {
        let fixture = try await ConsumerFixture.make(partitions: 1)
        defer { fixture.close() }
        try await fixture.db.execute("CREATE TABLE stock (sku text PRIMARY KEY, reserved int NOT NULL)")
        try await fixture.db.execute("INSERT INTO stock VALUES ('sku-1', 0)")
        let holder = try await Connection.connect(fixture.postgres.conninfo(database: fixture.database))
        try await holder.execute("BEGIN")
        try await holder.execute("SELECT * FROM stock WHERE sku = 'sku-1' FOR UPDATE")
        try await fixture.produce(["r-0"])
        let handler: OutboxConsumer.Handler = { event, db in
            try db.execute("INSERT INTO ledger (event_id, topic, partition, \"offset\") VALUES ($1, $2, $3, $4)",
                           [event.id, event.topic, Int(event.partition), event.offset])
            try db.execute("UPDATE stock SET reserved = reserved + 1 WHERE sku = 'sku-1'")
        }
        let lines = LogLines()
        let consumer = try OutboxConsumer(configuration: fixture.configuration(), log: { lines.append($0) })
        let running = Task { try await consumer.run(handler) }
        let waitingForTheLock = """
            SELECT count(*)::text AS n FROM pg_stat_activity
            WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'UPDATE stock%'
            """
        #expect(try await eventually { try await fixture.db.query(waitingForTheLock).first?.int("n") == 1 }, "\(consumer.metrics.snapshot)")
        let asked = ContinuousClock.now
        running.cancel()
        let finished = Atomic<Bool>(false)
        Task { _ = try? await running.value; finished.store(true, ordering: .releasing) }
        let stopped = await eventually(timeout: .seconds(10)) { finished.load(ordering: .acquiring) }
        #expect(stopped, "run did not return within 10 s of the stop (\(ContinuousClock.now - asked)): it waited for the row lock")
        #expect(try await fixture.ledgerTotal() == 0, "the event was not applied")
        #expect(try await fixture.db.query("SELECT count(*)::text AS n FROM tailgate_offsets").first?.int("n") == 0, "no offset stored")
        #expect(try await fixture.db.query("SELECT count(*)::text AS n FROM tailgate_inbox").first?.int("n") == 0, "no inbox row")
        #expect(!lines.contains("event=batch_rolled_back"), "a stop is not an outage to retry")
        try await holder.execute("COMMIT")
        await holder.close()
        if !stopped { _ = try? await running.value }

        let second = try OutboxConsumer(configuration: fixture.configuration(), log: { _ in })
        let again = Task { try await second.run(handler) }
        #expect(try await eventually { try await fixture.ledgerTotal() == 1 })
        #expect(try await eventually {
            try await fixture.db.query("SELECT next_offset::text AS n FROM tailgate_offsets").first?.int("n") == 1
        })
        second.stop()
        try await again.value
        #expect(try await fixture.ledger() == ["r-0": 1])
        #expect(try await fixture.db.query("SELECT reserved::text AS n FROM stock").first?.int("n") == 1, "applied exactly once")
    }

    @Test func cancellationStopsAnIdleConsumerAndItLeavesTheGroup() async throws {
        let fixture = try await ConsumerFixture.make(partitions: 2)
        defer { fixture.close() }
        try await fixture.produce((0..<20).map { "c-\($0)" })
        let lines = LogLines()
        let consumer = try OutboxConsumer(configuration: fixture.configuration(), log: { lines.append($0) })
        let running = Task { try await consumer.run(ConsumerFixture.ledgerHandler) }
        #expect(await eventually { consumer.metrics.snapshot.applied == 20 })
        running.cancel()
        let finished = Atomic<Bool>(false)
        Task { _ = try? await running.value; finished.store(true, ordering: .releasing) }
        #expect(await eventually(timeout: .seconds(20)) { finished.load(ordering: .acquiring) })
        // Left the group cleanly: its partitions were revoked, not lost.
        #expect(lines.contains("event=partitions_revoked") && lines.contains("event=stopped"))
        #expect(try await fixture.ledgerTotal() == 20)
    }

    @Test func kafkaOutOfReachIsShownInTheMetricsAndLogged() async throws {
        let fixture = try await ConsumerFixture.make(partitions: 1)
        defer { fixture.close() }
        var configuration = fixture.configuration()
        configuration.kafka["bootstrap.servers"] = "127.0.0.1:\(try TestPostgres.freePort())"
        configuration.stallThreshold = .seconds(2)
        let lines = LogLines()
        let consumer = try OutboxConsumer(configuration: configuration, log: { lines.append($0) })
        let running = Task { try await consumer.run(ConsumerFixture.ledgerHandler) }
        #expect(await eventually(timeout: .seconds(20)) { consumer.metrics.snapshot.kafkaUnreachableSeconds >= 2 }, "\(consumer.metrics.snapshot)")
        #expect(await eventually { lines.contains("event=kafka_unreachable") })
        #expect(consumer.metrics.render(group: "svc").contains("tailgate_consumer_kafka_unreachable_seconds{group=\"svc\"}"))
        consumer.stop()
        try await running.value
    }
}
