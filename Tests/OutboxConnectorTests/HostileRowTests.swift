import Foundation
import LibPQ
import OutboxConnector
import RDKafka
import TestSupport
import Testing

/// Outbox rows a careless or hostile writer could commit: each becomes a correct record or a dead letter with
/// its reason, and the connector keeps streaming.
@Suite struct HostileRowTests {
    struct Case {
        let id: String
        let topic: String?
        let key: String?
        let payload: [UInt8]?
        /// The record's expected value, or nil when the row must be dead-lettered with `reason` in its error.
        let value: [UInt8]?
        let reason: String
    }

    @Test func hostileRowsBecomeCorrectRecordsOrDeadLetters() async throws {
        let fixture = try await OutboxFixture.make()
        defer { fixture.close() }
        // bytea, not jsonb: a UTF-8 database cannot hold arbitrary bytes in text, but a bytea payload can.
        try await fixture.db.execute("""
            CREATE TABLE outbox_bytes (id uuid PRIMARY KEY, topic text, aggregate_id text, event_type text NOT NULL,
                                       payload bytea)
            """)
        let running = try await fixture.start(try fixture.configuration { document in
            var outbox = document["outbox"] as! [String: Any]
            outbox["table"] = "public.outbox_bytes"
            outbox["headers"] = ["event_type": "event_type"]
            document["outbox"] = outbox
        })
        var generator = SystemRandomNumberGenerator()
        let allBytes = (0...255).map { UInt8($0) } + (0..<4096).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        let unicodeKey = "商品-🛒-e\u{301}-\u{202E}lrt-\u{200D}-ﷺ"
        let big = [UInt8](repeating: UInt8(ascii: "b"), count: 200_000)
        let huge = [UInt8](repeating: UInt8(ascii: "h"), count: 3_000_000)
        let cases = [
            Case(id: "00000000-0000-0000-0000-000000000001", topic: "order-events", key: "bytes", payload: allBytes,
                 value: allBytes, reason: ""),
            Case(id: "00000000-0000-0000-0000-000000000002", topic: "order-events", key: unicodeKey, payload: Array("{}".utf8),
                 value: Array("{}".utf8), reason: ""),
            Case(id: "00000000-0000-0000-0000-000000000003", topic: "order-events", key: "big", payload: big,
                 value: big, reason: ""),
            Case(id: "00000000-0000-0000-0000-000000000004", topic: "order-events", key: "k", payload: nil,
                 value: nil, reason: "payload column payload is NULL"),
            Case(id: "00000000-0000-0000-0000-000000000005", topic: "order-events", key: nil, payload: [1],
                 value: nil, reason: "key column aggregate_id is NULL"),
            Case(id: "00000000-0000-0000-0000-000000000006", topic: "order-events", key: "huge", payload: huge,
                 value: nil, reason: "over message.max.bytes"),
            Case(id: "00000000-0000-0000-0000-000000000007", topic: "bad topic!\u{1}", key: "k", payload: [1],
                 value: nil, reason: "is not a valid Kafka topic name"),
            Case(id: "00000000-0000-0000-0000-000000000008", topic: "", key: "k", payload: [1],
                 value: nil, reason: "NULL or empty"),
        ]
        for item in cases {
            try await fixture.db.execute("INSERT INTO outbox_bytes VALUES ($1, $2, $3, 'Hostile', $4)",
                                         [item.id, item.topic, item.key, item.payload])
        }
        try await fixture.db.execute("INSERT INTO outbox_bytes VALUES (gen_random_uuid(), 'order-events', 'after', 'After', '\\x7b7d')")

        let published = try await fixture.readBack(["order-events"], expected: cases.filter { $0.value != nil }.count + 1)
        let dead = try await fixture.readBack(["tailgate.dead-letter"], expected: cases.filter { $0.value == nil }.count)
        for item in cases {
            if let value = item.value {
                let record = try #require(published.first { $0.headerText("event_id") == item.id }, "\(item.id) was not published")
                #expect(record.value ?? [] == value, "\(item.id): the value differs")
                #expect(record.key == item.key.map { Array($0.utf8) }, "\(item.id): the key differs")
            } else {
                let record = try #require(dead.first { $0.headerText("event_id") == item.id }, "\(item.id) was not dead-lettered")
                #expect(record.headerText("tailgate_error")?.contains(item.reason) == true,
                        "\(item.id): \(record.headerText("tailgate_error") ?? "no error header")")
                #expect((record.value?.count ?? 0) < 1_000_000, "a dead letter never carries an oversized payload")
            }
        }
        #expect(published.contains { $0.headerText("event_type") == "After" }, "the connector kept streaming")
        #expect(running.metrics.isStreaming)
        try await running.stop()
    }
}
