import Foundation
import LibPQ
import OutboxConnector
import PGOutput
import TestSupport
import Testing

/// `GET /status` of a real connector in each state its lifecycle can be in.
@Suite struct StatusEndpointTests {
    static func status(_ port: Int) async -> ConnectorStatus? {
        guard let answer = await httpGet(port: port, path: "/status"), answer.status.contains("200") else { return nil }
        return try? ConnectorStatus(json: answer.body)
    }

    /// Streaming, then waiting for Kafka (every broker down past --kafka-timeout), then stopping (a stop request
    /// while records wait for Kafka), in one connector.
    @Test func streamingThenWaitingForKafkaThenStopping() async throws {
        let fixture = try await OutboxFixture.make(partitions: 2)
        defer { fixture.close() }
        let connector = Connector(configuration: try fixture.configuration(),
                                  options: Connector.Options(stateDirectory: fixture.stateDirectory, shutdownTimeout: .seconds(30),
                                                             statusInterval: .milliseconds(500), kafkaTimeout: .seconds(1)))
        let task = Task { try await connector.run() }
        #expect(await eventually { connector.metrics.isStreaming })
        let port = try #require(connector.metricsPort)

        try await fixture.load(transactions: 0..<2, rowsPerTransaction: 5)
        #expect(await eventually { connector.metrics.deliveredTotal == 10 })
        let streamed = await eventually { await Self.status(port)?.confirmedLSN != nil }
        let streaming = try #require(streamed ? await Self.status(port) : nil, "/status never showed a confirmed position")
        #expect(streaming.state == .running && streaming.phase == "streaming" && streaming.slot == fixture.slot, "\(streaming)")
        #expect(streaming.waiting == nil && streaming.failure == nil && streaming.kafkaReachable && streaming.inFlightRecords == 0)
        let acknowledged = try #require(streaming.acknowledgedLSN.flatMap { LSN($0) })
        #expect(try #require(streaming.confirmedLSN.flatMap { LSN($0) }) <= acknowledged, "nothing is reported before Kafka acknowledged it")
        #expect(streaming.since <= Date() && streaming.since > Date().addingTimeInterval(-60))
        #expect(await httpGet(port: port, path: "/status")?.body.contains("password") == false)

        for broker: Int32 in 1...3 { try fixture.kafka.takeBrokerDown(broker) }
        try await fixture.load(transactions: 2..<3, rowsPerTransaction: 5)
        var seen: ConnectorStatus?
        let waited = await eventually(timeout: .seconds(30)) { seen = await Self.status(port); return seen?.state == .waiting }
        #expect(waited, "/status never said WAITING for Kafka: \(seen.map(\.json) ?? "no answer")")
        let waiting = try #require(seen)
        #expect(["kafka_unreachable", "kafka_unacknowledged"].contains(waiting.waiting?.cause ?? ""), "\(waiting.json)")
        #expect(waiting.waiting?.nextAttempt == nil && waiting.inFlightRecords == 5)
        #expect(await httpGet(port: port, path: "/healthz")?.status.contains("503") == true, "/healthz keeps its meaning")

        connector.requestStop()
        var stoppingSeen: ConnectorStatus?
        #expect(await eventually { stoppingSeen = await Self.status(port); return stoppingSeen?.state == .stopping },
                "the drain waits for Kafka: STOPPING meanwhile")
        let stopping = try #require(stoppingSeen)
        #expect(stopping.inFlightRecords == 5 && stopping.waiting == nil)
        for broker: Int32 in 1...3 { try fixture.kafka.bringBrokerUp(broker) }
        try await task.value
        #expect(connector.metrics.deliveredTotal == 15)
    }

    @Test func waitingForPostgreSQLNamesTheCauseTheNextAttemptAndTheLastError() async throws {
        let fixture = try await OutboxFixture.make(partitions: 2)
        defer { fixture.close() }
        let closedPort = try TestPostgres.freePort()
        let configuration = try fixture.configuration {
            var postgres = $0["postgres"] as! [String: Any]
            postgres["conninfo"] = "host=127.0.0.1 port=\(closedPort) dbname=\(fixture.database) connect_timeout=2 password=hunter2"
            $0["postgres"] = postgres
        }
        let connector = fixture.connector(configuration)
        let task = Task { try await connector.run() }
        defer { connector.requestStop() }
        #expect(await eventually { connector.metricsPort != nil })
        let port = try #require(connector.metricsPort)
        // The answer that said WAITING, not a later one: with a 4 s backoff cap the connector is soon connecting again.
        var seen: ConnectorStatus?
        #expect(await eventually { seen = await Self.status(port); return seen?.state == .waiting }, "/status never said WAITING")
        let waiting = try #require(seen)
        #expect(waiting.waiting?.cause == "postgres_unavailable", "\(waiting.json)")
        let next = try #require(waiting.waiting?.nextAttempt)
        #expect(next > waiting.since && next < Date().addingTimeInterval(31), "the next attempt after the backoff")
        #expect(waiting.lastError?.message.isEmpty == false && waiting.lastError.map { $0.at <= Date() } == true)
        let body = await httpGet(port: port, path: "/status")?.body ?? ""
        #expect(!body.contains("hunter2"), "no secret in /status: \(body)")
        #expect(await httpGet(port: port, path: "/healthz")?.status.contains("503") == true)
        connector.requestStop()
        try await task.value
    }

    /// A setup error (the outbox table is missing) in `tailgate run --hold-failed`: FAILED with the error and what to
    /// do, until SIGTERM; and `tailgate status --url` prints it beside the database view.
    @Test func aFailedConnectorProcessSaysWhyAndWhatToDo() async throws {
        let fixture = try await OutboxFixture.make(partitions: 2)
        defer { fixture.close() }
        let port = try TestPostgres.freePort()
        let json = fixture.json(metricsPort: port).replacingOccurrences(of: "public.outbox_event", with: "public.no_such_outbox")
        let process = try ConnectorProcess(fixture: fixture, json: json, metricsPort: port, extraArguments: ["--hold-failed", "60"])
        #expect(await eventually { await Self.status(port)?.state == .failed }, "\(process.child.output)")
        let failed = try #require(await Self.status(port))
        #expect(failed.failure?.error.contains("no_such_outbox") == true, "\(failed.json)")
        #expect(failed.failure?.action.contains("start the connector again") == true)
        #expect(failed.lastError?.message == failed.failure?.error)
        #expect(await httpGet(port: port, path: "/healthz")?.status.contains("503") == true)

        let statusConfig = fixture.stateDirectory + "/status-failed.json"
        try json.write(toFile: statusConfig, atomically: true, encoding: .utf8)
        let command = try ChildProcess(ChildProcess.productsDirectory + "/tailgate",
                                       ["status", "--config", statusConfig, "--url", "http://127.0.0.1:\(port)"],
                                       outputPath: fixture.stateDirectory + "/status-failed.out")
        #expect(await command.exitStatus(timeout: .seconds(60)) == 3, "\(command.output)")
        #expect(command.output.contains("state          FAILED") && command.output.contains("what to do"), "\(command.output)")
        #expect(command.output.contains("connector_failed"), "\(command.output)")

        process.child.signal(SIGTERM)
        #expect(await process.child.exitStatus() == 1, "a stop request ends the hold; the exit still says it failed")
    }
}
