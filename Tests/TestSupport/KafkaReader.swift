import RDKafka

/// Reads topics back from the beginning, for tests that check what reached Kafka.
public enum KafkaReader {
    /// Reads every partition of `topics` from the beginning until `done` holds for what arrived, or `timeout`
    /// passes; then takes whatever else is already there.
    public static func readBack(bootstrap: String, topics: [String], partitions: Int32, timeout: Duration = .seconds(60),
                                until done: ([ConsumerRecord]) -> Bool) async throws -> [ConsumerRecord] {
        let consumer = try KafkaConsumer(properties: ["bootstrap.servers": bootstrap, "group.id": "tailgate-test-reader",
                                                      "fetch.wait.max.ms": "50"], log: { _ in })
        var starts: [TopicPartition: StartOffset] = [:]
        for topic in topics {
            for partition in 0..<partitions { starts[TopicPartition(topic: topic, partition: partition)] = .beginning }
        }
        var records: [ConsumerRecord] = []
        do {
            try consumer.assign(starts)
            let deadline = ContinuousClock.now + timeout
            while !done(records), ContinuousClock.now < deadline {
                records += try await consumer.pollOnQueue(maxRecords: 10_000, timeout: .milliseconds(200))
            }
            records += try await consumer.pollOnQueue(maxRecords: 10_000, timeout: .milliseconds(300))
        } catch {
            try? await consumer.close()
            throw error
        }
        try? await consumer.close()
        return records
    }
}
