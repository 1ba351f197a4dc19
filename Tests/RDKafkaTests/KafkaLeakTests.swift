import Foundation
import RDKafka
import Testing

/// Runs alone (`scripts/test` starts it in its own process with TAILGATE_LEAK_CHECK=1), because
/// `rd_kafka_wait_destroyed` counts every librdkafka handle of the process.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["TAILGATE_LEAK_CHECK"] == "1"))
struct KafkaLeakTests {
    @Test func closingEveryClientLeavesNoLibrdkafkaHandle() async throws {
        let cluster = try KafkaMockCluster(brokers: 2, log: KafkaTestHelpers.quiet)
        try cluster.createTopic("leak", partitions: 2)
        let deliveries = DeliveryLog()
        let producer = try KafkaProducer(configuration: .init(properties: ["bootstrap.servers": cluster.bootstrapServers]),
                                         log: KafkaTestHelpers.quiet) { deliveries.record($0) }
        for sequence in 0..<100 {
            try await producer.send(KafkaRecord(topic: "leak", key: [UInt8(sequence)], value: [1]), token: UInt64(sequence))
        }
        let consumer = try KafkaConsumer(properties: ["bootstrap.servers": cluster.bootstrapServers, "group.id": "leak",
                                                      "session.timeout.ms": "6000"], log: KafkaTestHelpers.quiet) { _ in [:] }
        try consumer.subscribe(["leak"])
        var records: [ConsumerRecord] = []
        let deadline = ContinuousClock.now + .seconds(60)
        while records.count < 100, ContinuousClock.now < deadline {
            records += try await consumer.pollOnQueue(maxRecords: 100, timeout: .milliseconds(200))
        }
        #expect(records.count == 100)
        #expect(KafkaProducer.liveHandleCount == 3)
        let undelivered = await producer.close(timeout: .seconds(10))
        #expect(undelivered == 0)
        try await consumer.close()
        cluster.close()
        #expect(KafkaProducer.liveHandleCount == 0)
        #expect(KafkaProducer.waitUntilAllDestroyed(timeout: .seconds(10)), "rd_kafka_wait_destroyed returned non-zero")
    }
}
