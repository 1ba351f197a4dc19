import Foundation
import LibPQ
import PGOutput
import RDKafka
import TestSupport
import Testing

/// `tailgate run` in the `app` host of a ``NetworkLab``, PostgreSQL in `pg`, `tailgate dev-kafka` in `kafka`, with a
/// load running and Kafka read back continuously: the connector under silent network partitions.
///
/// This process reaches PostgreSQL over its Unix socket and Kafka and `/metrics` from inside their hosts, so a cut
/// only ever separates the connector from its peers.
struct PartitionedConnector {
    /// The server's `wal_sender_timeout`: shorter than the 60 s default, so a cut outlasting it keeps the test short.
    static let senderTimeout = Duration.seconds(15)
    static let topics = ["order-events", "catalog-events"]
    static let slot = "netlab"
    static let witnessSlot = "netlab_witness"

    let lab: NetworkLab
    let postgres: TestPostgres
    let db: Connection
    let kafka: NetworkLab.DevKafka
    let tail: KafkaTail
    let connector: ChildProcess
    let metricsPort: Int
    let load: OutboxLoad

    /// Builds the pipeline in `lab` (hosts `pg`, `kafka`, `app`), waits until the connector streams and starts the load.
    static func start(in lab: NetworkLab, directory: String) async throws -> PartitionedConnector {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let postgres = try await lab.startPostgres(in: "pg", settings: ["wal_sender_timeout = \(senderTimeout.components.seconds)s"])
        let admin = try await Connection.connect(postgres.conninfo())
        try await admin.execute("CREATE DATABASE commerce")
        await admin.close()
        let db = try await Connection.connect(postgres.conninfo(database: "commerce"))
        try await db.execute(OutboxFixture.outboxDDL)
        try await db.execute("CREATE PUBLICATION \(slot) FOR TABLE outbox_event WITH (publish = 'insert')")
        try await db.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [witnessSlot])

        let kafka = try await lab.startDevKafka(in: "kafka", exposedTo: ["app"], topics: topics, outputPath: directory + "/dev-kafka.log")
        let reader = try await lab.perform(in: "kafka") {
            try KafkaConsumer(properties: ["bootstrap.servers": kafka.bootstrapServers, "group.id": "netlab-tail", "fetch.wait.max.ms": "50"],
                              log: { _ in })
        }
        let tail = try KafkaTail(consumer: reader, topics: topics, partitions: 6)

        // Everything at its default, as an operator runs it, except that the file names the lab's addresses.
        let metricsPort = 9464
        let config = """
            {"name": "netlab",
             "postgres": {"conninfo": "\(lab.conninfo(of: postgres, in: "pg", database: "commerce"))", "slot": "\(slot)",
                          "publication": "\(slot)", "createPublication": false},
             "outbox": {"table": "public.outbox_event", "topic": {"column": "topic"}},
             "kafka": {"bootstrap.servers": "\(kafka.bootstrapServers)"},
             "metrics": {"listen": "127.0.0.1:\(metricsPort)"}}
            """
        try config.write(toFile: directory + "/netlab.json", atomically: true, encoding: .utf8)
        let connector = try lab.spawn(in: "app", ChildProcess.productsDirectory + "/tailgate",
                                      ["run", "--config", directory + "/netlab.json", "--state-dir", directory + "/state"],
                                      outputPath: directory + "/connector.log")
        // The load starts once the connector streams: rows committed before its slot existed are not its to publish.
        let streaming = await eventually(timeout: .seconds(60)) {
            await lab.httpGet(in: "app", port: metricsPort, path: "/healthz")?.status.contains("200") == true
        }
        try #require(streaming, "the connector never streamed: \(connector.output.suffix(3000))")
        return PartitionedConnector(lab: lab, postgres: postgres, db: db, kafka: kafka, tail: tail, connector: connector,
                                    metricsPort: metricsPort, load: OutboxLoad(db: db))
    }

    /// `/healthz`'s status line, or `nil` when nothing answers.
    func health() async -> String? {
        await lab.httpGet(in: "app", port: metricsPort, path: "/healthz")?.status
    }

    /// `tailgate_streaming`, or `nil` when `/metrics` does not answer.
    func streaming() async -> Int? {
        await lab.httpGet(in: "app", port: metricsPort, path: "/metrics")?.body.split(separator: "\n")
            .first { $0.hasPrefix("tailgate_streaming{") }?.split(separator: " ").last.flatMap { Int($0) }
    }

    /// The connector's log lines at level warning or error from line `start` on.
    func complaints(from start: Int) -> [String] {
        connector.outputLines.dropFirst(start).filter { $0.contains("level=warning") || $0.contains("level=error") }
    }

    /// The signs of detection to watch for, counted from now: a warning or error line, `/healthz` 503, and (for a
    /// cut from PostgreSQL) `tailgate_streaming 0`.
    func signals(cutFromPostgres: Bool) -> [(String, @Sendable () async -> Bool)] {
        let start = connector.outputLines.count
        var signals: [(String, @Sendable () async -> Bool)] = [
            ("log", { [self] in !complaints(from: start).isEmpty }),
            ("/healthz 503", { [self] in await health()?.contains("503") == true }),
        ]
        if cutFromPostgres {
            signals.append(("tailgate_streaming 0", { [self] in await streaming() == 0 }))
        }
        return signals
    }

    /// True once `/healthz` is 200 and an event written after `instant` is in Kafka.
    func flowing(since instant: ContinuousClock.Instant) async -> Bool {
        guard await health()?.contains("200") == true else { return false }
        return load.ids(after: instant).contains { tail.contains($0) }
    }

    /// Events the slot's confirmed position covers that Kafka does not have (expected: none). Kafka is read back
    /// for up to 5 s first, since the tail lags the broker a little.
    func confirmedButNotInKafka() async throws -> [String] {
        let confirmed = try await db.query("SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = $1", [Self.slot])
            .first?["lsn"].flatMap { LSN($0) } ?? .invalid
        let covered = try await OutboxFixture.witness(db: db, slot: Self.witnessSlot, publication: Self.slot)
            .filter { $0.value <= confirmed }.map(\.key)
        var missing = covered.filter { !tail.contains($0) }
        let deadline = ContinuousClock.now + .seconds(5)
        while !missing.isEmpty, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(200))
            missing = missing.filter { !tail.contains($0) }
        }
        print("netlab slot check: confirmed \(confirmed) covers \(covered.count) events; \(missing.count) of them not in Kafka")
        return missing
    }
}
