import Foundation
import LibPQ
import OutboxConsumer
import RDKafka
import TestSupport
import Testing

/// Consumers as services run them: child processes, killed without warning.
@Suite struct ConsumerProcessTests {
    /// How a `LedgerConsumer` applies its events (`TG_HANDLER`).
    enum HandlerKind: String, CaseIterable, Sendable {
        /// `run`: an ordinary handler on the batch's session.
        case session
        /// `runStatements`: a statement handler, each batch first in one pipeline.
        case statements
    }

    /// - Parameter sessionTimeoutMS: `nil` for the library's defaults.
    func startConsumer(_ fixture: ConsumerFixture, log: String, sessionTimeoutMS: Int? = 3000,
                       handler: HandlerKind = .session) throws -> ChildProcess {
        var environment = [
            "TG_BOOTSTRAP": fixture.kafka.bootstrapServers, "TG_POSTGRES": fixture.postgres.conninfo(database: fixture.database),
            "TG_GROUP": "svc", "TG_BATCH": "100", "TG_HANDLER": handler.rawValue,
        ]
        environment["TG_SESSION_TIMEOUT_MS"] = sessionTimeoutMS.map(String.init)
        return try ChildProcess(ChildProcess.productsDirectory + "/LedgerConsumer", [], outputPath: log, environment: environment)
    }

    func logPath(_ name: String) -> String {
        NSTemporaryDirectory() + "ledger-\(name)-\(getpid())-\(UUID().uuidString).log"
    }

    @Test(arguments: HandlerKind.allCases)
    func sigkillMidBatchRepeatedlyStillAppliesEveryEventExactlyOnce(handler: HandlerKind) async throws {
        let fixture = try await ConsumerFixture.make()
        defer { fixture.close() }
        let total = 6_000
        try await fixture.produce((0..<total).map { "k-\($0)" })
        let log = logPath("kill")
        defer { unlink(log) }
        var kills = 0
        for round in 0..<4 {
            let child = try startConsumer(fixture, log: log, handler: handler)
            // Let it apply part of the backlog, then kill it wherever it is.
            let before = try await fixture.ledgerTotal()
            _ = await eventually(timeout: .seconds(20)) { (try? await fixture.ledgerTotal()) ?? 0 > before + 300 }
            try await Task.sleep(for: .milliseconds(50 * round))
            child.signal(SIGKILL)
            #expect(await child.exitStatus() == 128 + SIGKILL)
            kills += 1
        }
        let last = try startConsumer(fixture, log: log, handler: handler)
        // Its SIGTERM handling is in place once it has said it started.
        #expect(await eventually { (try? String(contentsOfFile: log, encoding: .utf8))?.components(separatedBy: "event=started").count == 6 })
        #expect(try await eventually(timeout: .seconds(90)) { try await fixture.ledger().count == total })
        last.signal(SIGTERM)
        #expect(await last.exitStatus() == 0)
        let ledger = try await fixture.ledger()
        #expect(kills == 4)
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(output.components(separatedBy: "handler=\(handler.rawValue) ").count == 6, "every run used the \(handler) handler")
        #expect(ledger.count == total, "every event applied")
        #expect(ledger.values.allSatisfy { $0 == 1 }, "\(ledger.values.filter { $0 > 1 }.count) events applied twice")
    }

    /// With `mixed`, the second instance (the one killed) runs a statement handler: both ways of applying a batch
    /// share the group's partitions.
    @Test(arguments: [false, true])
    func twoInstancesInOneGroupWithOneKilledApplyEveryEventExactlyOnceInTotal(mixed: Bool) async throws {
        let fixture = try await ConsumerFixture.make(partitions: 6)
        defer { fixture.close() }
        let log = logPath("pair")
        defer { unlink(log) }
        let first = try startConsumer(fixture, log: log)
        let second = try startConsumer(fixture, log: log, handler: mixed ? .statements : .session)
        try await fixture.produce((0..<4_000).map { "g-\($0)" })
        _ = await eventually(timeout: .seconds(30)) { (try? await fixture.ledgerTotal()) ?? 0 > 1_000 }
        second.signal(SIGKILL)
        #expect(await second.exitStatus() == 128 + SIGKILL)
        try await fixture.produce((4_000..<6_000).map { "g-\($0)" })
        // The survivor takes the dead member's partitions after its session times out, at their stored offsets.
        #expect(try await eventually(timeout: .seconds(90)) { try await fixture.ledger().count == 6_000 })
        first.signal(SIGTERM)
        #expect(await first.exitStatus() == 0)
        let ledger = try await fixture.ledger()
        #expect(ledger.count == 6_000 && ledger.values.allSatisfy { $0 == 1 })
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(output.contains("event=partitions_assigned"))
        #expect(output.contains("handler=statements") == mixed)
    }

    /// Distinct and total ledger rows, on a fresh connection (the server restarts under the test).
    func ledgerCounts(_ fixture: ConsumerFixture) async -> (distinct: Int, total: Int)? {
        guard let db = try? await Connection.connect(fixture.postgres.conninfo(database: fixture.database)) else { return nil }
        defer { Task { await db.close() } }
        guard let row = try? await db.query("SELECT count(DISTINCT event_id)::text AS d, count(*)::text AS t FROM ledger").first,
              let distinct = row.int("d"), let total = row.int("t") else { return nil }
        return (distinct, total)
    }

    @Test func postgresCrashingWhileTwoInstancesRebalanceNeverLeavesAPartitionPaused() async throws {
        // Issue 11: a failed batch paused every partition, a rebalance took its records away, and nothing resumed
        // the reassigned partitions (librdkafka keeps the pause flag across reassignment).
        let postgres = try await TestPostgres.start()
        let fixture = try await ConsumerFixture.make(postgres: postgres, partitions: 6)
        defer { fixture.close() }
        let log = logPath("rebalance-crash")
        defer { unlink(log) }
        let first = try startConsumer(fixture, log: log)
        let second = try startConsumer(fixture, log: log)
        var produced = 0
        for round in 0..<3 {
            try await fixture.produce((produced..<produced + 600).map { "rc-\($0)" })
            produced += 600
            let target = produced - 300
            _ = await eventually(timeout: .seconds(30), every: .milliseconds(200)) { await ledgerCounts(fixture)?.distinct ?? 0 >= target }
            // The second instance freezes past its session timeout while the database crashes: the first takes over
            // every partition with its batch failing, then the second comes back and takes half of them away.
            second.signal(SIGSTOP)
            try await postgres.stop(mode: .immediate)
            try await fixture.produce((produced..<produced + 300).map { "rc-\($0)" })
            produced += 300
            try await Task.sleep(for: .seconds(5))
            second.signal(SIGCONT)
            try await Task.sleep(for: .seconds(2 + round))
            try await postgres.startAgain()
            let expected = produced
            let caughtUp = await eventually(timeout: .seconds(60), every: .milliseconds(200)) { await ledgerCounts(fixture)?.distinct == expected }
            let counts = await ledgerCounts(fixture)
            let stored = try? await Connection.connect(fixture.postgres.conninfo(database: fixture.database))
                .query("""
                    SELECT (SELECT string_agg(partition || ':' || next_offset, ' ' ORDER BY partition) FROM tailgate_offsets)
                        || ' inbox-without-ledger ' || (SELECT count(*) FROM tailgate_inbox i WHERE NOT EXISTS (SELECT FROM ledger l WHERE l.event_id = i.event_id))
                        || ' inbox ' || (SELECT count(*) FROM tailgate_inbox)
                        || ' ledger ' || (SELECT string_agg(p, ' ') FROM (SELECT partition || ':' || count(*) || '/' || max("offset") + 1 AS p FROM ledger GROUP BY partition ORDER BY partition) x) AS o
                    """).first?["o"]
            #expect(caughtUp, "round \(round): \(String(describing: counts)) of \(expected) applied, stored offsets \(stored ?? "?"); every partition must keep moving")
        }
        first.signal(SIGTERM)
        second.signal(SIGTERM)
        #expect(await first.exitStatus() == 0)
        #expect(await second.exitStatus() == 0)
        let counts = await ledgerCounts(fixture)
        #expect(counts?.distinct == produced && counts?.total == produced, "exactly once: \(String(describing: counts))")
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(output.contains("event=batch_rolled_back") && output.contains("event=partitions_lost"))
        try await postgres.stop(mode: .immediate)
    }

    @Test func withTheDefaultsADeadInstancesPartitionsMoveWithinAboutTenSeconds() async throws {
        // librdkafka's own session.timeout.ms is 45 s; ConsumerConfiguration.kafkaDefaults makes it 6 s.
        let fixture = try await ConsumerFixture.make(partitions: 4)
        defer { fixture.close() }
        let log = logPath("defaults")
        defer { unlink(log) }
        let lines = { (try? String(contentsOfFile: log, encoding: .utf8))?.split(separator: "\n").map(String.init) ?? [] }
        let first = try startConsumer(fixture, log: log, sessionTimeoutMS: nil)
        #expect(await eventually { lines().contains { $0.contains("pid=\(first.pid)") && $0.contains("event=partitions_assigned") } })
        let second = try startConsumer(fixture, log: log, sessionTimeoutMS: nil)
        #expect(await eventually(timeout: .seconds(30)) { lines().contains { $0.contains("pid=\(second.pid)") && $0.contains("event=partitions_assigned") } })
        try await fixture.produce((0..<400).map { "dd-\($0)" })
        #expect(try await eventually(timeout: .seconds(30)) { try await fixture.ledgerTotal() == 400 })
        let everyPartition = "partitions=events[0],events[1],events[2],events[3]"
        let before = lines().filter { $0.contains("pid=\(first.pid)") && $0.contains(everyPartition) }.count
        second.signal(SIGKILL)
        #expect(await second.exitStatus() == 128 + SIGKILL)
        let killed = ContinuousClock.now
        // Generous for a loaded two-core machine, and still far below the 45 s the defaults replace.
        let moved = await eventually(timeout: .seconds(25), every: .milliseconds(100)) {
            lines().filter { $0.contains("pid=\(first.pid)") && $0.contains(everyPartition) }.count > before
        }
        let took = ContinuousClock.now - killed
        #expect(moved, "the survivor was not assigned every partition within 25 s of the kill")
        try await fixture.produce((400..<600).map { "dd-\($0)" })
        #expect(try await eventually(timeout: .seconds(30)) { try await fixture.ledgerTotal() == 600 }, "took \(took)")
        first.signal(SIGTERM)
        #expect(await first.exitStatus() == 0)
        #expect(try await fixture.ledger().values.allSatisfy { $0 == 1 })
    }

    @Test func aKillDuringAReleaseChangesNothingAndTheNextRunReleasesInOrderOnce() async throws {
        let fixture = try await ConsumerFixture.make(partitions: 1)
        defer { fixture.close() }
        try await fixture.db.execute("CREATE TABLE cured (cured bool)")
        let slow = (1...6).map { (id: "s-\($0)", key: "kk", type: "Slow") }
        try await fixture.produce(keyed: [(id: "p-0", key: "kk", type: "Poison")] + slow + [(id: "other", key: "k2", type: "Fine")])
        let log = logPath("release-kill")
        defer { unlink(log) }
        var child = try startConsumer(fixture, log: log)
        // nil until the consumer has created its tables.
        let parkedCount = { try? await fixture.db.query("SELECT count(*)::text AS n FROM tailgate_parked").first?.int("n") }
        #expect(try await eventually(timeout: .seconds(30)) {
            let parked = await parkedCount()
            let other = try await fixture.ledger()["other"]
            return parked == 7 && other == 1
        })
        try await fixture.db.execute("INSERT INTO cured VALUES (true)")
        let tailgate = ChildProcess.productsDirectory + "/tailgate"
        let release = try ChildProcess(tailgate, ["parked", "release", "--postgres", fixture.postgres.conninfo(database: fixture.database),
                                                  "--group", "svc", "--topic", "events", "--partition", "0", "--key", "kk"], outputPath: log + ".cli")
        defer { unlink(log + ".cli") }
        #expect(await release.exitStatus() == 0, "\(release.output)")
        #expect(release.output.contains("release requested for 7 parked event(s)"))
        // Killed in the middle of the release (six slow events, 300 ms each).
        #expect(await eventually(timeout: .seconds(20)) { (try? String(contentsOfFile: log, encoding: .utf8))?.contains("event=release_started") == true })
        try await Task.sleep(for: .milliseconds(700))
        child.signal(SIGKILL)
        #expect(await child.exitStatus() == 128 + SIGKILL)
        #expect(await parkedCount() == 7, "the killed release changed nothing")
        #expect(try await fixture.ledger().keys.sorted() == ["other"])
        // The next run carries the request out.
        child = try startConsumer(fixture, log: log)
        #expect(try await eventually(timeout: .seconds(30)) {
            let parked = await parkedCount()
            let total = try await fixture.ledgerTotal()
            return parked == 0 && total == 8
        })
        let order = try await fixture.appliedOrder()
        #expect(order == ["other", "p-0"] + slow.map(\.id), "in the original order, exactly once: \(order)")
        child.signal(SIGTERM)
        #expect(await child.exitStatus() == 0)
    }
}
