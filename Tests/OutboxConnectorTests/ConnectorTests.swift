import Foundation
import LibPQ
import Observability
import OutboxConnector
import PGOutput
import RDKafka
import TestSupport
import Testing

@Suite struct ConnectorTests {
    /// 20,000 outbox rows over 2,000 transactions across 100 keys, in a clean run.
    @Test func everyEventArrivesOnceWithTheRecordLayoutAndPerKeyCommitOrder() async throws {
        let fixture = try await OutboxFixture.make()
        defer { fixture.close() }
        let log = LogLines()
        let running = try await fixture.start(try fixture.configuration(), log: log)
        let connector = running.connector

        var lastInside = LSN.invalid
        let loadStarted = Date()
        for transaction in 0..<2_000 {
            let inside = try await fixture.db.transaction { tx in
                try tx.execute("""
                    INSERT INTO outbox_event (topic, aggregate_type, aggregate_id, event_type, payload)
                    SELECT CASE WHEN g % 2 = 0 THEN 'order-events' ELSE 'catalog-events' END, 'product',
                           'key-' || (($1::int * 10 + g) % 100), 'ProductViewed',
                           jsonb_build_object('seq', $1::int * 10 + g)
                    FROM generate_series(0, 9) g
                    """, [transaction])
                return try tx.query("SELECT pg_current_wal_insert_lsn()::text AS lsn").first?["lsn"] ?? ""
            }
            lastInside = LSN(inside) ?? lastInside
        }
        #expect(await eventually(timeout: .seconds(120)) { connector.metrics.deliveredTotal >= 20_000 },
                "delivered \(connector.metrics.deliveredTotal)")
        let records = try await fixture.readBack(["order-events", "catalog-events"], expected: 20_000)
        #expect(records.count == 20_000, "exactly once in a clean run")

        let ids = Set(try await fixture.db.query("SELECT id::text FROM outbox_event").rows.compactMap { $0[0] })
        #expect(Set(records.compactMap { $0.headerText("event_id") }) == ids)
        var lastSequence: [String: Int] = [:]
        for record in records.sorted(by: { ($0.topic, $0.partition, $0.offset) < ($1.topic, $1.partition, $1.offset) }) {
            let payload = try JSONSerialization.jsonObject(with: Data(record.value ?? [])) as? [String: Int]
            let sequence = try #require(payload?["seq"])
            #expect(record.keyText == "key-\(sequence % 100)")
            #expect(record.topic == (sequence % 2 == 0 ? "order-events" : "catalog-events"))
            #expect(record.headers.map(\.name) == ["event_id", "event_type", "aggregate_type", "tailgate_lsn", "tailgate_xid", "tailgate_commit_time"])
            #expect(record.headerText("event_type") == "ProductViewed")
            #expect(LSN(record.headerText("tailgate_lsn") ?? "") != nil)
            // The transaction's commit time, in microseconds since the Unix epoch: during the load, on this machine.
            let committed = Double(Int64(record.headerText("tailgate_commit_time") ?? "") ?? 0) / 1_000_000
            #expect(committed >= loadStarted.timeIntervalSince1970 - 1 && committed <= Date().timeIntervalSince1970,
                    "tailgate_commit_time \(committed) outside the load")
            if let previous = lastSequence[record.keyText] { #expect(previous < sequence, "per-key order") }
            lastSequence[record.keyText] = sequence
        }

        // The position is reported while streaming, not only at shutdown.
        #expect(try await eventually(timeout: .seconds(10)) { try await fixture.slotState()?.confirmedFlushLSN ?? .invalid > lastInside },
                "confirmed_flush_lsn did not pass the last transaction while the connector ran")
        let port = try #require(connector.metricsPort)
        let metrics = try #require(await httpGet(port: port, path: "/metrics"))
        #expect(metrics.status == "HTTP/1.0 200 OK")
        let label = "connector=\"test-\(fixture.database)\""
        #expect(metrics.body.contains("tailgate_events_delivered_total{\(label),topic=\"order-events\"} 10000"))
        #expect(metrics.body.contains("tailgate_events_delivered_total{\(label),topic=\"catalog-events\"} 10000"))
        #expect(metrics.body.contains("tailgate_commit_to_ack_seconds_count{\(label)} 20000"))
        #expect(metrics.body.contains("tailgate_slot_wal_status{\(label),wal_status=\"reserved\"} 1") || metrics.body.contains("tailgate_streaming"))
        #expect(await httpGet(port: port, path: "/healthz")?.status == "HTTP/1.0 200 OK")
        #expect(!metrics.body.contains("password") && !metrics.body.contains(fixture.postgres.directory))

        try await running.stop()
        #expect(await httpGet(port: port, path: "/healthz") == nil, "the metrics server stops with the connector")
        let state = try #require(try await fixture.slotState())
        #expect(try #require(state.confirmedFlushLSN) > lastInside, "the last transaction's commit was confirmed")
        #expect(log.contains("event=slot_created") && log.contains("event=publication_created"))
        #expect(!log.all.joined().contains("password"))
    }

    /// `"format": "cloudevents"` through PostgreSQL and Kafka: every record read back is a valid CloudEvent in the Kafka
    /// protocol binding's binary mode (required attributes `ce_specversion`, `ce_id`, `ce_source`, `ce_type`; here also
    /// `ce_time`, `ce_subject`, `content-type`), with the aggregate key and Tailgate's own headers kept.
    @Test func cloudEventsRecordsCarryEveryRequiredAttribute() async throws {
        let fixture = try await OutboxFixture.make(partitions: 2)
        defer { fixture.close() }
        let configuration = try fixture.configuration { document in
            document["format"] = "cloudevents"
            document["cloudEvents"] = ["source": "/commerce/${value}", "sourceColumn": "aggregate_type",
                                       "typeColumn": "event_type", "subjectColumn": "aggregate_id"]
        }
        let running = try await fixture.start(configuration)
        let loadStarted = Date()
        try await fixture.db.execute("""
            INSERT INTO outbox_event (topic, aggregate_type, aggregate_id, event_type, payload)
            SELECT 'order-events', 'sales order', 'order-' || g, 'com.example.OrderPaid', jsonb_build_object('n', g)
            FROM generate_series(1, 20) g
            """)
        let records = try await fixture.readBack(["order-events"], expected: 20, partitions: 2)
        try await running.stop()
        let loadEnded = Date()
        #expect(records.count == 20)
        let ids = Set(try await fixture.db.query("SELECT id::text FROM outbox_event").rows.compactMap { $0[0] })
        let time = ISO8601DateFormatter()
        time.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        for record in records {
            let payload = try JSONSerialization.jsonObject(with: Data(record.value ?? [])) as? [String: Int]
            let n = try #require(payload?["n"])
            #expect(record.keyText == "order-\(n)", "the key stays the aggregate key")
            #expect(record.headerText("ce_specversion") == "1.0")
            let id = try #require(record.headerText("ce_id"))
            #expect(ids.contains(id) && record.headerText("event_id") == id, "ce_id is the event id, and event_id stays")
            let source = try #require(record.headerText("ce_source"))
            #expect(source == "/commerce/sales%20order" && URL(string: source) != nil, "a URI reference: \(source)")
            #expect(record.headerText("ce_type") == "com.example.OrderPaid")
            let committed = try #require(record.headerText("ce_time").flatMap { time.date(from: $0) }, "RFC 3339: \(record.headerText("ce_time") ?? "nil")")
            #expect(committed >= loadStarted.addingTimeInterval(-1) && committed <= loadEnded, "ce_time \(committed) is the commit time")
            let micros = try #require(record.headerText("tailgate_commit_time").flatMap { Double($0) })
            #expect(abs(committed.timeIntervalSince1970 - micros / 1_000_000) < 0.001, "ce_time and tailgate_commit_time agree")
            #expect(record.headerText("ce_subject") == "order-\(n)")
            #expect(record.headerText("content-type") == "application/json")
            #expect(record.headerText("tailgate_lsn").flatMap { LSN($0) } != nil && record.headerText("event_type") == "com.example.OrderPaid")
        }
    }

    @Test func onlyInsertsOnTheOutboxBecomeRecordsEvenWhenDeletedInTheSameTransaction() async throws {
        let fixture = try await OutboxFixture.make()
        defer { fixture.close() }
        // A user-made publication that publishes every operation, on the outbox and on another table.
        try await fixture.db.execute("CREATE TABLE orders (id int PRIMARY KEY, status text)")
        try await fixture.db.execute("CREATE PUBLICATION \(fixture.publication) FOR TABLE outbox_event, orders")
        try await fixture.db.execute("""
            INSERT INTO outbox_event (id, topic, aggregate_id, event_type, payload)
            VALUES ('00000000-0000-0000-0000-000000000001', 'order-events', 'o1', 'Existing', '{}')
            """)
        let connector = fixture.connector(try fixture.configuration {
            var postgres = $0["postgres"] as! [String: Any]
            postgres["createPublication"] = false
            $0["postgres"] = postgres
        })
        let running = Task { try await connector.run() }
        #expect(await eventually { connector.metrics.isStreaming })
        try await fixture.db.transaction { tx in
            try tx.execute("""
                INSERT INTO outbox_event (id, topic, aggregate_id, event_type, payload)
                VALUES ('00000000-0000-0000-0000-000000000002', 'order-events', 'o2', 'InsertedThenDeleted', '{"n": 2}')
                """)
            try tx.execute("DELETE FROM outbox_event WHERE id = '00000000-0000-0000-0000-000000000002'")
            try tx.execute("INSERT INTO orders VALUES (1, 'new')")
        }
        try await fixture.db.execute("UPDATE outbox_event SET event_type = 'Changed'")
        try await fixture.db.execute("DELETE FROM outbox_event")
        try await fixture.db.execute("UPDATE orders SET status = 'paid'")
        try await fixture.db.execute("""
            INSERT INTO outbox_event (id, topic, aggregate_id, event_type, payload)
            VALUES ('00000000-0000-0000-0000-000000000003', 'order-events', 'o3', 'Last', '{"n": 3}')
            """)
        #expect(await eventually { connector.metrics.deliveredTotal >= 2 })
        let records = try await fixture.readBack(["order-events", "catalog-events"], expected: 2)
        #expect(records.map { $0.headerText("event_type") }.sorted { ($0 ?? "") < ($1 ?? "") } == ["InsertedThenDeleted", "Last"])
        #expect(records.first { $0.keyText == "o2" }?.valueText == #"{"n": 2}"#)
        connector.requestStop()
        try await running.value
    }

    @Test func aRowThatCannotBeARecordIsDeadLetteredWithItsReason() async throws {
        let fixture = try await OutboxFixture.make()
        defer { fixture.close() }
        let running = try await fixture.start(try fixture.configuration())
        try await fixture.db.execute("""
            INSERT INTO outbox_event (id, topic, aggregate_id, event_type, payload) VALUES
              ('00000000-0000-0000-0000-00000000000a', 'payments-internal', 'k', 'Forbidden', '{}'),
              ('00000000-0000-0000-0000-00000000000b', NULL, 'k', 'NoTopic', '{}'),
              ('00000000-0000-0000-0000-00000000000c', 'order-events', 'k', 'Fine', '{}')
            """)
        let dead = try await fixture.readBack(["tailgate.dead-letter"], expected: 2)
        #expect(dead.count == 2)
        #expect(dead.contains { $0.headerText("event_type") == "Forbidden" && $0.headerText("tailgate_error")?.contains("not in allowedTopics") == true })
        #expect(dead.contains { $0.headerText("event_type") == "NoTopic" && $0.headerText("tailgate_error")?.contains("NULL or empty") == true })
        let fine = try await fixture.readBack(["order-events"], expected: 1)
        #expect(fine.map { $0.headerText("event_type") } == ["Fine"])
        try await running.stop()
    }

    @Test func withoutADeadLetterTopicABadRowStopsTheConnectorAndNothingPastItIsConfirmed() async throws {
        let fixture = try await OutboxFixture.make()
        defer { fixture.close() }
        let running = try await fixture.start(try fixture.configuration { $0.removeValue(forKey: "deadLetterTopic") })
        let connector = running.connector
        try await fixture.db.execute("INSERT INTO outbox_event (topic, aggregate_id, event_type, payload) VALUES ('order-events', 'k', 'Good', '{}')")
        #expect(await eventually { connector.metrics.deliveredTotal == 1 })
        let witnessSlot = "w_\(fixture.database)"
        try await fixture.db.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [witnessSlot])
        try await fixture.db.execute("""
            INSERT INTO outbox_event (id, topic, aggregate_id, event_type, payload)
            VALUES ('00000000-0000-0000-0000-0000000000bd', 'order-events', NULL, 'NoKey', '{}')
            """)
        let error = try await #require(throws: ConnectorError.self) { try await running.task.value }
        #expect(error.code == .undeliverableRow)
        #expect(error.message.contains("00000000-0000-0000-0000-0000000000bd"))
        #expect(error.message.contains("deadLetterTopic"))
        let confirmed = try #require(try await fixture.slotState()?.confirmedFlushLSN)
        let badCommit = try #require(try await fixture.witness(slot: witnessSlot)["00000000-0000-0000-0000-0000000000bd"])
        #expect(confirmed < badCommit, "nothing from the bad row's transaction on was confirmed")
        try await fixture.db.query("SELECT pg_drop_replication_slot($1)", [witnessSlot])
    }

    @Test func aSlotDroppedAfterUseStopsTheConnectorInsteadOfBeingRecreated() async throws {
        let fixture = try await OutboxFixture.make()
        defer { fixture.close() }
        let configuration = try fixture.configuration()
        let first = fixture.connector(configuration)
        let running = Task { try await first.run() }
        #expect(await eventually { first.metrics.isStreaming })
        first.requestStop()
        try await running.value
        #expect(try await eventually { try await fixture.slotState()?.isActive == false }, "the walsender has gone")
        try await fixture.db.query("SELECT pg_drop_replication_slot($1)", [fixture.slot])

        let second = fixture.connector(configuration)
        let error = try await #require(throws: ConnectorError.self) { try await second.run() }
        #expect(error.code == .slotLost)
        #expect(error.message.contains("will not re-create it silently"))
        #expect(try await fixture.slotState() == nil, "the slot was not re-created")
    }

    /// A fresh container: the connector streamed, stopped, its slot was dropped, and it starts again with an EMPTY
    /// state directory. The slot record in the source database still says the slot was used: it refuses, with the
    /// instructions, instead of creating a new slot that would skip the events written meanwhile.
    @Test func aSlotDroppedAfterUseIsRefusedEvenOnAnEmptyStateDirectory() async throws {
        let fixture = try await OutboxFixture.make(partitions: 2)
        defer { fixture.close() }
        let configuration = try fixture.configuration()
        let first = fixture.connector(configuration)
        let running = Task { try await first.run() }
        #expect(await eventually { first.metrics.isStreaming })
        try await fixture.load(transactions: 0..<1)
        #expect(await eventually { first.metrics.deliveredTotal == 10 })
        first.requestStop()
        try await running.value
        #expect(try await eventually { try await fixture.slotState()?.isActive == false }, "the walsender has gone")
        try await fixture.db.query("SELECT pg_drop_replication_slot($1)", [fixture.slot])
        try await fixture.load(transactions: 1..<2)

        let emptyDirectory = NSTemporaryDirectory() + "tailgate-empty-state-\(fixture.database)"
        defer { try? FileManager.default.removeItem(atPath: emptyDirectory) }
        let log = LogLines()
        let fresh = Connector(configuration: configuration, options: Connector.Options(stateDirectory: emptyDirectory),
                              logger: EventLogger(minimumLevel: .debug, write: { log.append($0) }))
        let second = Task {
            defer { log.append("test: run() returned") }
            try await fresh.run()
        }
        _ = await eventually(timeout: .seconds(30)) { log.contains("test: run() returned") || fresh.metrics.isStreaming }
        if !log.contains("test: run() returned") {
            fresh.requestStop()
            _ = try? await second.value
            Issue.record("the connector streamed on a new slot: \(log.all.filter { $0.contains("slot") })")
            return
        }
        let error = try await #require(throws: ConnectorError.self) { try await second.value }
        #expect(error.code == .slotLost)
        #expect(error.message.contains("will not re-create it silently") && error.message.contains("tailgate backfill"), "\(error.message)")
        #expect(!log.contains("event=slot_created"))
        #expect(try await fixture.slotState() == nil, "the slot was not re-created")
    }

    @Test func setupProblemsAreReportedTogetherBeforeStreaming() async throws {
        let fixture = try await OutboxFixture.make()
        defer { fixture.close() }
        try await fixture.db.execute("CREATE TABLE no_key (id uuid, topic text, aggregate_id text, payload jsonb)")
        let connector = fixture.connector(try fixture.configuration {
            var outbox = $0["outbox"] as! [String: Any]
            outbox["table"] = "public.no_key"
            $0["outbox"] = outbox
        })
        let error = try await #require(throws: ConnectorError.self) { try await connector.run() }
        #expect(error.code == .setup)
        #expect(error.message.contains("no column(s) event_type, aggregate_type"))
        #expect(error.message.contains("has no primary key"))

        let missing = fixture.connector(try fixture.configuration {
            var outbox = $0["outbox"] as! [String: Any]
            outbox["table"] = "public.nowhere"
            $0["outbox"] = outbox
        })
        let notThere = try await #require(throws: ConnectorError.self) { try await missing.run() }
        #expect(notThere.message.contains("does not exist"))
    }
}

@Suite struct BackfillTests {
    @Test func backfillWithCreateSlotIsAnExactCutOverFromAPoller() async throws {
        let fixture = try await OutboxFixture.make()
        defer { fixture.close() }
        // Rows the old poller left behind, written before any slot existed.
        try await fixture.load(transactions: 0..<30)
        let configuration = try fixture.configuration()
        let backfilled = try await Backfill(configuration: configuration, createSlot: true, stateDirectory: fixture.stateDirectory,
                                            logger: EventLogger(minimumLevel: .error)).run()
        #expect(backfilled == 300)
        // Rows written after the cut-over point, before the connector starts.
        try await fixture.load(transactions: 30..<40)
        let connector = fixture.connector(configuration)
        let running = Task { try await connector.run() }
        try await fixture.load(transactions: 40..<50)
        let ids = Set(try await fixture.db.query("SELECT id::text FROM outbox_event").rows.compactMap { $0[0] })
        #expect(ids.count == 500)
        let records = try await fixture.readBack(["order-events", "catalog-events"]) { records in
            ids.isSubset(of: Set(records.compactMap { $0.headerText("event_id") }))
        }
        #expect(Set(records.compactMap { $0.headerText("event_id") }) == ids, "every row, backfilled or streamed")
        #expect(records.count == 500, "exact cut-over: no row both backfilled and streamed")
        #expect(records.filter { $0.headerText("tailgate_lsn") == "0/0" }.count == 300)
        connector.requestStop()
        try await running.value
    }

    @Test func backfillWithAConditionRepublishesOnlyThoseRowsWithTheirOwnEventIDs() async throws {
        let fixture = try await OutboxFixture.make()
        defer { fixture.close() }
        try await fixture.load(transactions: 0..<10)
        let wanted = Set(try await fixture.db.query("SELECT id::text FROM outbox_event WHERE aggregate_id = 'key-7'").rows.compactMap { $0[0] })
        let count = try await Backfill(configuration: try fixture.configuration(), condition: "aggregate_id = 'key-7'",
                                       stateDirectory: fixture.stateDirectory, logger: EventLogger(minimumLevel: .error)).run()
        #expect(count == wanted.count && count > 0)
        let records = try await fixture.readBack(["order-events", "catalog-events"], expected: count)
        #expect(Set(records.compactMap { $0.headerText("event_id") }) == wanted)
    }
}

@Suite struct ConnectorRecoveryTests {
    @Test func aTerminatedWalsenderIsReconnectedAndNothingIsLost() async throws {
        let fixture = try await OutboxFixture.make()
        defer { fixture.close() }
        let log = LogLines()
        let running = try await fixture.start(try fixture.configuration(), log: log)
        let connector = running.connector
        try await fixture.load(transactions: 0..<20)
        try await fixture.db.query("""
            SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1
            """, [fixture.slot])
        try await fixture.load(transactions: 20..<40)
        let ids = Set(try await fixture.db.query("SELECT id::text FROM outbox_event").rows.compactMap { $0[0] })
        let records = try await fixture.readBack(["order-events", "catalog-events"]) { records in
            ids.isSubset(of: Set(records.compactMap { $0.headerText("event_id") }))
        }
        #expect(ids.isSubset(of: Set(records.compactMap { $0.headerText("event_id") })))
        #expect(log.contains("event=postgres_unavailable"))
        #expect(await eventually { connector.metrics.render().contains("tailgate_reconnects_total{connector=\"test-\(fixture.database)\"} 1") })
        try await running.stop()
    }

    @Test func everyReconnectAfterAStreamingSessionStartsFromTheShortestWait() async throws {
        // The backoff grows over consecutive failed attempts, not over the connector's lifetime: a walsender
        // terminated four times, each after the stream was back, is retried after 0.25 s every time.
        let fixture = try await OutboxFixture.make()
        defer { fixture.close() }
        let log = LogLines()
        let running = try await fixture.start(try fixture.configuration(), log: log)
        for round in 1...4 {
            try await fixture.db.query("""
                SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active
                """, [fixture.slot])
            #expect(await eventually { log.all.filter { $0.contains("event=streaming") }.count == round + 1 }, "round \(round)")
        }
        let waits = log.all.filter { $0.contains("event=postgres_unavailable") || $0.contains("event=slot_in_use") }
            .compactMap { line in line.range(of: "retry_in=\"").map { line[$0.upperBound...].prefix { $0 != "\"" } } }
        #expect(!waits.isEmpty && waits.allSatisfy { $0 == "0.25 seconds" }, "\(waits)")
        try await running.stop()
    }

    @Test func aSecondConnectorOnTheSameSlotWaitsAndTakesOverWhenTheFirstStops() async throws {
        let fixture = try await OutboxFixture.make()
        defer { fixture.close() }
        let configuration = try fixture.configuration()
        let active = fixture.connector(configuration)
        let runningActive = Task { try await active.run() }
        #expect(await eventually { active.metrics.isStreaming })
        let standbyLog = LogLines()
        let standby = fixture.connector(configuration, log: standbyLog)
        let runningStandby = Task { try await standby.run() }
        #expect(await eventually { standbyLog.contains("event=slot_in_use") }, "the standby says it waits")
        try await fixture.load(transactions: 0..<10)
        #expect(await eventually { active.metrics.deliveredTotal == 100 })
        #expect(standby.metrics.deliveredTotal == 0, "the standby publishes nothing while the slot is held")
        active.requestStop()
        try await runningActive.value
        #expect(await eventually(timeout: .seconds(30)) { standby.metrics.isStreaming }, "the standby takes over")
        try await fixture.load(transactions: 10..<20)
        #expect(await eventually { standby.metrics.deliveredTotal == 100 }, "only the new events: the slot resumes after the first's")
        standby.requestStop()
        try await runningStandby.value
        let records = try await fixture.readBack(["order-events", "catalog-events"], expected: 200)
        #expect(records.count == 200 && Set(records.compactMap { $0.headerText("event_id") }).count == 200)
    }

    @Test func aPostgresRestartIsWaitedOutAndNothingIsLost() async throws {
        // Durable commits on this cluster, so the crash-restart loses no committed row either.
        let postgres = try await TestPostgres.start(settings: ["synchronous_commit = on"])
        let fixture = try await OutboxFixture.make(postgres: postgres)
        defer { fixture.close() }
        let running = try await fixture.start(try fixture.configuration())
        try await fixture.load(transactions: 0..<20)
        try await postgres.restart(mode: .immediate)
        let db = try await Connection.connect(postgres.conninfo(database: fixture.database))
        for transaction in 20..<40 {
            try await db.execute("""
                INSERT INTO outbox_event (topic, aggregate_type, aggregate_id, event_type, payload)
                VALUES ('order-events', 'product', 'key-' || $1::int, 'AfterRestart', jsonb_build_object('seq', $1::int))
                """, [transaction])
        }
        let ids = Set(try await db.query("SELECT id::text FROM outbox_event").rows.compactMap { $0[0] })
        #expect(ids.count == 220)
        let records = try await fixture.readBack(["order-events", "catalog-events"], timeout: .seconds(90)) { records in
            ids.isSubset(of: Set(records.compactMap { $0.headerText("event_id") }))
        }
        #expect(ids.isSubset(of: Set(records.compactMap { $0.headerText("event_id") })), "nothing lost across the restart")
        try await running.stop()
        try await postgres.stop(mode: .immediate)
    }

    @Test func postgresUnreachableAtStartIsWaitedOutLikeLater() async throws {
        // Started while its database is down (a deploy racing the database, a failover in progress): the connector
        // waits with backoff, says so, and streams once PostgreSQL is back. It used to end run() at once.
        let postgres = try await TestPostgres.start()
        let fixture = try await OutboxFixture.make(postgres: postgres)
        defer { fixture.close() }
        let configuration = try fixture.configuration()
        try await postgres.stop(mode: .fast)
        let log = LogLines()
        let connector = fixture.connector(configuration, log: log)
        let running = Task { try await connector.run() }
        #expect(await eventually { log.all.filter { $0.contains("event=postgres_unavailable") && $0.contains("during=start") }.count >= 2 },
                "waits and retries: \(log.all.suffix(5))")
        let port = try #require(await eventually { connector.metricsPort != nil } ? connector.metricsPort : nil)
        #expect(await httpGet(port: port, path: "/healthz")?.status.contains("503") == true, "/healthz says it is not streaming")
        try await postgres.startAgain()
        #expect(await eventually(timeout: .seconds(60)) { connector.metrics.isStreaming }, "streams once PostgreSQL is back: \(log.all.suffix(5))")
        let db = try await Connection.connect(postgres.conninfo(database: fixture.database))
        try await db.execute("INSERT INTO outbox_event (topic, aggregate_id, event_type, payload) VALUES ('order-events', 'k', 'E', '{}')")
        #expect(await eventually { connector.metrics.deliveredTotal == 1 })
        connector.requestStop()
        try await running.value
        try await postgres.stop(mode: .immediate)
    }

    @Test func aPartitionedOutboxIsPublishedThroughItsRoot() async throws {
        let fixture = try await OutboxFixture.make()
        defer { fixture.close() }
        try await fixture.db.execute("""
            CREATE TABLE outbox_p (id uuid NOT NULL DEFAULT gen_random_uuid(), topic text, aggregate_type text, aggregate_id text,
                event_type text NOT NULL, payload jsonb, created_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (id, created_at)) PARTITION BY RANGE (created_at)
            """)
        try await fixture.db.execute("CREATE TABLE outbox_p_old PARTITION OF outbox_p FOR VALUES FROM (MINVALUE) TO ('2020-01-01')")
        try await fixture.db.execute("CREATE TABLE outbox_p_new PARTITION OF outbox_p FOR VALUES FROM ('2020-01-01') TO (MAXVALUE)")
        let connector = fixture.connector(try fixture.configuration {
            var outbox = $0["outbox"] as! [String: Any]
            outbox["table"] = "public.outbox_p"
            $0["outbox"] = outbox
        })
        let running = Task { try await connector.run() }
        #expect(await eventually { connector.metrics.isStreaming })
        try await fixture.db.execute("""
            INSERT INTO outbox_p (topic, aggregate_id, event_type, payload, created_at) VALUES
              ('order-events', 'a', 'Old', '{}', '2019-06-01'), ('order-events', 'b', 'New', '{}', now())
            """)
        let records = try await fixture.readBack(["order-events"], expected: 2)
        #expect(Set(records.compactMap { $0.headerText("event_type") }) == ["Old", "New"])
        connector.requestStop()
        try await running.value
    }
}

@Suite struct SlotLifecycleTests {
    @Test func anInvalidatedSlotStopsTheConnectorWithInstructions() async throws {
        let postgres = try await TestPostgres.start(settings: ["max_slot_wal_keep_size = 1MB", "max_wal_size = 64MB"])
        let fixture = try await OutboxFixture.make(postgres: postgres)
        defer { fixture.close() }
        let configuration = try fixture.configuration()
        let first = fixture.connector(configuration)
        let running = Task { try await first.run() }
        #expect(await eventually { first.metrics.isStreaming })
        // The slot watcher, beside the stream, exports the slot's state.
        #expect(await eventually { first.metrics.render().contains("tailgate_slot_wal_status{connector=\"test-\(fixture.database)\",wal_status=\"reserved\"} 1") })
        first.requestStop()
        try await running.value
        // With the connector away, WAL beyond max_slot_wal_keep_size invalidates the slot at a checkpoint.
        let lost = try await eventually(timeout: .seconds(60), every: .milliseconds(10)) {
            try await fixture.db.execute("INSERT INTO outbox_event (topic, aggregate_id, event_type, payload) VALUES ('order-events', 'k', 'E', '{}')")
            try await fixture.db.query("SELECT pg_switch_wal()")
            try await fixture.db.query("CHECKPOINT")
            return try await fixture.slotState()?.walStatus == "lost"
        }
        #expect(lost)
        let second = fixture.connector(configuration)
        let error = try await #require(throws: ConnectorError.self) { try await second.run() }
        #expect(error.code == .slotLost)
        #expect(error.message.contains("wal_status = lost") && error.message.contains("tailgate backfill"))
    }
}

@Suite struct HeartbeatAndLoggingTests {
    @Test func aQuietOutboxStillAdvancesTheSlotThroughHeartbeats() async throws {
        let fixture = try await OutboxFixture.make()
        defer { fixture.close() }
        let running = try await fixture.start(try fixture.configuration())
        let connector = running.connector
        let before = try #require(LSN(try await fixture.db.query("SELECT pg_current_wal_insert_lsn()::text AS l").first?["l"] ?? ""))
        #expect(await eventually { connector.metrics.render().contains("tailgate_heartbeats_total{connector=\"test-\(fixture.database)\"} 2") })
        #expect(try await eventually { try await fixture.slotState()?.confirmedFlushLSN ?? .invalid > before },
                "the heartbeat's WAL is confirmed while the outbox is quiet")
        try await running.stop()
    }
}

@Suite struct ConnectorStopTests {
    @Test func aMappedColumnDroppedMidStreamStopsTheConnectorNamingIt() async throws {
        let fixture = try await OutboxFixture.make()
        defer { fixture.close() }
        let running = try await fixture.start(try fixture.configuration())
        let connector = running.connector
        try await fixture.load(transactions: 0..<1)
        #expect(await eventually { connector.metrics.deliveredTotal == 10 })
        try await fixture.db.execute("ALTER TABLE outbox_event DROP COLUMN aggregate_type")
        try await fixture.db.execute("INSERT INTO outbox_event (topic, aggregate_id, event_type, payload) VALUES ('order-events', 'k', 'E', '{}')")
        let error = try await #require(throws: ConnectorError.self) { try await running.task.value }
        #expect(error.code == .schemaChanged)
        #expect(error.message.contains("aggregate_type"))
        #expect(connector.metrics.deliveredTotal == 10, "no half-mapped record was published")
    }

    @Test(.enabled(if: TestKafka.mockControlsUnavailableReason == nil, Comment(rawValue: TestKafka.mockControlsUnavailableReason ?? "")))
    func aFatalProducerErrorRestartsThePipelineFromTheSlotAndLosesNothing() async throws {
        let fixture = try await OutboxFixture.make()
        defer { fixture.close() }
        let log = LogLines()
        let running = try await fixture.start(try fixture.configuration(), log: log)
        let connector = running.connector
        try await fixture.load(transactions: 0..<1)
        #expect(await eventually { connector.metrics.deliveredTotal == 10 })
        // TOPIC_AUTHORIZATION_FAILED on the next Produce requests: with the gap-less guarantee the producer raises
        // a fatal error, so the connector must discard it and resume from the slot.
        try fixture.kafka.pushRequestErrors(apiKey: 0, errors: Array(repeating: 29, count: 3))
        try await fixture.load(transactions: 1..<20)
        let ids = Set(try await fixture.db.query("SELECT id::text FROM outbox_event").rows.compactMap { $0[0] })
        let records = try await fixture.readBack(["order-events", "catalog-events"], timeout: .seconds(90)) { records in
            ids.isSubset(of: Set(records.compactMap { $0.headerText("event_id") }))
        }
        #expect(ids.isSubset(of: Set(records.compactMap { $0.headerText("event_id") })), "nothing lost across the producer restart")
        #expect(log.contains("event=kafka_fatal"))
        #expect(log.all.contains { $0.lowercased().contains("authorization failed") }, "the cause is logged")
        try await running.stop()
    }

    @Test(.enabled(if: TestKafka.mockControlsUnavailableReason == nil, Comment(rawValue: TestKafka.mockControlsUnavailableReason ?? "")))
    func shutdownPastItsDeadlinePurgesExitsNonZeroAndConfirmsNothingMore() async throws {
        let fixture = try await OutboxFixture.make()
        defer { fixture.close() }
        let port = try TestPostgres.freePort()
        let process = try ConnectorProcess(fixture: fixture, json: fixture.json(metricsPort: port), metricsPort: port,
                                           extraArguments: ["--shutdown-timeout", "2"])
        #expect(await eventually { await process.isStreaming }, "\(process.child.output)")
        for broker: Int32 in 1...3 { try fixture.kafka.takeBrokerDown(broker) }
        let witnessSlot = "w_\(fixture.database)"
        try await fixture.db.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [witnessSlot])
        try await fixture.load(transactions: 0..<5)
        #expect(await eventually { await process.inFlight == 50 }, "the records are in flight, waiting for Kafka")
        process.child.signal(SIGTERM)
        #expect(await process.child.exitStatus() == 1)
        #expect(process.child.output.contains("shutdown timeout"))
        let confirmed = try #require(try await fixture.slotState()?.confirmedFlushLSN)
        let commits = try await fixture.witness(slot: witnessSlot)
        #expect(commits.count == 50)
        #expect(commits.values.allSatisfy { confirmed < $0 }, "no unacknowledged event was confirmed")
        try await fixture.db.query("SELECT pg_drop_replication_slot($1)", [witnessSlot])
    }

    @Test(.enabled(if: TestKafka.mockControlsUnavailableReason == nil, Comment(rawValue: TestKafka.mockControlsUnavailableReason ?? "")))
    func aStopWhileBackPressureWaitsOnAnUnreachableKafkaEndsWithinTheShutdownTimeout() async throws {
        // The in-flight limit is reached and Kafka is gone: the reading task waits for room. A stop must wake that
        // wait (it once slept in 1 ms steps without looking at the stop request, and never returned).
        let fixture = try await OutboxFixture.make()
        defer { fixture.close() }
        let port = try TestPostgres.freePort()
        let process = try ConnectorProcess(fixture: fixture, json: fixture.json(metricsPort: port, extra: #", "maxInFlightRecords": 10"#),
                                           metricsPort: port, extraArguments: ["--shutdown-timeout", "3", "--kafka-timeout", "2"])
        #expect(await eventually { await process.isStreaming }, "\(process.child.output)")
        for broker: Int32 in 1...3 { try fixture.kafka.takeBrokerDown(broker) }
        let witnessSlot = "w_\(fixture.database)"
        try await fixture.db.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [witnessSlot])
        try await fixture.load(transactions: 0..<5)
        #expect(await eventually { await process.inFlight == 10 }, "ten records in flight; the rest wait for room")
        #expect(await eventually { await httpGet(port: port, path: "/healthz")?.status.contains("503") == true },
                "/healthz turns 503 once Kafka has left records unacknowledged past --kafka-timeout")
        let metrics = await httpGet(port: port, path: "/metrics")?.body ?? ""
        #expect(metrics.contains("tailgate_streaming{connector=\"proc-\(fixture.database)\"} 1"), "still streaming: Kafka is the problem")
        #expect(await eventually { process.child.output.contains("event=kafka_stalled") }, "the stall is logged when /healthz turns 503")
        let stopped = ContinuousClock.now
        process.child.signal(SIGTERM)
        #expect(await process.child.exitStatus() == 1)
        let stopTook = ContinuousClock.now - stopped
        #expect(stopTook < .seconds(25), "the stop took \(stopTook); the shutdown timeout is 3 s (it never returned before)")
        #expect(process.child.output.contains("shutdown timeout"), "\(process.child.output)")
        #expect(process.child.output.contains("event=kafka_unreachable"), "the outage is logged as what it is")
        let confirmed = try #require(try await fixture.slotState()?.confirmedFlushLSN)
        let commits = try await fixture.witness(slot: witnessSlot)
        #expect(commits.count == 50)
        #expect(commits.values.allSatisfy { confirmed < $0 }, "no unacknowledged event was confirmed")
        try await fixture.db.query("SELECT pg_drop_replication_slot($1)", [witnessSlot])
    }

    @Test func aLeastPrivilegeRoleStreamsWithAnAdministratorsPublication() async throws {
        let fixture = try await OutboxFixture.make()
        defer { fixture.close() }
        let role = "tg_\(fixture.database)"
        try await fixture.db.execute("CREATE ROLE \(role) LOGIN REPLICATION")
        try await fixture.db.execute("GRANT SELECT ON outbox_event TO \(role)")
        try await fixture.db.execute("CREATE PUBLICATION \(fixture.publication) FOR TABLE outbox_event WITH (publish = 'insert')")
        let secret = "tailgate-secret-\(UInt32.random(in: 0...UInt32.max))"
        let log = LogLines()
        let connector = fixture.connector(try fixture.configuration {
            var postgres = $0["postgres"] as! [String: Any]
            postgres["conninfo"] = fixture.postgres.conninfo(database: fixture.database, user: role) + " password=\(secret)"
            postgres["createPublication"] = false
            $0["postgres"] = postgres
        }, log: log)
        let running = Task { try await connector.run() }
        #expect(await eventually { connector.metrics.isStreaming })
        try await fixture.load(transactions: 0..<3)
        #expect(await eventually { connector.metrics.deliveredTotal == 30 })
        #expect(await eventually { connector.metrics.render().contains("tailgate_heartbeats_total{connector=\"test-\(fixture.database)\"} 1") },
                "heartbeats work without superuser")
        connector.requestStop()
        try await running.value
        #expect(log.all.count > 3 && !log.all.contains { $0.contains(secret) }, "the password is in no log line")
        #expect(log.contains("password=***"))
        #expect(!connector.metrics.render().contains(secret))
        // The same role cannot write to the outbox or create things: the connector never needed to.
        let unprivileged = try await Connection.connect(fixture.postgres.conninfo(database: fixture.database, user: role))
        await #expect(throws: PostgresError.self) { try await unprivileged.execute("DELETE FROM outbox_event") }
    }
}
