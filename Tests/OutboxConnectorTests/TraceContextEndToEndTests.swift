import Foundation
import LibPQ
import OutboxConnector
import OutboxConsumer
import RDKafka
import TestSupport
import Testing

/// A trace started where the outbox row is written continues in the consumer.
@Suite struct TraceContextEndToEndTests {
    @Test func aRowsTraceparentArrivesAsAHeaderAndAsOutboxEventTraceParent() async throws {
        let fixture = try await OutboxFixture.make(partitions: 1)
        defer { fixture.close() }
        try await fixture.db.execute("ALTER TABLE outbox_event ADD COLUMN traceparent text, ADD COLUMN tracestate text")
        let log = LogLines()
        let running = try await fixture.start(try fixture.configuration {
            var outbox = $0["outbox"] as! [String: Any]
            outbox["traceColumn"] = "traceparent"
            outbox["traceStateColumn"] = "tracestate"
            $0["outbox"] = outbox
        }, log: log)
        let traced = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        try await fixture.db.execute("""
            INSERT INTO outbox_event (id, topic, aggregate_id, event_type, payload, traceparent, tracestate) VALUES
              ('00000000-0000-0000-0000-000000000001', 'order-events', 'o-1', 'Paid', '{}', $1, 'vendor=abc'),
              ('00000000-0000-0000-0000-000000000002', 'order-events', 'o-1', 'Paid', '{}', 'not-a-traceparent', 'vendor=abc'),
              ('00000000-0000-0000-0000-000000000003', 'order-events', 'o-1', 'Paid', '{}', NULL, NULL)
            """, [traced])
        #expect(await eventually { running.metrics.deliveredTotal == 3 })
        try await running.stop()

        let records = try await fixture.readBack(["order-events"], expected: 3, partitions: 1)
            .sorted { $0.offset < $1.offset }
        #expect(records.map { $0.headerText("traceparent") } == [traced, nil, nil])
        #expect(records.map { $0.headerText("tracestate") } == ["vendor=abc", nil, nil])
        #expect(log.all.contains { $0.contains("event=trace_context_dropped") && $0.contains("00000000-0000-0000-0000-000000000002") },
                "the dropped value is logged: \(log.all.suffix(5))")
        #expect(running.metrics.render().contains("tailgate_trace_context_dropped_total{connector=\"test-\(fixture.database)\"} 1"))

        // The consumer library hands the context to the handler.
        let service = try await fixture.postgres.createDatabase(prefix: "trace_svc")
        let serviceDB = try await Connection.connect(fixture.postgres.conninfo(database: service))
        try await serviceDB.execute("CREATE TABLE seen (event_id text, traceparent text, tracestate text)")
        let consumer = try OutboxConsumer(configuration: ConsumerConfiguration(
            groupID: "trace-svc", topics: ["order-events"],
            kafka: ["bootstrap.servers": fixture.kafka.bootstrapServers, "fetch.wait.max.ms": "50"],
            postgres: fixture.postgres.conninfo(database: service)), log: { _ in })
        let consuming = Task {
            try await consumer.run { event, db in
                try db.execute("INSERT INTO seen VALUES ($1, $2, $3)", [event.id, event.traceParent, event.traceState])
            }
        }
        #expect(await eventually { consumer.metrics.snapshot.applied == 3 })
        consumer.stop()
        try await consuming.value
        let seen = try await serviceDB.query("SELECT event_id, traceparent, tracestate FROM seen ORDER BY event_id").rows
        #expect(seen.map { $0["traceparent"] } == [traced, nil, nil])
        #expect(seen.map { $0["tracestate"] } == ["vendor=abc", nil, nil])
        await serviceDB.close()
    }
}
