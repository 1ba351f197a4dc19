import Foundation
import LibPQ
import Observability
import OutboxConsumer
import TestSupport
import Testing

/// The service database fails over to a physical standby that had not received the consumer's last commits.
@Suite struct ConsumerFailoverTests {
    /// Ledger rows per event id, on a connection of its own.
    func ledger(_ conninfo: String) async throws -> [String: Int] {
        let db = try await Connection.connect(conninfo)
        defer { Task { await db.close() } }
        var counts: [String: Int] = [:]
        for row in try await db.query("SELECT event_id, count(*)::text AS n FROM ledger GROUP BY event_id").rows {
            counts[row["event_id"] ?? ""] = Int(row["n"] ?? "")
        }
        return counts
    }

    @Test func batchesTheStandbyNeverReceivedAreAppliedAgainOnThePromotedStandbyExactlyOnce() async throws {
        let primary = try await TestPostgres.start()
        let fixture = try await ConsumerFixture.make(postgres: primary, partitions: 2)
        defer { fixture.close() }
        let standby = try await TestPostgres.startStandby(of: primary, slot: "standby1", database: fixture.database)
        defer { Task { try? await standby.stop(mode: .immediate); try? await primary.stop(mode: .immediate) } }
        var configuration = fixture.configuration(batch: 50)
        configuration.postgres = "host=\(primary.directory),\(standby.directory) port=\(primary.port),\(standby.port) "
            + "dbname=\(fixture.database) user=postgres target_session_attrs=primary connect_timeout=5"
        let log = LogLines()
        let consumer = try OutboxConsumer(configuration: configuration, logger: EventLogger(write: { log.append($0) }))
        let consuming = Task { try await consumer.run(ConsumerFixture.ledgerHandler) }
        let onStandby = standby.conninfo(database: fixture.database)

        try await fixture.produce((0..<300).map { "before-\($0)" })
        #expect(try await eventually(timeout: .seconds(60)) { try await fixture.ledgerTotal() == 300 })
        // Everything so far reaches the standby; then its WAL receiver stops, and what follows never does.
        let lsn = try await fixture.db.query("SELECT pg_current_wal_lsn()::text AS lsn").first?["lsn"]
        let written = try #require(lsn)
        let standbyDB = try await Connection.connect(onStandby)
        #expect(try await eventually {
            try await standbyDB.query("SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS caught_up", [written]).first?["caught_up"] == "t"
        }, "the standby replays what the primary wrote")
        try await standbyDB.execute("ALTER SYSTEM SET primary_conninfo = ''")
        try await standbyDB.query("SELECT pg_reload_conf()")
        await standbyDB.close()
        #expect(try await eventually {
            try await fixture.db.query("SELECT count(*)::text AS n FROM pg_stat_replication").first?.int("n") == 0
        }, "the standby no longer streams")
        try await fixture.produce((0..<200).map { "lost-\($0)" })
        #expect(try await eventually(timeout: .seconds(60)) { try await fixture.ledgerTotal() == 500 }, "applied on the old primary only")

        try await primary.stop(mode: .immediate)
        try await standby.promote()
        // Nothing new arrives: the idle consumer must notice on its own that the database lost 200 applications.
        let reapplied = try await eventually(timeout: .seconds(60), every: .milliseconds(200)) { try await ledger(onStandby).count == 500 }
        let appliedAfterPromotion = try await ledger(onStandby).count
        #expect(reapplied, "the promoted standby has \(appliedAfterPromotion) of 500 events applied: \(log.all.suffix(6))")
        #expect(log.contains("event=offsets_rewound"), "\(log.all.suffix(6))")
        try await fixture.produce((0..<100).map { "after-\($0)" })
        #expect(try await eventually(timeout: .seconds(60), every: .milliseconds(200)) { try await ledger(onStandby).count == 600 })
        consumer.stop()
        try await consuming.value
        let applied = try await ledger(onStandby)
        #expect(applied.count == 600, "every event applied on the promoted standby")
        #expect(applied.values.allSatisfy { $0 == 1 }, "\(applied.filter { $0.value > 1 }.count) event(s) applied twice")
    }
}
