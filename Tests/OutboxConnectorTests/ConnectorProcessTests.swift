import Foundation
import LibPQ
import OutboxConnector
import PGOutput
import RDKafka
import TestSupport
import Testing

/// The connector as an operator runs it: `tailgate run` in its own process, killed, restarted, starved.
@Suite struct ConnectorProcessTests {
    /// Kill the connector with SIGKILL three times during a load; after each kill the slot's confirmed position
    /// must not pass an event Kafka lacks (checked against a witness slot), and at the end every event is there.
    @Test func sigkillNeverLosesAnEventNorConfirmsPastAnUnacknowledgedOne() async throws {
        let fixture = try await OutboxFixture.make()
        defer { fixture.close() }
        let port = try TestPostgres.freePort()
        var process = try ConnectorProcess(fixture: fixture, json: fixture.json(metricsPort: port), metricsPort: port)
        #expect(await eventually { await process.isStreaming }, "never streamed: \(process.child.output)")
        let witnessSlot = "w_\(fixture.database)"
        try await fixture.db.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [witnessSlot])

        let total = 10_000
        let load = Task { try await fixture.load(transactions: 0..<1_000, pause: .milliseconds(8)) }
        var checks = 0
        for round in 0..<3 {
            // Long enough for some positions to be confirmed (they reach the server within about a second).
            try await Task.sleep(for: .milliseconds(2_000 + 500 * round))
            process.child.signal(SIGKILL)
            #expect(await process.child.exitStatus() == 128 + SIGKILL)
            // The connector is dead: its slot position is final until the restart. Compare it with Kafka.
            let confirmed = try await fixture.slotState()?.confirmedFlushLSN ?? .invalid
            let inKafka = Set(try await fixture.readBack(["order-events", "catalog-events"], expected: Int.max, timeout: .seconds(3))
                .compactMap { $0.headerText("event_id") })
            let witness = try await fixture.witness(slot: witnessSlot)
            let confirmedButMissing = witness.filter { $0.value <= confirmed && !inKafka.contains($0.key) }.count
            #expect(confirmedButMissing == 0, "round \(round): \(confirmedButMissing) events confirmed at \(confirmed) but not in Kafka")
            checks += witness.filter { $0.value <= confirmed }.count
            print("round \(round): confirmed \(confirmed), witnessed \(witness.count) events from \(witness.values.min() ?? .invalid) to \(witness.values.max() ?? .invalid), kafka has \(inKafka.count)")
            process = try ConnectorProcess(fixture: fixture, json: fixture.json(metricsPort: port), metricsPort: port)
            #expect(await eventually { await process.isStreaming }, "restart \(round) never streamed: \(process.child.output)")
        }
        try await load.value
        #expect(checks > 0, "the kills happened after some events were confirmed, so the check above had something to check")

        let ids = Set(try await fixture.db.query("SELECT id::text FROM outbox_event").rows.compactMap { $0[0] })
        #expect(ids.count == total)
        let records = try await fixture.readBack(["order-events", "catalog-events"], timeout: .seconds(90)) { records in
            ids.isSubset(of: Set(records.compactMap { $0.headerText("event_id") }))
        }
        let delivered = Set(records.compactMap { $0.headerText("event_id") })
        #expect(ids.subtracting(delivered).isEmpty, "\(ids.subtracting(delivered).count) events lost")
        print("sigkill x3: \(total) events, \(records.count) records in Kafka, \(records.count - delivered.count) duplicates")

        process.child.signal(SIGTERM)
        #expect(await process.child.exitStatus() == 0, "graceful stop exits 0: \(process.child.output)")
        #expect(process.child.output.contains("event=shutdown_requested signal=SIGTERM"))
        try await fixture.db.query("SELECT pg_drop_replication_slot($1)", [witnessSlot])
    }

    @Test(.enabled(if: TestKafka.mockControlsUnavailableReason == nil, Comment(rawValue: TestKafka.mockControlsUnavailableReason ?? "")))
    func aKafkaOutageHoldsTheConfirmedPositionAndLosesNothing() async throws {
        let fixture = try await OutboxFixture.make()
        defer { fixture.close() }
        let port = try TestPostgres.freePort()
        let process = try ConnectorProcess(fixture: fixture, json: fixture.json(metricsPort: port), metricsPort: port)
        #expect(await eventually { await process.isStreaming }, "\(process.child.output)")
        try await fixture.load(transactions: 0..<100)
        #expect(await eventually { (await process.delivered ?? 0) >= 1_000 })
        #expect(try await eventually { try await fixture.slotState()?.confirmedFlushLSN ?? .invalid > .invalid })

        for broker: Int32 in 1...3 { try fixture.kafka.takeBrokerDown(broker) }
        // A witness slot maps each event written during the outage to its transaction's commit end LSN.
        let witnessSlot = "w_\(fixture.database)"
        try await fixture.db.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [witnessSlot])
        try await fixture.load(transactions: 100..<200)
        try await Task.sleep(for: .seconds(3))
        let duringOutage = try #require(try await fixture.slotState()?.confirmedFlushLSN)
        let outageCommits = try await fixture.witness(slot: witnessSlot)
        #expect(outageCommits.count == 1_000)
        let firstOutageCommit = try #require(outageCommits.values.min())
        #expect(duringOutage < firstOutageCommit,
                "confirmed \(duringOutage) passed \(outageCommits.values.filter { $0 <= duringOutage }.count) events Kafka never acknowledged")
        #expect(await process.delivered == 1_000, "nothing was acknowledged during the outage")
        try await fixture.db.query("SELECT pg_drop_replication_slot($1)", [witnessSlot])
        for broker: Int32 in 1...3 { try fixture.kafka.bringBrokerUp(broker) }

        #expect(await eventually(timeout: .seconds(60)) { (await process.delivered ?? 0) >= 2_000 }, "the 2,000 records were not all delivered within 60 s of the brokers coming back: \(process.child.output.suffix(1500))")
        #expect(try await eventually { try await fixture.slotState()?.confirmedFlushLSN ?? .invalid > duringOutage },
                "the position moves once Kafka is back")
        let records = try await fixture.readBack(["order-events", "catalog-events"], expected: 2_000)
        #expect(Set(records.compactMap { $0.headerText("event_id") }).count == 2_000)
        process.child.signal(SIGTERM)
        #expect(await process.child.exitStatus() == 0)
    }

    /// A 100,000-row transaction with ~2 KB payloads (about 200 MB) passes through a connector limited to 1,000
    /// records in flight: its peak RSS stays far below what buffering the transaction would need.
    @Test func aHugeTransactionStreamsWithBoundedMemory() async throws {
        // A cluster of its own: on the shared one, every other test's walsender had to read this transaction's
        // ~300 MB of WAL, and no logical slot could be created while it ran (a slot waits for every transaction with
        // an xid to end), so connectors of unrelated tests did not stream for 45 s under a full parallel run.
        let postgres = try await TestPostgres.start()
        let fixture = try await OutboxFixture.make(postgres: postgres, partitions: 12)
        defer {
            fixture.close()
            Task { try? await postgres.stop(mode: .immediate) }
        }
        let port = try TestPostgres.freePort()
        let process = try ConnectorProcess(fixture: fixture, json: fixture.json(metricsPort: port, extra: #", "maxInFlightRecords": 1000"#),
                                           metricsPort: port)
        #expect(await eventually { await process.isStreaming }, "\(process.child.output)")
        try await fixture.load(transactions: 0..<1, rowsPerTransaction: 1)
        #expect(await eventually { await process.delivered == 1 })
        let idle = try #require(process.peakRSSKiB)
        try await fixture.db.execute("""
            INSERT INTO outbox_event (topic, aggregate_type, aggregate_id, event_type, payload)
            SELECT 'order-events', 'product', 'key-' || (g % 1000), 'Big',
                   jsonb_build_object('seq', g, 'blob', (SELECT string_agg(md5((g * 64 + i)::text), '') FROM generate_series(1, 60) i))
            FROM generate_series(1, 100000) g
            """)
        #expect(await eventually(timeout: .seconds(240)) { (await process.delivered ?? 0) >= 100_001 }, "the 100,001 records were not all delivered within 240 s: \(process.child.output.suffix(1500))")
        let peak = try #require(process.peakRSSKiB)
        let payloadMiB = 100_000 * 2_000 / 1_048_576
        print("huge transaction: idle RSS \(idle / 1024) MiB, peak \(peak / 1024) MiB for ~\(payloadMiB) MiB of payload")
        #expect(peak - idle < 100 * 1024, "peak RSS grew by \((peak - idle) / 1024) MiB; a bounded pipeline needs far less than the \(payloadMiB) MiB transaction")
        process.child.signal(SIGTERM)
        #expect(await process.child.exitStatus() == 0)
    }

    @Test func validateReportsEveryProblemAndTouchesNothing() async throws {
        let fixture = try await OutboxFixture.make()
        defer { fixture.close() }
        let directory = fixture.stateDirectory
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let bad = directory + "/bad.json"
        try #"{"name": "x", "postgres": {"conninfo": "dbname=x", "slot": "x\"; DROP TABLE outbox_event; --", "publication": "p"}, "outbox": {"table": "outbox_event", "topic": {"name": "t"}, "extra": 1}, "kafka": {"bootstrap.servers": 9092}}"#
            .write(toFile: bad, atomically: true, encoding: .utf8)
        let output = directory + "/validate.log"
        let child = try ChildProcess(ChildProcess.productsDirectory + "/tailgate", ["validate", "--config", bad], outputPath: output)
        #expect(await child.exitStatus() == 1)
        #expect(child.output.contains("$.postgres.slot"))
        #expect(child.output.contains("$.outbox.extra: unknown key"))
        #expect(try await fixture.db.query("SELECT count(*) AS n FROM outbox_event").first?.int("n") == 0, "the table is intact")

        let good = directory + "/good.json"
        let port = try TestPostgres.freePort()
        try fixture.json(metricsPort: port).write(toFile: good, atomically: true, encoding: .utf8)
        let ok = try ChildProcess(ChildProcess.productsDirectory + "/tailgate", ["validate", "--config", good, "--connect"],
                                  outputPath: directory + "/validate-ok.log")
        #expect(await ok.exitStatus() == 0, "\(ok.output)")
        #expect(ok.output.contains("database ok"))
        #expect(try await fixture.db.query("SELECT 1 FROM pg_publication WHERE pubname = $1", [fixture.publication]).rows.isEmpty,
                "validate creates nothing")
    }
}
