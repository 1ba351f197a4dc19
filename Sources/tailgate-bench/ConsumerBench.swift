import Foundation
import LibPQ
import OutboxConsumer
import RDKafka
import Synchronization

/// `consume`: applies `--expect` events from the topics to `product_metrics` (views per product).
///
/// `--mode exactly-once --batch N` uses ``OutboxConsumer`` (inbox, handler and offsets in one transaction per
/// batch of up to N). `--mode plain` is the ceiling it is compared with: a consumer with auto-commit and no inbox
/// running the same statement per event on an autocommit connection (at-least-once: a redelivery counts twice).
/// `--deferred` has the exactly-once handler queue its upsert with `Session.executeDeferred` (sent with the batch's
/// COMMIT) instead of waiting for it. `--statements` makes the handler a statement handler
/// (``OutboxConsumer/runStatements(_:)``) producing the same upsert: each batch then goes in one pipeline.
/// Time runs from the first applied event to the last.
enum ConsumerBench {
    private struct ProductViewed: Decodable { let productId: String }

    static let upsert = """
        INSERT INTO product_metrics (product_id, views) VALUES ($1, 1)
        ON CONFLICT (product_id) DO UPDATE SET views = product_metrics.views + 1
        """

    static func run(_ arguments: BenchArguments) async throws {
        let conninfo = try arguments.string("conninfo")
        let bootstrap = try arguments.string("bootstrap")
        let topics = try arguments.string("topics").split(separator: ",").map(String.init)
        let expected = try arguments.int("expect")
        let mode = try arguments.string("mode")
        let setup = try await Connection.connect(conninfo)
        try await setup.execute("CREATE TABLE IF NOT EXISTS product_metrics (product_id text PRIMARY KEY, views bigint NOT NULL)")
        await setup.close()
        let group = "bench-\(mode)-\(getpid())"
        var result = Measurements()
        let seconds: Double
        switch mode {
        case "exactly-once":
            let batch = try arguments.int("batch")
            let handler: Handler = arguments.flags.contains("statements") ? .statements
                : arguments.flags.contains("deferred") ? .deferred : .waiting
            result.label("contender", "outbox-consumer-batch-\(batch)" + handler.suffix)
            result["batch"] = Double(batch)
            let snapshot: ConsumerMetrics.Snapshot
            (seconds, snapshot) = try await exactlyOnce(conninfo: conninfo, bootstrap: bootstrap, topics: topics, group: group,
                                                        batch: batch, handler: handler, expected: expected)
            // The consumer's own statements per batch, and the handler's (one upsert per applied event).
            result["consumer_round_trips_per_batch"] = Double(snapshot.roundTrips) / Double(max(1, snapshot.batches))
            result["handler_round_trips_per_batch"] = handler == .waiting ? Double(snapshot.applied) / Double(max(1, snapshot.batches)) : 0
            result["one_pipeline_fallbacks"] = Double(snapshot.onePipelineFallbacks)
        case "plain":
            result.label("contender", "plain-consumer-auto-commit")
            seconds = try await plain(conninfo: conninfo, bootstrap: bootstrap, topics: topics, group: group, expected: expected)
        default:
            throw BenchError("--mode is exactly-once or plain")
        }
        result["events"] = Double(expected)
        result["first_to_last_applied_s"] = seconds
        result["events_per_s"] = Double(expected) / seconds
        result.processCost()
        result.printJSON()
    }

    /// How the exactly-once handler sends its upsert.
    enum Handler {
        /// `Session.execute`: one round trip per event.
        case waiting
        /// `Session.executeDeferred`: sent with the batch's COMMIT.
        case deferred
        /// A statement handler: the batch in one pipeline.
        case statements

        /// What the contender's name ends with.
        var suffix: String {
            switch self {
            case .waiting: ""
            case .deferred: "-deferred"
            case .statements: "-statements"
            }
        }
    }

    private static func exactlyOnce(conninfo: String, bootstrap: String, topics: [String], group: String, batch: Int,
                                    handler: Handler, expected: Int) async throws -> (Double, ConsumerMetrics.Snapshot) {
        let consumer = try OutboxConsumer(configuration: .init(groupID: group, topics: topics,
                                                               kafka: ["bootstrap.servers": bootstrap],
                                                               postgres: conninfo, maxBatchSize: batch),
                                          log: { _ in })
        let firstApplied = Mutex<ContinuousClock.Instant?>(nil)
        let running = Task {
            if handler == .statements {
                // Called before the batch is known to be new (and again if it falls back): the first call marks the
                // start, as the session handlers' first call does.
                try await consumer.runStatements { event, statements in
                    firstApplied.withLock { if $0 == nil { $0 = .now } }
                    statements.execute(upsert, [try event.decode(ProductViewed.self).productId])
                }
            } else {
                try await consumer.run { event, session in
                    firstApplied.withLock { if $0 == nil { $0 = .now } }
                    let productID = try event.decode(ProductViewed.self).productId
                    if handler == .deferred {
                        session.executeDeferred(upsert, [productID])
                    } else {
                        _ = try session.execute(upsert, [productID])
                    }
                }
            }
        }
        // Checked every 10 ms: the end is at most 10 ms late (under 0.5% of a run), while a 1 ms loop cost this
        // process a quarter of its CPU in timer wake-ups and snapshot copies (perf), which the plain consumer
        // does not pay.
        while consumer.metrics.snapshot.applied < expected {
            try await Task.sleep(for: .milliseconds(10))
        }
        let end = ContinuousClock.now
        consumer.stop()
        try await running.value
        return ((end - (firstApplied.withLock { $0 } ?? end)).seconds, consumer.metrics.snapshot)
    }

    private static func plain(conninfo: String, bootstrap: String, topics: [String], group: String,
                              expected: Int) async throws -> Double {
        let connection = try await Connection.connect(conninfo)
        let consumer = try KafkaConsumer(properties: ["bootstrap.servers": bootstrap, "group.id": group,
                                                      "enable.auto.commit": "true", "enable.auto.offset.store": "true"],
                                         log: { _ in })
        try consumer.subscribe(topics)
        let decoder = JSONDecoder()
        var applied = 0
        var first: ContinuousClock.Instant?
        while applied < expected {
            for record in try await consumer.pollOnQueue(maxRecords: 1000, timeout: .milliseconds(100)) where applied < expected {
                if first == nil { first = .now }
                let event = try decoder.decode(ProductViewed.self, from: Data(record.value ?? []))
                try await connection.execute(upsert, [event.productId])
                applied += 1
            }
        }
        let end = ContinuousClock.now
        try await consumer.close()
        await connection.close()
        return (end - (first ?? end)).seconds
    }
}
