import Foundation
import LibPQ
import OutboxConnector
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

        static func make(syncSlots: Bool) async throws -> Pair {
            let primary = try await TestPostgres.start(settings: ["wal_sender_timeout = 10s"])
            let fixture = try await OutboxFixture.make(postgres: primary)
            let standby = try await TestPostgres.startStandby(
                of: primary, slot: "standby1", database: fixture.database,
                settings: syncSlots ? ["sync_replication_slots = on"] : [])
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

        let writer = Writer()
        let writing = Task { await writer.run(conninfo: pair.conninfo(attributes: "read-write")) }
        #expect(await eventually { connector.metrics.deliveredTotal >= 100 }, "events flow before the failover")
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
        let crashed = ContinuousClock.now
        try await pair.primary.stop(mode: .immediate)
        try await pair.standby.promote()
        let promoted = ContinuousClock.now
        #expect(await eventually(timeout: .seconds(60)) { log.all.filter { $0.contains("event=streaming") }.count > streamingBefore },
                "the connector streams from the promoted standby: \(log.all.suffix(8))")
        let followed = ContinuousClock.now
        let deliveredAtFollow = connector.metrics.deliveredTotal
        #expect(await eventually(timeout: .seconds(60)) { connector.metrics.deliveredTotal > deliveredAtFollow + 50 },
                "events written on the new primary are published")
        writer.stop()
        await writing.value

        // The new primary is the truth: every event it has is in Kafka, and Kafka has no event it lacks.
        let newPrimary = try await Connection.connect(pair.standby.conninfo(database: pair.fixture.database))
        defer { Task { await newPrimary.close() } }
        let onNewPrimary = Set(try await newPrimary.query("SELECT id::text AS id FROM outbox_event").rows.compactMap { $0["id"] })
        let records = try await pair.fixture.readBack(["order-events"], timeout: .seconds(90)) { records in
            onNewPrimary.isSubset(of: Set(records.compactMap { $0.headerText("event_id") }))
        }
        let published = Set(records.compactMap { $0.headerText("event_id") })
        let committed = Set(writer.committed.withLock { $0 })
        let missing = onNewPrimary.subtracting(published).count
        let phantom = published.subtracting(onNewPrimary).count
        #expect(missing == 0, "\(missing) event(s) on the new primary are not in Kafka")
        #expect(phantom == 0, "\(phantom) event(s) in Kafka come from transactions the new primary lacks")
        #expect(committed.intersection(onNewPrimary).subtracting(published).isEmpty, "every committed event the new primary has is in Kafka")
        #expect(log.all.filter { $0.contains("event=slot_created") }.count == 1, "the slot was never re-created")
        #expect(log.contains("event=failover_followed"))
        let lostByReplication = committed.subtracting(onNewPrimary).count
        print("failover: connector streaming again \(followed - crashed) after the crash (\(followed - promoted) after promotion); "
              + "\(onNewPrimary.count) events on the new primary, \(published.count) distinct in Kafka (\(records.count) records), "
              + "\(lostByReplication) committed on the old primary but never replicated (asynchronous standby)")
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
