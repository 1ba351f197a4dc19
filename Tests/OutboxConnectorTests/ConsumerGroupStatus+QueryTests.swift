import LibPQ
import OutboxConnector
@testable import OutboxConsumer
import TestSupport
import Testing

/// `tailgate status` reads the consumer's tables as the consumer itself creates them: both take their definition
/// from `ConsumerTables`.
@Suite struct ConsumerGroupStatusQueryTests {
    @Test func theStatusQueryReadsTablesCreatedByTheConsumersOwnDefinitions() async throws {
        let postgres = try await TestPostgres.shared()
        let database = try await postgres.createDatabase(prefix: "consumer_tables")
        let conninfo = postgres.conninfo(database: database)
        let db = try await Connection.connect(conninfo)
        defer { Task { await db.close() } }
        // Names of the user's choosing, in a schema of their own: the names reach the query as the consumer used them.
        try await db.execute("CREATE SCHEMA svc")
        let tables = ConsumerGroupStatus.Tables(offsets: try #require(QualifiedName(parsing: "svc.my_offsets")),
                                                inbox: try #require(QualifiedName(parsing: "svc.my_inbox")),
                                                parked: try #require(QualifiedName(parsing: "svc.my_parked")))
        let inbox = Inbox(tables: tables, group: "billing")
        let statements = inbox.createStatements(offsets: OffsetStore(table: tables.offsets, group: "billing", defaultStart: .beginning),
                                                parked: ParkedStore(table: tables.parked, group: "billing"))
        try await db.execute("BEGIN")
        for statement in statements { try await db.execute(statement) }
        try await db.execute("COMMIT")

        try await db.execute("""
            INSERT INTO svc.my_offsets (consumer_group, topic, partition, next_offset) VALUES
                ('billing', 'orders', 0, 42), ('billing', 'orders', 1, 7), ('shipping', 'orders', 0, 3)
            """)
        try await db.execute("""
            INSERT INTO svc.my_inbox (consumer_group, event_id, topic, partition, "offset", status) VALUES
                ('billing', 'e1', 'orders', 0, 1, 'applied'), ('billing', 'e2', 'orders', 0, 2, 'dead_lettered'),
                ('billing', 'e3', 'orders', 1, 3, 'parked'), ('shipping', 'e1', 'orders', 0, 1, 'dead_lettered')
            """)
        try await db.execute("""
            INSERT INTO svc.my_parked (consumer_group, topic, partition, "offset", record_key, event_id) VALUES
                ('billing', 'orders', 1, 3, 'customer-9', 'e3'), ('billing', 'orders', 1, 5, 'customer-9', 'e5'),
                ('billing', 'orders', 1, 6, 'customer-4', 'e6')
            """)

        // No Kafka: its failure is recorded per group, the database's side is read all the same.
        let groups = try await ConsumerGroupStatus.read(conninfo: conninfo, kafka: ["bootstrap.servers": "127.0.0.1:1"],
                                                        tables: tables, timeout: .seconds(1))
        #expect(groups.map(\.group) == ["billing", "shipping"])
        let billing = try #require(groups.first)
        #expect(billing.partitions.map(\.storedOffset) == [42, 7])
        #expect(billing.deadLettered == 1 && billing.parked == 2, "two parked keys, one dead-lettered event: \(billing)")
        #expect(groups.last?.deadLettered == 1 && groups.last?.parked == 0)
    }
}
