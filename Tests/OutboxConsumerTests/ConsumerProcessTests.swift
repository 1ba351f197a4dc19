import Foundation
import LibPQ
import OutboxConsumer
import RDKafka
import TestSupport
import Testing

/// Consumers as services run them: child processes, killed without warning.
@Suite struct ConsumerProcessTests {
    func startConsumer(_ fixture: ConsumerFixture, log: String) throws -> ChildProcess {
        try ChildProcess(ChildProcess.productsDirectory + "/LedgerConsumer", [], outputPath: log, environment: [
            "TG_BOOTSTRAP": fixture.kafka.bootstrapServers, "TG_POSTGRES": fixture.postgres.conninfo(database: fixture.database),
            "TG_GROUP": "svc", "TG_BATCH": "100", "TG_SESSION_TIMEOUT_MS": "3000",
        ])
    }

    func logPath(_ name: String) -> String {
        NSTemporaryDirectory() + "ledger-\(name)-\(getpid())-\(UUID().uuidString).log"
    }

    @Test func sigkillMidBatchRepeatedlyStillAppliesEveryEventExactlyOnce() async throws {
        let fixture = try await ConsumerFixture.make()
        defer { fixture.close() }
        let total = 6_000
        try await fixture.produce((0..<total).map { "k-\($0)" })
        let log = logPath("kill")
        defer { unlink(log) }
        var kills = 0
        for round in 0..<4 {
            let child = try startConsumer(fixture, log: log)
            // Let it apply part of the backlog, then kill it wherever it is.
            let before = try await fixture.ledgerTotal()
            _ = await eventually(timeout: .seconds(20)) { (try? await fixture.ledgerTotal()) ?? 0 > before + 300 }
            try await Task.sleep(for: .milliseconds(50 * round))
            child.signal(SIGKILL)
            #expect(await child.exitStatus() == 128 + SIGKILL)
            kills += 1
        }
        let last = try startConsumer(fixture, log: log)
        // Its SIGTERM handling is in place once it has said it started.
        #expect(await eventually { (try? String(contentsOfFile: log, encoding: .utf8))?.components(separatedBy: "event=started").count == 6 })
        #expect(try await eventually(timeout: .seconds(90)) { try await fixture.ledger().count == total })
        last.signal(SIGTERM)
        #expect(await last.exitStatus() == 0)
        let ledger = try await fixture.ledger()
        #expect(kills == 4)
        #expect(ledger.count == total, "every event applied")
        #expect(ledger.values.allSatisfy { $0 == 1 }, "\(ledger.values.filter { $0 > 1 }.count) events applied twice")
    }

    @Test func twoInstancesInOneGroupWithOneKilledApplyEveryEventExactlyOnceInTotal() async throws {
        let fixture = try await ConsumerFixture.make(partitions: 6)
        defer { fixture.close() }
        let log = logPath("pair")
        defer { unlink(log) }
        let first = try startConsumer(fixture, log: log)
        let second = try startConsumer(fixture, log: log)
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
    }
}
