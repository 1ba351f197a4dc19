import RDKafka
import TestSupport
import Testing

@Suite struct KafkaWatermarksTests {
    /// Three record batches of 2, 3 and 4 records into one partition (offsets 0…8): the high watermark is the log
    /// end offset, 9. On Tansu 0.6.0 it is not (``TestKafka/listOffsetsUnavailableReason``): this pins that limit, so
    /// that a Tansu that fixes it fails here and the tests skipped for it are enabled again.
    @Test func theHighWatermarkIsTheLogEndOffsetAfterSeveralBatches() async throws {
        let kafka = try await TestKafka(brokers: 1)
        defer { kafka.close() }
        try await kafka.createTopic("marks", partitions: 1)
        let deliveries = DeliveryLog()
        let producer = try KafkaProducer(configuration: .init(properties: ["bootstrap.servers": kafka.bootstrapServers, "linger.ms": "50"]),
                                         log: KafkaTestHelpers.quiet) { deliveries.record($0) }
        var token: UInt64 = 0
        for size in [2, 3, 4] {
            for _ in 0..<size {
                try await producer.send(KafkaRecord(topic: "marks", partition: 0, key: nil, value: KafkaTestHelpers.bytes("r\(token)")), token: token)
                token += 1
            }
            // One batch per flush.
            #expect(await producer.flush(timeout: .seconds(30)) == 0)
        }
        #expect(await producer.close(timeout: .seconds(10)) == 0)
        #expect(deliveries.all.compactMap(\.offset).sorted() == Array(0...8), "every record delivered, offsets 0…8")

        let watermarks = try KafkaWatermarks(properties: ["bootstrap.servers": kafka.bootstrapServers], log: KafkaTestHelpers.quiet)
        let high = try await watermarks.offsets(topic: "marks")[TopicPartition(topic: "marks", partition: 0)]?.high
        switch TestKafka.kind {
        case .mock:
            #expect(high == 9)
        case .tansu:
            #expect(high == 6, """
                Tansu 0.6.0 answered the last batch's base offset (5) + 1; if it now says 9, \
                TestKafka.listOffsetsUnavailableReason is obsolete and the tests it skips can run on Tansu
                """)
        }
    }
}
