import Foundation
import LibPQ
import Observability
import OutboxConnector
import PGOutput
import TestSupport
import Testing

/// The connector decodes on a physical standby (PostgreSQL 16+): `postgres.conninfo` names the standby, its writes
/// (heartbeats, the publication) go to `postgres.primaryConninfo`. Rows written on the primary reach Kafka through
/// the standby, a kill loses nothing, heartbeats on the primary keep the standby's slot moving, and a promotion of
/// the standby keeps the same slot streaming.
@Suite(.enabled(if: TestPostgres.isAtLeast(16), Comment(rawValue: TestPostgres.skipReason(needs: 16, "logical decoding on a standby"))))
struct StandbyDecodingTests {
    /// The connector file decoding on `pair`'s standby, writing through `primaryConninfo` (both hosts, read-write
    /// first, as the README recommends), or without one.
    static func configuration(_ pair: FailoverTests.Pair, primaryConninfo: Bool = true) throws -> ConnectorConfiguration {
        try pair.fixture.configuration {
            var postgres = $0["postgres"] as! [String: Any]
            postgres["conninfo"] = pair.standby.conninfo(database: pair.fixture.database)
            if primaryConninfo { postgres["primaryConninfo"] = pair.conninfo(attributes: "read-write") }
            $0["postgres"] = postgres
        }
    }

    /// Starts a connector decoding on `pair`'s standby and waits until 20 events written on the primary are published.
    static func startPublishing(_ pair: FailoverTests.Pair, log: LogLines) async throws -> RunningConnector {
        let running = try await pair.fixture.start(try configuration(pair), log: log)
        try await pair.fixture.load(transactions: 0..<2)
        #expect(await eventually { running.metrics.deliveredTotal == 20 }, "events flow through the standby: \(log.all.suffix(5))")
        return running
    }

    /// `tailgate_heartbeats_total` from the connector's own metrics.
    static func heartbeats(_ connector: Connector) -> Int {
        connector.metrics.render().split(separator: "\n").first { $0.hasPrefix("tailgate_heartbeats_total{") }
            .flatMap { $0.split(separator: " ").last.flatMap { Int($0) } } ?? 0
    }

    /// While nothing else is written: waits for two more heartbeats, then for the slot on the standby to confirm
    /// the WAL position of `server` (where they were written) after them.
    static func heartbeatsMoveTheSlot(_ pair: FailoverTests.Pair, _ connector: Connector, writtenOn server: TestPostgres) async throws
        -> (heartbeats: Bool, advanced: Bool, target: LSN, confirmed: LSN) {
        let before = heartbeats(connector)
        let wrote = await eventually(timeout: .seconds(30), every: .milliseconds(100)) { heartbeats(connector) >= before + 2 }
        let target = try await currentLSN(server, database: pair.fixture.database)
        let advanced = try await eventually(timeout: .seconds(30), every: .milliseconds(200)) {
            (try await pair.standbySlot()?.confirmedFlushLSN ?? .invalid) >= target
        }
        return (wrote, advanced, target, try await pair.standbySlot()?.confirmedFlushLSN ?? .invalid)
    }

    /// The value of the sample of `name` in the connector's `/metrics` (scraped over HTTP), `nil` when it has none.
    static func scraped(_ name: String, _ connector: Connector) async -> Double? {
        guard let port = connector.metricsPort, let body = await httpGet(port: port, path: "/metrics")?.body else { return nil }
        return body.split(separator: "\n").first { $0.hasPrefix("\(name){") }
            .flatMap { $0.split(separator: " ").last.flatMap { Double($0) } }
    }

    /// Whether `/metrics` declares the family `name` (its `# TYPE` line).
    static func declares(_ name: String, _ connector: Connector) async -> Bool {
        guard let port = connector.metricsPort, let body = await httpGet(port: port, path: "/metrics")?.body else { return false }
        return body.contains("# TYPE \(name) gauge\n")
    }

    static func currentLSN(_ server: TestPostgres, database: String) async throws -> LSN {
        let connection = try await Connection.connect(server.conninfo(database: database))
        defer { Task { await connection.close() } }
        return try await connection.query("SELECT pg_current_wal_lsn()::text AS lsn").first?["lsn"].flatMap { LSN($0) } ?? .invalid
    }

    @Test func aStandbyWithoutPrimaryConninfoOrHotStandbyFeedbackIsRefusedWithTheFixNamed() async throws {
        let pair = try await FailoverTests.Pair.make(syncSlots: false, standbySettings: ["hot_standby_feedback = off"])
        defer { Task { await pair.stopAll() } }
        let withoutPrimary = pair.fixture.connector(try Self.configuration(pair, primaryConninfo: false))
        let missing = await withoutPrimary.validateDatabase()
        #expect(missing.contains { $0.contains("set $.postgres.primaryConninfo to the primary") && $0.contains("heartbeats") },
                "validate names the missing primaryConninfo and why: \(missing)")
        #expect(missing.contains { $0.contains("ALTER SYSTEM SET hot_standby_feedback = on") }, "\(missing)")

        let log = LogLines()
        let connector = pair.fixture.connector(try Self.configuration(pair), log: log)
        let problems = await connector.validateDatabase()
        #expect(problems.count == 1, "only hot_standby_feedback is missing: \(problems)")
        let failover = await connector.validateFailover(standby: nil)
        #expect(failover.problems.isEmpty && failover.ready.first?.contains("a promotion of that standby keeps it") == true,
                "failover slots are not asked for on a standby: \(failover)")
        #expect(problems.first?.contains("hot_standby_feedback = off") == true && problems.first?.contains("rows_removed") == true)
        let error = try await #require(throws: ConnectorError.self) { try await connector.run() }
        #expect(error.code == .setup)
        #expect(error.message.contains("ALTER SYSTEM SET hot_standby_feedback = on; SELECT pg_reload_conf();"), "\(error.message)")
        #expect(try await pair.standbySlot() == nil, "no slot was created on the refused standby")
    }

    @Test func aSlotInvalidatedOnTheStandbyStopsTheConnectorWithTheReasonAndIsNeverRecreated() async throws {
        let pair = try await FailoverTests.Pair.make(syncSlots: false)
        defer { Task { await pair.stopAll() } }
        let log = LogLines()
        let running = try await Self.startPublishing(pair, log: log)
        // wal_level lowered on the primary: replaying the parameter change invalidates the standby's logical slots.
        try await pair.fixture.db.execute("ALTER SYSTEM SET wal_level = replica")
        try await pair.primary.restart()
        let error = try await #require(throws: ConnectorError.self) { try await running.task.value }
        #expect(error.code == .slotLost, "\(error)")
        let reason = TestPostgres.isAtLeast(17) ? "invalidation_reason = wal_level_insufficient" : "conflicting = true"
        #expect(error.message.contains(reason), "\(error.message)")
        #expect(error.message.contains("wal_level was lowered below logical on the primary"), "\(error.message)")
        #expect(error.message.contains("pg_drop_replication_slot('\(pair.fixture.slot)')") && error.message.contains("tailgate backfill"))
        let slot = try await pair.standbySlot()
        #expect(slot?.isInvalidated == true, "the invalidated slot is left as it was, not re-created: \(String(describing: slot))")
        #expect(log.all.filter { $0.contains("event=slot_created ") }.count == 1)
    }

    @Test func rowsWrittenOnThePrimaryReachKafkaThroughTheStandbyAcrossAKill() async throws {
        let pair = try await FailoverTests.Pair.make(syncSlots: false)
        defer { Task { await pair.stopAll() } }
        let fixture = pair.fixture
        let port = try TestPostgres.freePort()
        let primaryConninfo = pair.conninfo(attributes: "read-write")
        let json = fixture.json(metricsPort: port).replacingOccurrences(
            of: "\"conninfo\": \"\(fixture.postgres.conninfo(database: fixture.database))\"",
            with: "\"conninfo\": \"\(pair.standby.conninfo(database: fixture.database))\", \"primaryConninfo\": \"\(primaryConninfo)\"")
        #expect(json.contains("primaryConninfo"))
        var process = try ConnectorProcess(fixture: fixture, json: json, metricsPort: port)
        #expect(await eventually(timeout: .seconds(90)) { await process.isStreaming }, "never streamed: \(process.child.output)")
        // From the slot's creation on, every row committed on the primary must be published.
        let load = OutboxLoad(db: fixture.db, interval: .milliseconds(50))
        #expect(process.child.output.contains("event=slot_creation_waiting"), "slot creation said what it waits for")
        // The primary's standby snapshots make the creation quick; without them it waits for the next checkpoint.
        let waited = process.child.outputLines.first { $0.contains("event=slot_created_on_standby") }?
            .components(separatedBy: "waited=\"").last?.split(separator: " ").first.flatMap { Double($0) }
        #expect((waited ?? .infinity) < 5, "the slot on the standby was created within 5 s (it took \(waited ?? -1) s)")
        print("standby decoding: slot created on the standby after \(waited ?? -1) s")
        #expect(await eventually { (await process.delivered ?? 0) >= 100 }, "events flow through the standby: \(process.child.output.suffix(600))")
        #expect(try await pair.standbySlot() != nil, "the slot is on the standby")
        #expect(try await pair.fixture.slotState() == nil, "and not on the primary")

        process.child.signal(SIGKILL)
        #expect(await process.child.exitStatus() == 128 + SIGKILL)
        let killed = ContinuousClock.now
        process = try ConnectorProcess(fixture: fixture, json: json, metricsPort: port)
        #expect(await eventually { await process.isStreaming }, "the restart streams again: \(process.child.output)")
        let streamingAgain = ContinuousClock.now - killed
        let deliveredAtRestart = await process.delivered ?? 0
        #expect(await eventually { (await process.delivered ?? 0) > deliveredAtRestart + 50 }, "events flow after the restart")
        await load.stop()
        #expect(load.errors.isEmpty, "\(load.errors.prefix(3))")

        let ids = Set(load.allIDs)
        let records = try await fixture.readBack(["order-events", "catalog-events"], timeout: .seconds(90)) { records in
            ids.isSubset(of: Set(records.compactMap { $0.headerText("event_id") }))
        }
        let published = Set(records.compactMap { $0.headerText("event_id") })
        let lost = ids.subtracting(published).count
        #expect(lost == 0, "\(lost) of \(ids.count) events written on the primary never reached Kafka")
        #expect(process.child.output.components(separatedBy: "event=slot_created ").count == 2, "the restart reused the slot")
        print("standby decoding, SIGKILL mid-load: \(ids.count) events, \(lost) lost, \(records.count - published.count) duplicates; streaming again \(streamingAgain) after the kill (restart included)")
        process.child.signal(SIGTERM)
        #expect(await process.child.exitStatus() == 0, "graceful stop: \(process.child.output.suffix(600))")
    }

    @Test func aQuietOutboxsSlotOnTheStandbyAdvancesThroughHeartbeatsOnThePrimary() async throws {
        let pair = try await FailoverTests.Pair.make(syncSlots: false)
        defer { Task { await pair.stopAll() } }
        let log = LogLines()
        let running = try await Self.startPublishing(pair, log: log)
        // Quiet from here: nothing is written but the connector's heartbeats (on the primary).
        let quiet = try await Self.heartbeatsMoveTheSlot(pair, running.connector, writtenOn: pair.primary)
        #expect(quiet.heartbeats, "heartbeats were written: \(log.all.suffix(5))")
        #expect(quiet.advanced, "the standby's slot moved past the heartbeats' WAL \(quiet.target) (it is at \(quiet.confirmed)): \(log.all.suffix(5))")
        #expect(!log.contains("event=heartbeat_failed"), "no heartbeat went to the read-only standby: \(log.all.filter { $0.contains("heartbeat_failed") }.prefix(2))")

        // `tailgate status` reads the slot on the standby and says so, with the standby's replay lag.
        let report = await StatusReport.gather(configuration: try Self.configuration(pair), targets: .init())
        #expect(report.slotError == nil, "\(report.slotError ?? "")")
        #expect(report.slot?.active == true && report.slot?.standby?.replayLagSeconds != nil, "\(String(describing: report.slot))")
        #expect(report.slot?.standby?.replayLagBytes != nil, "measured against primaryConninfo")
        #expect(report.table().contains("on standby     yes: replay lag"), "\(report.table())")
        print(report.table())

        // /metrics: the slot is on a standby, and its replay lag is there and sane (caught up while quiet).
        let connector = running.connector
        #expect(await Self.scraped("tailgate_slot_on_standby", connector) == 1)
        #expect(await eventually { await Self.scraped("tailgate_standby_replay_lag_bytes", connector) != nil },
                "the byte lag is exported (measured against primaryConninfo): \(log.all.suffix(5))")
        let quietSeconds = await Self.scraped("tailgate_standby_replay_lag_seconds", connector)
        let quietBytes = await Self.scraped("tailgate_standby_replay_lag_bytes", connector)
        #expect(quietSeconds.map { $0 >= 0 && $0 < 120 } == true, "a quiet standby (the last commit it replayed is from this test)'s lag in seconds: \(String(describing: quietSeconds))")
        #expect(quietBytes.map { $0 >= 0 && $0 < 16 * 1024 * 1024 } == true, "a quiet, caught-up standby's lag in bytes: \(String(describing: quietBytes))")
        // Replay paused on the standby while the primary writes: both gauges grow (the next slot check, <= 10 s).
        let standby = try await Connection.connect(pair.standby.conninfo(database: pair.fixture.database))
        defer { Task { await standby.close() } }
        try await standby.query("SELECT pg_wal_replay_pause()")
        try await Task.sleep(for: .seconds(2))
        try await pair.fixture.db.execute("CREATE TABLE replay_lag_filler AS SELECT g, repeat('x', 100) AS filler FROM generate_series(1, 20000) g")
        let behind = await eventually(timeout: .seconds(30), every: .milliseconds(500)) {
            let bytes = await Self.scraped("tailgate_standby_replay_lag_bytes", connector) ?? 0
            let seconds = await Self.scraped("tailgate_standby_replay_lag_seconds", connector) ?? 0
            return bytes > 1024 * 1024 && seconds >= 1
        }
        let pausedSeconds = await Self.scraped("tailgate_standby_replay_lag_seconds", connector)
        let pausedBytes = await Self.scraped("tailgate_standby_replay_lag_bytes", connector)
        #expect(behind, "with replay paused and 2 MB written on the primary, the gauges show the standby behind: seconds \(String(describing: pausedSeconds)), bytes \(String(describing: pausedBytes))")
        try await standby.query("SELECT pg_wal_replay_resume()")
        #expect(await eventually(timeout: .seconds(30), every: .milliseconds(500)) {
            (await Self.scraped("tailgate_standby_replay_lag_bytes", connector) ?? .infinity) < 1024 * 1024
        }, "replay resumed: the byte lag falls back")
        print("standby decoding, /metrics: replay lag quiet \(quietSeconds ?? -1) s / \(quietBytes ?? -1) B; replay paused \(pausedSeconds ?? -1) s / \(pausedBytes ?? -1) B")
        try await running.stop()
    }

    /// `tailgate backfill --create-slot` on a standby: the slot is created there (quickly, through the primary's
    /// standby snapshots) and the rows are read on the standby in its exported snapshot, so the cut-over is exact
    /// even for rows the primary commits while the slot is being created.
    @Test func backfillWithCreateSlotOnTheStandbyIsAnExactCutOver() async throws {
        let pair = try await FailoverTests.Pair.make(syncSlots: false)
        defer { Task { await pair.stopAll() } }
        let fixture = pair.fixture
        // Rows the old poller left behind, written on the primary before any slot existed.
        try await fixture.load(transactions: 0..<30)
        // And a writer on the primary that keeps committing through the backfill and the connector's start.
        let writerConnection = try await Connection.connect(pair.primary.conninfo(database: fixture.database))
        defer { Task { await writerConnection.close() } }
        let load = OutboxLoad(db: writerConnection, interval: .milliseconds(20))
        let configuration = try Self.configuration(pair)
        let log = LogLines()
        try await Task.sleep(for: .milliseconds(200))
        let began = ContinuousClock.now
        let backfilled = try await Backfill(configuration: configuration, createSlot: true, stateDirectory: fixture.stateDirectory,
                                            logger: EventLogger(minimumLevel: .info, write: { log.append($0) })).run()
        let took = ContinuousClock.now - began
        let writtenDuring = load.ids(after: began).count
        #expect(backfilled >= 300, "every row committed before the slot, read on the standby: \(log.all.suffix(5))")
        #expect(writtenDuring > 0, "the writer committed during the backfill")
        #expect(log.contains("event=slot_creation_waiting"), "the creation on the standby said what it waits for")
        // Without the primary's standby snapshots the creation waits for the background writer's (15 s) or a checkpoint.
        #expect(took < .seconds(10), "backfill with the slot's creation on the standby took \(took)")
        #expect(log.contains("event=slot_created_on_standby"), "\(log.all.suffix(5))")
        #expect(try await pair.standbySlot() != nil, "the slot is on the standby")
        #expect(try await fixture.slotState() == nil, "and not on the primary")

        let running = try await fixture.start(configuration, log: log)
        let deliveredAtStart = running.metrics.deliveredTotal
        #expect(await eventually { running.metrics.deliveredTotal >= deliveredAtStart + 50 }, "the writer's rows stream: \(log.all.suffix(5))")
        await load.stop()
        #expect(load.errors.isEmpty, "\(load.errors.prefix(3))")
        let ids = Set(try await fixture.db.query("SELECT id::text FROM outbox_event").rows.compactMap { $0[0] })
        let records = try await fixture.readBack(["order-events", "catalog-events"]) { records in
            ids.isSubset(of: Set(records.compactMap { $0.headerText("event_id") }))
        }
        #expect(Set(records.compactMap { $0.headerText("event_id") }) == ids, "every row, backfilled or streamed")
        #expect(records.count == ids.count, "exact cut-over: no row both backfilled and streamed (\(records.count) records for \(ids.count) rows)")
        #expect(records.filter { $0.headerText("tailgate_lsn") == "0/0" }.count == backfilled)
        #expect(log.all.filter { $0.contains("event=slot_created ") }.count == 1,
                "the slot the backfill created is the one the connector streams from (created once): \(log.all.filter { $0.contains("slot_created") })")
        print("standby decoding, backfill --create-slot on the standby under a writer: \(backfilled) rows backfilled in \(took) (slot creation included; \(writtenDuring) rows committed meanwhile), \(records.count) records for \(ids.count) rows")
        try await running.stop()
    }

    @Test func theStandbyFollowsAnotherPromotedStandbyAndKeepsStreaming() async throws {
        let pair = try await FailoverTests.Pair.make(syncSlots: false)
        defer { Task { await pair.stopAll() } }
        let database = pair.fixture.database
        let other = try await TestPostgres.startStandby(of: pair.primary, slot: "standby2", database: database)
        defer { Task { try? await other.stop(mode: .immediate) } }
        let servers = [pair.primary, pair.standby, other]
        let everyServer = "host=\(servers.map(\.directory).joined(separator: ",")) port=\(servers.map { "\($0.port)" }.joined(separator: ",")) dbname=\(database) user=postgres target_session_attrs=read-write connect_timeout=5"
        let log = LogLines()
        let running = try await pair.fixture.start(try pair.fixture.configuration {
            var postgres = $0["postgres"] as! [String: Any]
            postgres["conninfo"] = pair.standby.conninfo(database: database)
            postgres["primaryConninfo"] = everyServer
            $0["postgres"] = postgres
        }, log: log)
        let connector = running.connector
        try await pair.fixture.load(transactions: 0..<5)
        #expect(await eventually { connector.metrics.deliveredTotal == 50 })
        // Both standbys have everything the primary wrote (asynchronous standbys that diverged could not both follow).
        let last = try await Self.currentLSN(pair.primary, database: database)
        for standby in [pair.standby, other] {
            let replayed = await eventually {
                guard let connection = try? await Connection.connect(standby.conninfo(database: database)) else { return false }
                defer { Task { await connection.close() } }
                return (try? await connection.query("SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS done", [last.description]).first?.bool("done")) == true
            }
            #expect(replayed, "\(standby.directory) replayed \(last)")
        }

        try await pair.primary.stop(mode: .immediate)
        let crashed = ContinuousClock.now
        try await other.promote()
        // The decoding standby now follows the promoted one, through a physical slot there.
        let promoted = try await Connection.connect(other.conninfo(database: database))
        defer { Task { await promoted.close() } }
        try await promoted.query("SELECT pg_create_physical_replication_slot('standby1')")
        let decodingStandby = try await Connection.connect(pair.standby.conninfo(database: database))
        defer { Task { await decodingStandby.close() } }
        try await decodingStandby.execute("ALTER SYSTEM SET primary_conninfo = 'host=\(other.directory) port=\(other.port) user=postgres dbname=\(database) application_name=standby1'")
        try await decodingStandby.query("SELECT pg_reload_conf()")
        let repointed = ContinuousClock.now

        let writer = FailoverTests.Writer()
        let writing = Task { await writer.run(conninfo: everyServer) }
        let flowing = await eventually(timeout: .seconds(60)) {
            writer.committed.withLock { $0.count } >= 25 && connector.metrics.deliveredTotal >= 75
        }
        let flowingAt = ContinuousClock.now
        writer.stop()
        await writing.value
        #expect(flowing, "events written on the newly promoted server reach Kafka through the re-pointed standby: \(log.all.suffix(8)); standby: \(pair.standby.serverLogTail(8))")

        // Everything the new primary has (the load before the crash and the writer's events after) is in Kafka.
        let onNewPrimary = Set(try await promoted.query("SELECT id::text AS id FROM outbox_event").rows.compactMap { $0["id"] })
        let records = try await pair.fixture.readBack(["order-events", "catalog-events"], timeout: .seconds(90)) { records in
            onNewPrimary.isSubset(of: Set(records.compactMap { $0.headerText("event_id") }))
        }
        let published = Set(records.compactMap { $0.headerText("event_id") })
        let written = Set(writer.committed.withLock { $0 })
        #expect(written.isSubset(of: onNewPrimary))
        #expect(onNewPrimary.subtracting(published).isEmpty, "\(onNewPrimary.subtracting(published).count) event(s) on the new primary are not in Kafka")
        #expect(try await pair.standbySlot()?.isInvalidated == false, "the slot on the standby survived the change of primary")
        #expect(log.all.filter { $0.contains("event=slot_created ") }.count == 1)
        print("standby decoding, the standby follows another promoted standby: events flowing again \(flowingAt - crashed) after the crash (\(flowingAt - repointed) after the standby was re-pointed); \(written.count) events written on the new primary, \(onNewPrimary.count) on it, \(onNewPrimary.subtracting(published).count) missing from Kafka (\(records.count) records)")
        try await running.stop()
    }

    @Test func aPromotedStandbyKeepsStreamingFromTheSameSlotAndHeartbeatsFollow() async throws {
        let pair = try await FailoverTests.Pair.make(syncSlots: false)
        defer { Task { await pair.stopAll() } }
        let log = LogLines()
        let running = try await pair.fixture.start(try Self.configuration(pair), log: log)
        let connector = running.connector
        let writer = FailoverTests.Writer()
        let writing = Task { await writer.run(conninfo: pair.conninfo(attributes: "read-write")) }
        #expect(await eventually { connector.metrics.deliveredTotal >= 100 }, "events flow before the promotion")

        try await pair.primary.stop(mode: .immediate)
        let crashed = ContinuousClock.now
        try await pair.standby.promote()
        let promoted = ContinuousClock.now
        // The writer reconnects to the promoted server; the first events it commits there must reach Kafka.
        let committedAtPromotion = writer.committed.withLock { $0.count }
        let deliveredAtPromotion = connector.metrics.deliveredTotal
        let publishedAfter = await eventually(timeout: .seconds(60), every: .milliseconds(50)) {
            writer.committed.withLock { $0.count } >= committedAtPromotion + 25
                && connector.metrics.deliveredTotal >= deliveredAtPromotion + 25
        }
        let streamingAgain = ContinuousClock.now
        #expect(publishedAfter, "events written on the promoted server are published: \(log.all.suffix(8))")
        writer.stop()
        await writing.value

        let newPrimary = try await Connection.connect(pair.standby.conninfo(database: pair.fixture.database))
        defer { Task { await newPrimary.close() } }
        let (onNewPrimary, records, published) = try await pair.compareWithKafka(newPrimary)
        let missing = onNewPrimary.subtracting(published).count
        let phantom = published.subtracting(onNewPrimary).count
        #expect(missing == 0, "\(missing) event(s) on the promoted server are not in Kafka")
        #expect(phantom == 0, "\(phantom) event(s) in Kafka that the promoted server lacks (the standby cannot decode what it never received)")
        #expect(log.all.filter { $0.contains("event=slot_created ") }.count == 1, "the slot was created once, on the standby, and never again")

        // Quiet now: the promoted server's heartbeats keep its slot moving (the old primary is gone).
        let quiet = try await Self.heartbeatsMoveTheSlot(pair, connector, writtenOn: pair.standby)
        #expect(quiet.heartbeats, "heartbeats follow the promotion: \(log.all.suffix(5))")
        #expect(quiet.advanced, "the slot on the promoted server advances while the outbox is quiet: \(log.all.suffix(5))")
        // Promoted, the server is a primary: no replay lag series any more (absent, not 0), and the flag says so.
        #expect(await eventually { await Self.scraped("tailgate_slot_on_standby", connector) == 0 })
        #expect(await Self.scraped("tailgate_standby_replay_lag_seconds", connector) == nil)
        #expect(await Self.scraped("tailgate_standby_replay_lag_bytes", connector) == nil)
        #expect(await Self.declares("tailgate_standby_replay_lag_seconds", connector), "the family stays declared (HELP/TYPE) without a sample")
        let reconnected = log.all.contains { $0.contains("event=failover_followed") }
        print("standby decoding, promotion under load: events flowing again \(streamingAgain - crashed) after the crash (\(streamingAgain - promoted) after promotion; the stream \(reconnected ? "reconnected" : "continued")); \(onNewPrimary.count) events on the promoted server, \(missing) missing, \(records.count - published.count) duplicates, \(writer.committed.withLock { $0 }.count - Set(writer.committed.withLock { $0 }).intersection(onNewPrimary).count) committed on the old primary but never replicated")
        try await running.stop()
    }
}
