import RDKafka
import Synchronization

/// Reads topics from the beginning in the background and remembers, per `event_id` header, how many copies
/// arrived and when the first did: what reached Kafka, and when, while a test injects faults.
public final class KafkaTail: Sendable {
    /// One event id's copies in Kafka.
    public struct Arrival: Sendable {
        /// When this tail first read it.
        public var first: ContinuousClock.Instant
        /// How many records carry it (more than one after a replay).
        public var copies: Int
    }

    private let consumer: KafkaConsumer
    private let arrivals = Mutex<[String: Arrival]>([:])
    private let running = Atomic<Bool>(true)
    private let task = Mutex<Task<Void, Never>?>(nil)

    /// Assigns every partition of `topics` from the beginning and starts reading.
    ///
    /// - Parameter consumer: A consumer that can reach the cluster (for a lab, one created with
    ///   ``NetworkLab/perform(in:_:)`` in the Kafka host); the tail closes it in ``stop()``.
    public init(consumer: KafkaConsumer, topics: [String], partitions: Int32) throws {
        self.consumer = consumer
        var starts: [TopicPartition: StartOffset] = [:]
        for topic in topics {
            for partition in 0..<partitions { starts[TopicPartition(topic: topic, partition: partition)] = .beginning }
        }
        try consumer.assign(starts)
        task.withLock { $0 = Task { [self] in await self.read() } }
    }

    private func read() async {
        while running.load(ordering: .acquiring) {
            guard let records = try? await consumer.pollOnQueue(maxRecords: 10_000, timeout: .milliseconds(200)) else { continue }
            let now = ContinuousClock.now
            arrivals.withLock { arrivals in
                for record in records {
                    guard let id = record.header("event_id")?.stringValue else { continue }
                    arrivals[id, default: Arrival(first: now, copies: 0)].copies += 1
                }
            }
        }
    }

    /// What arrived so far, by event id.
    public var snapshot: [String: Arrival] { arrivals.withLock { $0 } }

    /// Whether `id` has arrived.
    public func contains(_ id: String) -> Bool { arrivals.withLock { $0[id] != nil } }

    /// Stops reading and closes the consumer.
    public func stop() async {
        running.store(false, ordering: .releasing)
        await task.withLock { $0 }?.value
        try? await consumer.close()
    }
}
