import Foundation
import LibPQ
import Observability
import OutboxConnector
import OutboxConsumer
import RDKafka
import Synchronization
import TestSupport
import Testing

/// A primary and a physical standby; the primary crashes (`pg_ctl stop -m immediate`), the standby is promoted, and
/// the connector follows through a multi-host conninfo — or, where the slot was not synchronized, stops and says why.
@Suite struct FailoverTests {
    /// A primary with a physical standby streaming through the slot `standby1`, an outbox database on both, and a
    /// connector file whose conninfo lists both hosts with `target_session_attrs=primary`.
    struct Pair {
        let fixture: OutboxFixture
        let primary: TestPostgres
        let standby: TestPostgres

        /// `standbySettings` are appended to the standby's configuration (e.g. `hot_standby_feedback = off`).
        static func make(syncSlots: Bool, standbySettings: [String] = []) async throws -> Pair {
            let primary = try await TestPostgres.start(settings: ["wal_sender_timeout = 10s"])
            let fixture = try await OutboxFixture.make(postgres: primary)
            // The consumer's ledger (one row per application, no unique constraint: a loss and a duplicate cannot
            // cancel out) lives in the same database, so it fails over with the outbox.
            try await fixture.db.execute("CREATE TABLE ledger (event_id text NOT NULL, applied_at timestamptz DEFAULT clock_timestamp())")
            let standby = try await TestPostgres.startStandby(
                of: primary, slot: "standby1", database: fixture.database,
                settings: (syncSlots ? ["sync_replication_slots = on"] : []) + standbySettings)
            if syncSlots {
                // The connector must not receive what the standby has not flushed: a failover would lose it.
                try await fixture.db.execute("ALTER SYSTEM SET synchronized_standby_slots = 'standby1'")
                try await fixture.db.query("SELECT pg_reload_conf()")
            }
            return Pair(fixture: fixture, primary: primary, standby: standby)
        }

        /// Both servers, the primary first; libpq connects to whichever is the primary now.
        func conninfo(attributes: String = "primary") -> String {
            "host=\(primary.directory),\(standby.directory) port=\(primary.port),\(standby.port) dbname=\(fixture.database) user=postgres target_session_attrs=\(attributes) connect_timeout=5"
        }

        func configuration() throws -> ConnectorConfiguration {
            try fixture.configuration {
                var postgres = $0["postgres"] as! [String: Any]
                postgres["conninfo"] = conninfo()
                $0["postgres"] = postgres
            }
        }

        /// The slot as the standby sees it.
        func standbySlot() async throws -> ReplicationConnection.SlotState? {
            let connection = try await Connection.connect(standby.conninfo(database: fixture.database))
            defer { Task { await connection.close() } }
            return try await connection.query(ReplicationConnection.SlotState.parameterizedQuery, [fixture.slot])
                .first.flatMap(ReplicationConnection.SlotState.init(row:))
        }

        /// A consumer of `order-events` whose inbox, offsets and ledger are in the outbox database, reached through
        /// the same multi-host conninfo as the connector, so it must follow the promotion too.
        func consumer(log: LogLines) throws -> OutboxConsumer {
            try OutboxConsumer(configuration: ConsumerConfiguration(
                groupID: "svc", topics: ["order-events"],
                kafka: ["bootstrap.servers": fixture.kafka.bootstrapServers, "fetch.wait.max.ms": "50"],
                postgres: conninfo(), maxBatchSize: 100, retryBackoff: .milliseconds(20), maxBackoff: .milliseconds(500)),
                logger: EventLogger(write: { log.append($0) }))
        }

        /// The promoted standby's outbox event ids (read through `newPrimary`), and `order-events` read back until
        /// it holds them all (or 90 s passed), with the distinct event ids it holds.
        func compareWithKafka(_ newPrimary: Connection) async throws
            -> (onNewPrimary: Set<String>, records: [ConsumerRecord], published: Set<String>) {
            let onNewPrimary = Set(try await newPrimary.query("SELECT id::text AS id FROM outbox_event").rows.compactMap { $0["id"] })
            let records = try await fixture.readBack(["order-events"], timeout: .seconds(90)) { records in
                onNewPrimary.isSubset(of: Set(records.compactMap { $0.headerText("event_id") }))
            }
            return (onNewPrimary, records, Set(records.compactMap { $0.headerText("event_id") }))
        }

        static let ledgerHandler: OutboxConsumer.Handler = { event, db in
            try db.execute("INSERT INTO ledger (event_id) VALUES ($1)", [event.id])
        }

        func stopAll() async {
            try? await standby.stop(mode: .immediate)
            try? await primary.stop(mode: .immediate)
            fixture.close()
        }
    }

    /// Inserts outbox rows in small transactions until stopped, through a multi-host conninfo; remembers the ids of
    /// every transaction whose COMMIT returned.
    final class Writer: Sendable {
        let committed = Mutex<[String]>([])
        let failedCommits = Atomic<Int>(0)
        private let stopRequested = Atomic<Bool>(false)

        func run(conninfo: String) async {
            var connection: Connection?
            var sequence = 0
            while !stopRequested.load(ordering: .acquiring) {
                do {
                    let current: Connection
                    if let connection { current = connection } else {
                        current = try await Connection.connect(conninfo)
                        connection = current
                    }
                    let ids = (0..<5).map { _ in UUID().uuidString.lowercased() }
                    sequence += 1
                    try await current.execute("""
                        INSERT INTO outbox_event (id, topic, aggregate_type, aggregate_id, event_type, payload)
                        SELECT id::uuid, 'order-events', 'order', 'key-' || ($2::int % 20), 'Placed', jsonb_build_object('seq', $2::int)
                        FROM unnest($1::text[]) AS id
                        """, [PostgresArray.literal(ids), sequence])
                    committed.withLock { $0 += ids }
                    try? await Task.sleep(for: .milliseconds(20))
                } catch {
                    // The primary is gone or read-only: the transaction's fate is unknown; reconnect.
                    failedCommits.add(1, ordering: .relaxed)
                    if let connection { await connection.close() }
                    connection = nil
                    try? await Task.sleep(for: .milliseconds(100))
                }
            }
            if let connection { await connection.close() }
        }

        func stop() { stopRequested.store(true, ordering: .releasing) }
    }

    @Test(.enabled(if: TestPostgres.isAtLeast(17), Comment(rawValue: TestPostgres.skipReason(needs: 17, "failover slots"))))
    func theConnectorFollowsAPromotedStandbyAndPublishesExactlyWhatItHas() async throws {
        let pair = try await Pair.make(syncSlots: true)
        defer { Task { await pair.stopAll() } }
        let log = LogLines()
        let running = try await pair.fixture.start(try pair.configuration(), log: log)
        let connector = running.connector
        #expect(try await pair.fixture.slotState()?.isFailover == true, "the slot was created with FAILOVER")
        let consumerLog = LogLines()
        let consumer = try pair.consumer(log: consumerLog)
        let consuming = Task { try await consumer.run(Pair.ledgerHandler) }

        let writer = Writer()
        let writing = Task { await writer.run(conninfo: pair.conninfo(attributes: "read-write")) }
        #expect(await eventually { connector.metrics.deliveredTotal >= 100 }, "events flow before the failover")
        #expect(await eventually { consumer.metrics.snapshot.applied >= 100 }, "the consumer applies before the failover: \(consumerLog.all.suffix(5))")
        // The standby's slot sync worker copies a new failover slot within a few of its cycles, as a temporary slot
        // until the primary's has moved past what the standby reserved; only then does a promotion keep it.
        let synced = try await eventually(timeout: .seconds(90), every: .milliseconds(500)) {
            try await pair.standbySlot()?.survivesFailover == true
        }
        #expect(synced, "the slot was synchronized to the standby: \(pair.standby.serverLogTail(10))")
        let readiness = await connector.validateFailover(standby: pair.standby.conninfo(database: pair.fixture.database))
        #expect(readiness.problems.isEmpty, "validate --standby finds nothing missing: \(readiness.problems)")
        #expect(readiness.ready.contains { $0.contains("the slot \(pair.fixture.slot) is synchronized") })
        try await Task.sleep(for: .seconds(1))

        let streamingBefore = log.all.filter { $0.contains("event=streaming") }.count
        try await pair.primary.stop(mode: .immediate)
        // The primary is down: any batch the consumer commits from now on commits on the promoted standby.
        let crashed = ContinuousClock.now
        let consumerBatchesAtCrash = consumer.metrics.snapshot.batches
        try await pair.standby.promote()
        let promoted = ContinuousClock.now
        #expect(await eventually(timeout: .seconds(60)) { log.all.filter { $0.contains("event=streaming") }.count > streamingBefore },
                "the connector streams from the promoted standby: \(log.all.suffix(8))")
        let followed = ContinuousClock.now
        #expect(await eventually(timeout: .seconds(60)) { consumer.metrics.snapshot.batches > consumerBatchesAtCrash },
                "the consumer commits on the promoted standby: \(consumerLog.all.suffix(8))")
        let consumerFollowed = ContinuousClock.now
        let deliveredAtFollow = connector.metrics.deliveredTotal
        #expect(await eventually(timeout: .seconds(60)) { connector.metrics.deliveredTotal > deliveredAtFollow + 50 },
                "events written on the new primary are published")
        writer.stop()
        await writing.value

        // The new primary is the truth: every event it has is in Kafka, and Kafka has no event it lacks.
        let newPrimary = try await Connection.connect(pair.standby.conninfo(database: pair.fixture.database))
        defer { Task { await newPrimary.close() } }
        let (onNewPrimary, records, published) = try await pair.compareWithKafka(newPrimary)
        let committed = Set(writer.committed.withLock { $0 })
        let missing = onNewPrimary.subtracting(published).count
        let phantom = published.subtracting(onNewPrimary).count
        #expect(missing == 0, "\(missing) event(s) on the new primary are not in Kafka")
        #expect(phantom == 0, "\(phantom) event(s) in Kafka come from transactions the new primary lacks")
        #expect(committed.intersection(onNewPrimary).subtracting(published).isEmpty, "every committed event the new primary has is in Kafka")
        #expect(log.all.filter { $0.contains("event=slot_created") }.count == 1, "the slot was never re-created")
        #expect(log.contains("event=failover_followed"))

        // The consumer's ledger on the new primary: every published event applied exactly once, nothing else. Its
        // commits the old primary never replicated are gone with it; those events must be applied again.
        let ledger = { () async throws -> [String: Int] in
            var counts: [String: Int] = [:]
            for row in try await newPrimary.query("SELECT event_id, count(*)::text AS n FROM ledger GROUP BY event_id").rows {
                counts[row["event_id"] ?? ""] = Int(row["n"] ?? "")
            }
            return counts
        }
        let caughtUp = try await eventually(timeout: .seconds(90), every: .milliseconds(200)) {
            published.isSubset(of: Set(try await ledger().keys))
        }
        consumer.stop()
        try await consuming.value
        let applied = try await ledger()
        let unapplied = published.subtracting(applied.keys).count
        #expect(caughtUp && unapplied == 0, "\(unapplied) published event(s) never applied on the new primary: \(consumerLog.all.suffix(8))")
        let twice = applied.filter { $0.value > 1 }
        #expect(twice.isEmpty, "\(twice.count) event(s) applied more than once on the new primary")
        let foreign = Set(applied.keys).subtracting(onNewPrimary).count
        #expect(foreign == 0, "\(foreign) event(s) applied whose transaction the new primary lacks")

        let lostByReplication = committed.subtracting(onNewPrimary).count
        print("failover: connector streaming again \(followed - crashed) after the crash (\(followed - promoted) after promotion), "
              + "consumer committing again \(consumerFollowed - crashed) after the crash (\(consumerFollowed - promoted) after promotion); "
              + "\(onNewPrimary.count) events on the new primary, \(published.count) distinct in Kafka (\(records.count) records), "
              + "\(applied.count) applied once (the consumer rewound \(consumerLog.all.filter { $0.contains("event=offsets_rewound") }.count) time(s)); \(lostByReplication) committed on the old primary but never replicated (asynchronous standby)")
        try await running.stop()
    }

    @Test func aSlotThatWasNotSynchronizedStopsTheConnectorWithRecoveryStepsAndIsNeverRecreated() async throws {
        // PostgreSQL 15 and 16 never synchronize logical slots; on 17+ this standby does not (sync_replication_slots off).
        let pair = try await Pair.make(syncSlots: false)
        defer { Task { await pair.stopAll() } }
        let log = LogLines()
        let running = try await pair.fixture.start(try pair.configuration(), log: log)
        let connector = running.connector
        let readiness = await connector.validateFailover(standby: pair.standby.conninfo(database: pair.fixture.database))
        let expectedNote = TestPostgres.isAtLeast(17)
            ? "standby: sync_replication_slots is 'off', so no slot is synchronized"
            : "PostgreSQL \(TestPostgres.majorVersion)."
        #expect(readiness.problems.contains { $0.contains(expectedNote) }, "\(readiness.problems)")
        try await pair.fixture.load(transactions: 0..<5)
        #expect(await eventually { connector.metrics.deliveredTotal == 50 })

        try await pair.primary.stop(mode: .immediate)
        try await pair.standby.promote()
        let error = try await #require(throws: ConnectorError.self) { try await running.task.value }
        #expect(error.code == .slotLost)
        #expect(error.message.contains("no longer exists on the promoted server"), "\(error.message)")
        #expect(error.message.contains("will not re-create it silently"))
        #expect(error.message.contains(TestPostgres.isAtLeast(17) ? "the slot was not synchronized to the promoted standby"
                                                                : "does not copy logical slots to standbys"), "\(error.message)")
        #expect(error.message.contains("tailgate backfill"))
        #expect(try await pair.standbySlot() == nil, "the connector did not create a new slot on the promoted server")
    }
}
