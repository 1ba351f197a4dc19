import ConsumerSchema
import Dispatch
import Foundation
import LibPQ
import RDKafka

/// Inspects and re-publishes dead-lettered events (`tailgate dead-letters list|replay`).
public struct DeadLetters: Sendable {
    /// One dead-lettered record.
    public struct Entry: Sendable, Hashable {
        /// Its offset in the dead-letter topic.
        public var offset: Int64
        /// Its partition in the dead-letter topic.
        public var partition: Int32
        /// The event id (`event_id` header), if any.
        public var eventID: String?
        /// Why it was dead-lettered (`tailgate_error`).
        public var error: String?
        /// The consumer group that gave up on it (`tailgate_consumer_group`), if a consumer did.
        public var consumerGroup: String?
        /// Where it came from (`tailgate_original_topic`), if a consumer dead-lettered it.
        public var originalTopic: String?
        /// The record itself.
        public var record: ConsumerRecord
    }

    /// librdkafka properties (`bootstrap.servers`, TLS…).
    public var kafka: [String: String]
    /// The dead-letter topic.
    public var topic: String

    /// Creates a reader for `topic`.
    public init(kafka: [String: String], topic: String) {
        self.kafka = kafka
        self.topic = topic
    }

    /// Reads the whole dead-letter topic.
    ///
    /// - Throws: ``KafkaError``.
    public func list(partitions: Int32 = 1, timeout: Duration = .seconds(5)) async throws -> [Entry] {
        var properties = kafka
        properties["group.id"] = "tailgate-dead-letters-\(UUID().uuidString)"
        let consumer = try KafkaConsumer(properties: properties, log: { _ in })
        var starts: [TopicPartition: StartOffset] = [:]
        for partition in 0..<partitions { starts[TopicPartition(topic: topic, partition: partition)] = .beginning }
        try consumer.assign(starts)
        var records: [ConsumerRecord] = []
        var quiet = ContinuousClock.now
        while ContinuousClock.now - quiet < timeout {
            let batch = try await consumer.pollOnQueue(maxRecords: 1_000, timeout: .milliseconds(200))
            if !batch.isEmpty { quiet = .now }
            records += batch
            if !batch.isEmpty, starts.keys.allSatisfy({ consumer.lag($0) == 0 }) { break }
        }
        try? await consumer.close()
        return records.map { record in
            Entry(offset: record.offset, partition: record.partition, eventID: record.outboxEventID,
                  error: record.header("tailgate_error")?.stringValue, consumerGroup: record.header("tailgate_consumer_group")?.stringValue,
                  originalTopic: record.header("tailgate_original_topic")?.stringValue, record: record)
        }
    }

    /// Re-publishes consumer dead letters to their original topics, after clearing their inbox entries so the
    /// consumer applies them again. Entries without an original topic (rows the connector rejected) are skipped.
    ///
    /// - Parameters:
    ///   - entries: The entries to replay (e.g. a filtered ``list(partitions:timeout:)``).
    ///   - postgres: The consumer service's database, where the inbox lives.
    ///   - inboxTable: The inbox table name.
    /// - Returns: How many were re-published.
    /// - Throws: ``PostgresError`` or ``KafkaError``; entries before the failure were replayed.
    public func replay(_ entries: [Entry], postgres: String, inboxTable: String = "tailgate_inbox") async throws -> Int {
        guard let table = QualifiedName(parsing: inboxTable) else {
            throw ConsumerError("inboxTable '\(inboxTable)' is not a table name")
        }
        let database = try await Connection.connect(postgres)
        let publisher = try DeadLetterPublisher(kafka: kafka, clientID: "tailgate-dead-letter-replay")
        var replayed = 0
        do {
            for entry in entries {
                guard let original = entry.originalTopic, let group = entry.consumerGroup, let id = entry.eventID else { continue }
                // Clear the inbox first: a crash in between leaves the entry in the dead-letter topic to replay again,
                // while the reverse order could let the consumer skip the replayed copy as a duplicate.
                try await database.execute("""
                    DELETE FROM \(SQLIdentifier.quoteQualified(table)) WHERE consumer_group = $1 AND event_id = $2 AND status = \(ConsumerTables.InboxStatus.deadLettered.literal)
                    """, [group, id])
                let headers = entry.record.headers.filter { !$0.name.hasPrefix("tailgate_error") && !$0.name.hasPrefix("tailgate_consumer_group")
                    && !$0.name.hasPrefix("tailgate_original_") }
                let record = KafkaRecord(topic: original, key: entry.record.key, value: entry.record.value, headers: headers)
                // publishAndWait blocks until Kafka answers: wait on a queue of its own, not on the concurrency pool.
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                    DispatchQueue(label: "tailgate.dead-letters.replay").async {
                        continuation.resume(with: Result { try publisher.publishAndWait(record) })
                    }
                }
                replayed += 1
            }
        } catch {
            await publisher.close()
            await database.close()
            throw error
        }
        await publisher.close()
        await database.close()
        return replayed
    }
}
