import Foundation
import LibPQ
import RDKafka
import TestSupport
import Testing

/// A `LedgerConsumer` process in the `app` host of a ``NetworkLab``, its database in `pg`, `tailgate dev-kafka` in
/// `kafka`, with records produced continuously: the consumer under silent network partitions.
///
/// This process reaches PostgreSQL over its Unix socket and produces from inside the Kafka host, so a cut only
/// ever separates the consumer from its peers.
struct PartitionedConsumer {
    static let topic = "events"

    let lab: NetworkLab
    let postgres: TestPostgres
    let db: Connection
    let kafka: NetworkLab.DevKafka
    let producer: KafkaProducer
    let consumer: ChildProcess
    let load: EventLoad

    /// Builds the pipeline in `lab` (hosts `pg`, `kafka`, `app`), waits until the consumer applies and starts the load.
    static func start(in lab: NetworkLab, directory: String) async throws -> PartitionedConsumer {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let postgres = try await lab.startPostgres(in: "pg")
        let admin = try await Connection.connect(postgres.conninfo())
        try await admin.execute("CREATE DATABASE service")
        await admin.close()
        let db = try await Connection.connect(postgres.conninfo(database: "service"))
        // One row per application, no unique constraint: a loss and a duplicate cannot cancel out.
        try await db.execute("CREATE TABLE ledger (event_id text NOT NULL, topic text, partition int, \"offset\" bigint, applied_at timestamptz DEFAULT clock_timestamp())")

        let kafka = try await lab.startDevKafka(in: "kafka", exposedTo: ["app"], brokers: 1, partitions: 4,
                                                topics: [topic, "svc.dead-letter"], outputPath: directory + "/dev-kafka.log")
        let producer = try await lab.perform(in: "kafka") {
            try KafkaProducer(configuration: .init(properties: ["bootstrap.servers": kafka.bootstrapServers]), log: { _ in }) { _ in }
        }
        let consumer = try lab.spawn(in: "app", ChildProcess.productsDirectory + "/LedgerConsumer", [], outputPath: directory + "/consumer.log",
                                     environment: ["TG_BOOTSTRAP": kafka.bootstrapServers, "TG_GROUP": "svc", "TG_TOPICS": topic,
                                                   "TG_POSTGRES": lab.conninfo(of: postgres, in: "pg", database: "service")])
        let load = EventLoad(producer: producer, topic: topic)
        return PartitionedConsumer(lab: lab, postgres: postgres, db: db, kafka: kafka, producer: producer, consumer: consumer, load: load)
    }

    /// The consumer's log lines at level warning or error from line `start` on.
    func complaints(from start: Int) -> [String] {
        consumer.outputLines.dropFirst(start).filter { $0.contains("level=warning") || $0.contains("level=error") }
    }

    /// The signs of detection to watch for, counted from now: a warning or error line.
    func signals() -> [(String, @Sendable () async -> Bool)] {
        let start = consumer.outputLines.count
        return [("log", { [self] in !complaints(from: start).isEmpty })]
    }

    /// True once an event produced after `instant` is in the ledger.
    func applying(since instant: ContinuousClock.Instant) async -> Bool {
        guard let first = load.firstSequence(after: instant) else { return false }
        let newest = try? await db.query("SELECT max(substring(event_id from 4)::int)::text AS newest FROM ledger").first?.int("newest")
        return (newest ?? -1) >= first
    }

    /// Ledger rows per event id.
    func ledger() async throws -> [String: Int] {
        var counts: [String: Int] = [:]
        for row in try await db.query("SELECT event_id, count(*)::text AS n FROM ledger GROUP BY event_id").rows {
            counts[row["event_id"] ?? ""] = Int(row["n"] ?? "")
        }
        return counts
    }
}
