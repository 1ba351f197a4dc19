import Foundation
import LibPQ
import OutboxConnector
import OutboxConsumer
import RDKafka
import TestSupport
import Testing

/// `tailgate status` against real clusters, one test per state it reports.
@Suite struct StatusCommandTests {
    /// Runs `tailgate status` on the fixture's connector file; returns its exit code and output.
    static func status(_ fixture: OutboxFixture, metricsPort: Int? = nil, _ arguments: [String] = []) async throws -> (code: Int32, output: String) {
        try FileManager.default.createDirectory(atPath: fixture.stateDirectory, withIntermediateDirectories: true)
        let configPath = fixture.stateDirectory + "/status-\(UUID().uuidString).json"
        try fixture.json(metricsPort: metricsPort ?? 9).write(toFile: configPath, atomically: true, encoding: .utf8)
        let outputPath = fixture.stateDirectory + "/status-\(UUID().uuidString).out"
        let metrics = metricsPort.map { "127.0.0.1:\($0)" } ?? "none"
        let child = try ChildProcess(ChildProcess.productsDirectory + "/tailgate",
                                     ["status", "--config", configPath, "--metrics", metrics] + arguments, outputPath: outputPath)
        let code = await child.exitStatus(timeout: .seconds(60))
        return (code, child.output)
    }

    /// The JSON report of a run with `--json`.
    static func report(_ output: String) throws -> StatusReport {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try decoder.decode(StatusReport.self, from: Data(output.utf8))
    }

    /// A consumer database and a running `OutboxConsumer` for the fixture's topics; `Poison` events fail.
    struct Service {
        let conninfo: String
        let consumer: OutboxConsumer
        let task: Task<Void, any Error>

        static func start(_ fixture: OutboxFixture, group: String,
                          poisonPolicy: ConsumerConfiguration.PoisonPolicy = .parkKey) async throws -> Service {
            let database = try await fixture.postgres.createDatabase(prefix: "status_svc")
            let conninfo = fixture.postgres.conninfo(database: database)
            try await fixture.kafka.createTopic("\(group).dead-letter", partitions: 1)
            let consumer = try OutboxConsumer(configuration: ConsumerConfiguration(
                groupID: group, topics: ["order-events", "catalog-events"],
                kafka: ["bootstrap.servers": fixture.kafka.bootstrapServers, "fetch.wait.max.ms": "50"],
                postgres: conninfo, handlerAttempts: 1, retryBackoff: .milliseconds(10), poisonPolicy: poisonPolicy), log: { _ in })
            let task = Task {
                try await consumer.run { event, _ in
                    if event.type == "Poison" { throw PoisonError() }
                }
            }
            return Service(conninfo: conninfo, consumer: consumer, task: task)
        }

        func stop() async throws {
            consumer.stop()
            try await task.value
        }
    }

    struct PoisonError: Error {}

    @Test(.enabled(if: TestKafka.listOffsetsUnavailableReason == nil, Comment(rawValue: TestKafka.listOffsetsUnavailableReason ?? "")))
    func aHealthyPipelineExitsZeroAndReportsEveryPart() async throws {
        let fixture = try await OutboxFixture.make()
        defer { fixture.close() }
        let running = try await fixture.start(try fixture.configuration())
        let service = try await Service.start(fixture, group: "status-healthy")
        try await fixture.load(transactions: 0..<2)
        #expect(await eventually(timeout: .seconds(60)) { service.consumer.metrics.snapshot.applied == 20 })
        // Quiet now: a heartbeat follows within about a second, then the slot has confirmed everything.
        #expect(await eventually { running.metrics.render().contains("tailgate_last_heartbeat_timestamp_seconds{") })
        let port = try #require(running.connector.metricsPort)

        let (code, output) = try await Self.status(fixture, metricsPort: port, ["--consumer-postgres", service.conninfo, "--json",
                                                                                 "--consumer-topics", "order-events,catalog-events"])
        #expect(code == 0, "\(output)")
        let report = try Self.report(output)
        #expect(report.findings.isEmpty, "\(report.findings)")
        let slot = try #require(report.slot)
        let walsender = try await fixture.db.query("SELECT active_pid::text AS pid FROM pg_replication_slots WHERE slot_name = $1", [fixture.slot]).first?["pid"]
        #expect(slot.active && slot.activePID.map(String.init) == walsender)
        #expect(slot.walStatus == "reserved" && slot.invalidationReason == nil)
        #expect(slot.publication.exists && slot.publication.coversTable && slot.publication.publishesInserts)
        #expect((slot.retainedWALBytes ?? -1) >= 0 && (slot.lagBytes ?? -1) >= 0)
        #expect(slot.lagSource == "flush_lag")
        #expect(slot.failover.supported == (slot.serverVersion >= 170_000))
        #expect(report.connectorProbe?.streaming == true && report.connectorProbe?.lastHeartbeat != nil)
        let group = try #require(report.consumerGroups.first { $0.group == "status-healthy" })
        #expect(group.partitions.count == 12, "6 partitions of each topic, stored or not")
        #expect(group.totalLag == 0 && group.deadLettered == 0)
        #expect(group.partitions.reduce(0) { $0 + ($1.endOffset ?? 0) } == 20)

        // The readable form says the same; a consumer database that cannot be reached makes it exit 1.
        let table = try await Self.status(fixture, metricsPort: port, ["--consumer-postgres", service.conninfo,
                                                                          "--consumer-postgres", "host=/nonexistent dbname=nothing password=hunter2"])
        #expect(table.code == 1, "\(table.output)")
        #expect(table.output.contains("slot \(fixture.slot)") && table.output.contains("consumer group status-healthy"))
        #expect(table.output.contains("consumer_database_unreachable") && !table.output.contains("hunter2"))
        try await service.stop()
        try await running.stop()
    }

    @Test(.enabled(if: TestKafka.mockControlsUnavailableReason == nil, Comment(rawValue: TestKafka.mockControlsUnavailableReason ?? "")))
    func aConnectorStuckOnKafkaIsLagging() async throws {
        let fixture = try await OutboxFixture.make()
        defer { fixture.close() }
        let running = try await fixture.start(try fixture.configuration())
        for broker in 1...3 { try fixture.kafka.takeBrokerDown(Int32(broker)) }
        try await fixture.load(transactions: 0..<10)
        #expect(await eventually { running.metrics.render().contains("tailgate_in_flight_records{connector=\"test-\(fixture.database)\"} 100") })

        let (code, output) = try await Self.status(fixture, ["--max-lag-bytes", "4096", "--json"])
        #expect(code == 2, "\(output)")
        let report = try Self.report(output)
        #expect(report.findings.map(\.code) == ["replication_lag_bytes"], "\(report.findings)")
        #expect(report.slot?.active == true && (report.slot?.lagBytes ?? 0) > 4096)

        for broker in 1...3 { try fixture.kafka.bringBrokerUp(Int32(broker)) }
        #expect(await eventually(timeout: .seconds(60)) { running.metrics.deliveredTotal == 100 })
        let after = try await Self.status(fixture)
        #expect(after.code == 0, "once Kafka is back the connector confirms everything: \(after.output)")
        try await running.stop()
    }

    @Test func anInactiveSlotReportsTheAgeOfItsOldestUnconfirmedCommit() async throws {
        let fixture = try await OutboxFixture.make()
        defer { fixture.close() }
        let running = try await fixture.start(try fixture.configuration())
        try await running.stop()

        let idle = try Self.report(try await Self.status(fixture, ["--json"]).output)
        #expect(idle.findings.map(\.code) == ["slot_inactive"])
        #expect(idle.slot?.active == false && idle.slot?.activePID == nil)
        #expect(idle.slot?.lagSource == "oldest_unconfirmed_commit" && idle.slot?.lagSeconds == 0, "nothing to deliver yet")

        try await fixture.load(transactions: 0..<1)
        let committed = Date()
        try await Task.sleep(for: .milliseconds(1500))
        let (code, output) = try await Self.status(fixture, ["--json", "--max-lag-seconds", "1"])
        #expect(code == 2, "\(output)")
        let report = try Self.report(output)
        #expect(Set(report.findings.map(\.code)) == ["slot_inactive", "replication_lag_seconds"], "\(report.findings)")
        let lag = try #require(report.slot?.lagSeconds)
        #expect(lag >= 1.4 && lag <= Date().timeIntervalSince(committed) + 1, "\(lag)")
        #expect((report.slot?.lagBytes ?? 0) > 0)
        // Peeking consumed nothing: a connector started now still delivers the rows.
        let again = try await fixture.start(try fixture.configuration())
        #expect(await eventually { again.metrics.deliveredTotal == 10 })
        try await again.stop()
    }

    @Test func anInvalidatedSlotIsCritical() async throws {
        let cluster = try await TestPostgres.start(settings: ["max_slot_wal_keep_size = 1MB"])
        let fixture = try await OutboxFixture.make(postgres: cluster)
        defer { fixture.close() }
        let running = try await fixture.start(try fixture.configuration())
        try await running.stop()
        for _ in 0..<4 {
            try await fixture.load(transactions: 0..<20, rowsPerTransaction: 50)
            try await fixture.db.execute("SELECT pg_switch_wal()")
        }
        try await fixture.db.execute("CHECKPOINT")

        let (code, output) = try await Self.status(fixture)
        #expect(code == 3, "\(output)")
        #expect(output.contains("wal_status     lost"))
        #expect(output.contains("critical slot_invalidated"))
        #expect(!output.contains("slot_inactive"), "an invalidated slot is not also reported as merely inactive")
        let slot = try #require(try Self.report(try await Self.status(fixture, ["--json"]).output).slot)
        #expect(slot.walStatus == "lost")
        // PostgreSQL 17 says why; 15 and 16 only say lost.
        #expect(slot.invalidationReason == (slot.serverVersion >= 170_000 ? "wal_removed" : nil))
        try await cluster.stop()
    }

    @Test func failoverReadinessIsReadFromTheSlotAndTheStandby() async throws {
        let fixture = try await OutboxFixture.make()
        defer { fixture.close() }
        let version = try await fixture.db.query("SELECT current_setting('server_version_num')::int::text AS v").first?.int("v") ?? 0
        if version >= 170_000 {
            try await fixture.db.execute("SELECT pg_create_logical_replication_slot($1, 'pgoutput', false, false, true)", [fixture.slot])
        } else {
            try await fixture.db.execute("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [fixture.slot])
        }
        try await fixture.db.execute("CREATE PUBLICATION \(fixture.publication) FOR TABLE outbox_event WITH (publish = 'insert')")
        // The primary given as the "standby": not in recovery, which the check must notice.
        let report = try Self.report(try await Self.status(fixture, ["--standby", fixture.postgres.conninfo(database: fixture.database), "--json"]).output)
        let failover = try #require(report.slot?.failover)
        #expect(failover.supported == (version >= 170_000))
        let codes = Set(report.findings.map(\.code))
        #expect(failover.standbyChecked)
        if version >= 170_000 {
            #expect(failover.enabled == true)
            #expect(failover.problems.contains { $0.contains("synchronized_standby_slots is empty") }, "\(failover.problems)")
            #expect(failover.problems.contains { $0.contains("is not a standby") }, "\(failover.problems)")
            #expect(codes == ["slot_inactive", "failover_not_ready"], "\(report.findings)")
        } else {
            #expect(failover.enabled == nil)
            #expect(codes == ["slot_inactive", "failover_unsupported"], "\(report.findings)")
        }
    }

    @Test(.enabled(if: TestPostgres.isAtLeast(17), Comment(rawValue: TestPostgres.skipReason(needs: 17, "failover slots"))))
    func aSynchronizedStandbyMakesFailoverReady() async throws {
        let primary = try await TestPostgres.start(settings: ["wal_sender_timeout = 10s"])
        let fixture = try await OutboxFixture.make(postgres: primary)
        defer { fixture.close() }
        let standby = try await TestPostgres.startStandby(of: primary, slot: "standby1", database: fixture.database,
                                                          settings: ["sync_replication_slots = on"])
        try await fixture.db.execute("ALTER SYSTEM SET synchronized_standby_slots = 'standby1'")
        try await fixture.db.query("SELECT pg_reload_conf()")
        let running = try await fixture.start(try fixture.configuration())
        try await fixture.load(transactions: 0..<5)
        #expect(await eventually { running.metrics.deliveredTotal == 50 })
        let port = try #require(running.connector.metricsPort)
        let arguments = ["--standby", standby.conninfo(database: fixture.database), "--json"]

        // Until the standby's sync worker has made a permanent copy, a failover would lose the slot; then it would not.
        var last = try Self.report(try await Self.status(fixture, metricsPort: port, arguments).output)
        let ready = try await eventually(timeout: .seconds(90), every: .milliseconds(500)) {
            last = try Self.report(try await Self.status(fixture, metricsPort: port, arguments).output)
            return last.findings.isEmpty
        }
        #expect(ready, "\(last.findings) \(standby.serverLogTail(5))")
        #expect(last.slot?.failover.enabled == true && last.slot?.failover.synchronizedStandbySlots == "standby1")
        #expect(last.slot?.failover.ready.contains { $0.contains("the slot \(fixture.slot) is synchronized") } == true)
        try await running.stop()
        try await standby.stop(mode: .immediate)
        try await primary.stop(mode: .immediate)
    }

    @Test func aParkedKeyNeedsAttention() async throws {
        let fixture = try await OutboxFixture.make()
        defer { fixture.close() }
        let running = try await fixture.start(try fixture.configuration())
        let service = try await Service.start(fixture, group: "status-parked")
        // order-3's first event fails; its second waits behind it; every other key flows.
        try await fixture.db.execute("""
            INSERT INTO outbox_event (topic, aggregate_id, event_type, payload)
            SELECT 'order-events', 'order-' || g, CASE WHEN g = 3 THEN 'Poison' ELSE 'Paid' END, '{}' FROM generate_series(1, 10) g
            """)
        try await fixture.db.execute("INSERT INTO outbox_event (topic, aggregate_id, event_type, payload) VALUES ('order-events', 'order-3', 'Paid', '{}')")
        #expect(await eventually(timeout: .seconds(60)) {
            let s = service.consumer.metrics.snapshot
            return s.applied == 9 && s.parked == 2
        }, "\(service.consumer.metrics.snapshot)")

        let (code, output) = try await Self.status(fixture, ["--consumer-postgres", service.conninfo, "--json"])
        #expect(code == 2, "\(output)")
        let report = try Self.report(output)
        let group = try #require(report.consumerGroups.first { $0.group == "status-parked" })
        #expect(group.parked == 1 && group.deadLettered == 0 && group.totalLag == 0, "the parked events' offsets are stored: \(group)")
        #expect(report.findings.map(\.code).contains("parked_keys"), "\(report.findings)")
        let table = try await Self.status(fixture, ["--consumer-postgres", service.conninfo])
        #expect(table.output.contains("parked 1") && table.output.contains("attention parked_keys [group status-parked]: 1 key(s) parked"))
        try await service.stop()
        try await running.stop()
    }

    @Test(.enabled(if: TestKafka.listOffsetsUnavailableReason == nil, Comment(rawValue: TestKafka.listOffsetsUnavailableReason ?? "")))
    func aLaggingConsumerAndItsDeadLetters() async throws {
        let fixture = try await OutboxFixture.make()
        defer { fixture.close() }
        let running = try await fixture.start(try fixture.configuration())
        let service = try await Service.start(fixture, group: "status-lagging", poisonPolicy: .deadLetter)
        try await fixture.db.execute("""
            INSERT INTO outbox_event (topic, aggregate_id, event_type, payload)
            SELECT 'order-events', 'order-' || g, CASE WHEN g = 3 THEN 'Poison' ELSE 'Paid' END, '{}' FROM generate_series(1, 10) g
            """)
        #expect(await eventually(timeout: .seconds(60)) {
            let s = service.consumer.metrics.snapshot
            return s.applied == 9 && s.deadLettered == 1
        })
        try await service.stop()
        try await fixture.load(transactions: 0..<3)
        #expect(await eventually { running.metrics.deliveredTotal == 40 })

        let (code, output) = try await Self.status(fixture, ["--consumer-postgres", service.conninfo, "--consumer-topics", "order-events,catalog-events",
                                                           "--max-consumer-lag", "5", "--json"])
        #expect(code == 2, "\(output)")
        let report = try Self.report(output)
        let group = try #require(report.consumerGroups.first)
        #expect(group.group == "status-lagging" && group.totalLag == 30 && group.deadLettered == 1)
        #expect(group.partitions.count == 12, "catalog-events counts though the group never stored an offset for it")
        for partition in group.partitions {
            #expect(partition.lag == (partition.endOffset ?? 0) - (partition.storedOffset ?? 0))
        }
        #expect(Set(report.findings.map(\.code)).isSuperset(of: ["consumer_lag", "dead_letters"]), "\(report.findings)")
        #expect(report.findings.first { $0.code == "consumer_lag" }?.message.contains("30 records") == true)
        #expect(!report.findings.map(\.code).contains("consumer_stalled"), "the offsets moved seconds ago")
        // No offset has moved since the consumer stopped: with a one-second limit that is a stall.
        try await Task.sleep(for: .milliseconds(1200))
        let stalled = try await Self.status(fixture, ["--consumer-postgres", service.conninfo, "--max-stall-seconds", "1",
                                                             "--consumer-topics", "order-events,catalog-events"])
        #expect(stalled.code == 2 && stalled.output.contains("consumer_stalled [group status-lagging]: 30 records wait"), "\(stalled.output)")
        try await running.stop()
    }
}
