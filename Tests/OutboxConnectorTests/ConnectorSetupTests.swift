import Foundation
import LibPQ
import OutboxConnector
import TestSupport
import Testing

/// Configurations that would publish nothing (or less than every event) are refused, by `validate --connect` and
/// at start, each with a message naming the problem and the SQL that fixes it.
@Suite struct ConnectorSetupTests {
    /// A connector on an administrator's publication (`createPublication: false`).
    static func administratorsPublication(_ fixture: OutboxFixture, table: String = "public.outbox_event") throws -> ConnectorConfiguration {
        try fixture.configuration {
            var postgres = $0["postgres"] as! [String: Any]
            postgres["createPublication"] = false
            $0["postgres"] = postgres
            var outbox = $0["outbox"] as! [String: Any]
            outbox["table"] = table
            $0["outbox"] = outbox
        }
    }

    /// Both ways a configuration is checked report `expected` (validate) and refuse to start (run), with no slot made.
    static func expectRefused(_ fixture: OutboxFixture, _ configuration: ConnectorConfiguration, saying expected: [String],
                              sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let connector = fixture.connector(configuration)
        let problems = await connector.validateDatabase()
        for text in expected {
            #expect(problems.contains { $0.contains(text) }, "validate: expected \"\(text)\" in \(problems)", sourceLocation: sourceLocation)
        }
        // A connector that starts instead of refusing is stopped after a while, so the test fails rather than hangs.
        let running = Task { try await connector.run() }
        let deadline = Task {
            try await Task.sleep(for: .seconds(30))
            connector.requestStop()
        }
        let result = await running.result
        deadline.cancel()
        guard case .failure(let failure) = result, let error = failure as? ConnectorError else {
            Issue.record("the connector started instead of refusing: \(result)", sourceLocation: sourceLocation)
            return
        }
        #expect(error.code == .setup, sourceLocation: sourceLocation)
        for text in expected {
            #expect(error.message.contains(text), "run: expected \"\(text)\" in \(error.message)", sourceLocation: sourceLocation)
        }
        #expect(try await fixture.slotState() == nil, "nothing was streamed: no slot was created", sourceLocation: sourceLocation)
    }

    static let partitionedDDL = ["""
        CREATE TABLE outbox_p (id uuid NOT NULL DEFAULT gen_random_uuid(), topic text, aggregate_type text, aggregate_id text,
            event_type text NOT NULL, payload jsonb, created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (id, created_at)) PARTITION BY RANGE (created_at)
        """, "CREATE TABLE outbox_p_all PARTITION OF outbox_p FOR VALUES FROM (MINVALUE) TO (MAXVALUE)"]

    @Test func aPartitionedOutboxMissingFromAnAdministratorsPublicationIsRefused() async throws {
        let fixture = try await OutboxFixture.make()
        defer { fixture.close() }
        for statement in Self.partitionedDDL { try await fixture.db.execute(statement) }
        try await fixture.db.execute("CREATE PUBLICATION \(fixture.publication) FOR TABLE outbox_event WITH (publish = 'insert', publish_via_partition_root = true)")
        try await Self.expectRefused(fixture, try Self.administratorsPublication(fixture, table: "public.outbox_p"), saying: [
            "the publication \(fixture.publication) does not include public.outbox_p, so nothing would be published",
            "ALTER PUBLICATION \"\(fixture.publication)\" ADD TABLE \"public\".\"outbox_p\"",
        ])
        // Fixed as the message says, it starts.
        try await fixture.db.execute("ALTER PUBLICATION \(fixture.publication) ADD TABLE outbox_p")
        #expect(await fixture.connector(try Self.administratorsPublication(fixture, table: "public.outbox_p")).validateDatabase() == [])
    }

    @Test func aPartitionedOutboxPublishedOnlyThroughItsPartitionsIsRefused() async throws {
        let fixture = try await OutboxFixture.make()
        defer { fixture.close() }
        for statement in Self.partitionedDDL { try await fixture.db.execute(statement) }
        try await fixture.db.execute("CREATE PUBLICATION \(fixture.publication) FOR TABLE outbox_p_all WITH (publish = 'insert', publish_via_partition_root = true)")
        try await Self.expectRefused(fixture, try Self.administratorsPublication(fixture, table: "public.outbox_p"), saying: [
            "does not include public.outbox_p, so nothing would be published",
        ])
    }

    @Test func aColumnListLeavingOutAMappedColumnIsRefused() async throws {
        let fixture = try await OutboxFixture.make()
        defer { fixture.close() }
        try await fixture.db.execute("CREATE PUBLICATION \(fixture.publication) FOR TABLE outbox_event (id, topic, aggregate_id, event_type) WITH (publish = 'insert')")
        try await Self.expectRefused(fixture, try Self.administratorsPublication(fixture), saying: [
            "has a column list on public.outbox_event that leaves out the mapped column(s) payload, aggregate_type",
            "BEGIN; ALTER PUBLICATION \"\(fixture.publication)\" DROP TABLE \"public\".\"outbox_event\"; ALTER PUBLICATION \"\(fixture.publication)\" ADD TABLE \"public\".\"outbox_event\"; COMMIT;",
        ])
        // A column list naming every mapped column is fine.
        try await fixture.db.execute("ALTER PUBLICATION \(fixture.publication) SET TABLE outbox_event (id, topic, aggregate_id, aggregate_type, event_type, payload)")
        #expect(await fixture.connector(try Self.administratorsPublication(fixture)).validateDatabase() == [])
    }

    @Test func aRowFilterIsRefused() async throws {
        let fixture = try await OutboxFixture.make()
        defer { fixture.close() }
        try await fixture.db.execute("CREATE PUBLICATION \(fixture.publication) FOR TABLE outbox_event WHERE (topic = 'order-events') WITH (publish = 'insert')")
        try await Self.expectRefused(fixture, try Self.administratorsPublication(fixture), saying: [
            "publishes only the rows of public.outbox_event WHERE (topic = 'order-events'::text)",
            "remove the row filter: BEGIN; ALTER PUBLICATION",
        ])
    }

    static let generatedKeyDDL = """
        CREATE TABLE outbox_gen (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), topic text, aggregate_type text,
            aggregate_id text GENERATED ALWAYS AS (aggregate_type || ':' || event_type) STORED,
            event_type text NOT NULL, payload jsonb)
        """

    @Test func aGeneratedKeyColumnIsRefusedWhereItCannotBePublished() async throws {
        let fixture = try await OutboxFixture.make()
        defer { fixture.close() }
        try await fixture.db.execute(Self.generatedKeyDDL)
        try await fixture.db.execute("CREATE PUBLICATION \(fixture.publication) FOR TABLE outbox_gen WITH (publish = 'insert')")
        let expected = TestPostgres.isAtLeast(18)
            ? ["the mapped column aggregate_id of public.outbox_gen is GENERATED ALWAYS … STORED and the publication \(fixture.publication) does not publish generated columns",
               "ALTER PUBLICATION \"\(fixture.publication)\" SET (publish_generated_columns = stored)"]
            : ["the mapped column aggregate_id of public.outbox_gen is GENERATED ALWAYS … STORED, and PostgreSQL \(TestPostgres.majorVersion).",
               "never publishes generated columns (18 can, with publish_generated_columns = stored)",
               "ALTER TABLE \"public\".\"outbox_gen\" ALTER COLUMN \"aggregate_id\" DROP EXPRESSION"]
        try await Self.expectRefused(fixture, try Self.administratorsPublication(fixture, table: "public.outbox_gen"), saying: expected)
    }

    @Test(.enabled(if: TestPostgres.isAtLeast(18), Comment(rawValue: TestPostgres.skipReason(needs: 18, "publish_generated_columns"))))
    func onEighteenAGeneratedKeyIsPublishedThroughPublishGeneratedColumns() async throws {
        let fixture = try await OutboxFixture.make()
        defer { fixture.close() }
        try await fixture.db.execute(Self.generatedKeyDDL)
        // The connector creates its publication with publish_generated_columns = stored when a mapped column needs it.
        let configuration = try fixture.configuration {
            var outbox = $0["outbox"] as! [String: Any]
            outbox["table"] = "public.outbox_gen"
            $0["outbox"] = outbox
        }
        let running = try await fixture.start(configuration)
        try await fixture.db.execute("INSERT INTO outbox_gen (topic, aggregate_type, event_type, payload) VALUES ('order-events', 'Order', 'Placed', '{}')")
        let records = try await fixture.readBack(["order-events"], expected: 1)
        #expect(records.map(\.keyText) == ["Order:Placed"], "the generated key was published")
        try await running.stop()
    }

    @Test func failoverSlotsFollowTheServerVersion() async throws {
        let fixture = try await OutboxFixture.make()
        defer { fixture.close() }
        let explicit = try fixture.configuration {
            var postgres = $0["postgres"] as! [String: Any]
            postgres["failover"] = true
            $0["postgres"] = postgres
        }
        if TestPostgres.isAtLeast(17) {
            // The default makes a failover slot; "failover": false turns it off on the existing slot.
            let running = try await fixture.start(try fixture.configuration())
            try await running.stop()
            #expect(try await fixture.slotState()?.isFailover == true)
            // ALTER_REPLICATION_SLOT needs the slot free: wait for the walsender to let go, as a restart would.
            #expect(try await eventually { try await fixture.slotState()?.isActive == false })
            let off = try await fixture.start(try fixture.configuration {
                var postgres = $0["postgres"] as! [String: Any]
                postgres["failover"] = false
                $0["postgres"] = postgres
            })
            try await off.stop()
            #expect(try await fixture.slotState()?.isFailover == false)
            #expect(try await eventually { try await fixture.slotState()?.isActive == false })
            let on = try await fixture.start(explicit)
            try await on.stop()
            #expect(try await fixture.slotState()?.isFailover == true)
        } else {
            try await Self.expectRefused(fixture, explicit, saying: [
                "$.postgres.failover is true, but PostgreSQL \(TestPostgres.majorVersion).",
                "cannot synchronize a logical slot to standbys (PostgreSQL 17 and later can); remove \"failover\" or set it to false",
            ])
            let running = try await fixture.start(try fixture.configuration())
            try await running.stop()
            #expect(try await fixture.slotState()?.isFailover == nil, "no failover column before 17; the default works")
        }
    }
}

@Suite struct SlotInvalidationTests {
    @Test(.enabled(if: TestPostgres.isAtLeast(18), Comment(rawValue: TestPostgres.skipReason(needs: 18, "idle_replication_slot_timeout"))))
    func aSlotInvalidatedForIdlenessSaysSoInsteadOfBlamingLostWAL() async throws {
        let postgres = try await TestPostgres.start(settings: ["idle_replication_slot_timeout = 1"])
        let fixture = try await OutboxFixture.make(postgres: postgres)
        defer { fixture.close() }
        let configuration = try fixture.configuration()
        let running = try await fixture.start(configuration)
        try await running.stop()
        // Idle slots are invalidated at checkpoints once they have been unused for longer than the timeout.
        let invalidated = try await eventually(timeout: .seconds(30), every: .milliseconds(500)) {
            try await fixture.db.query("CHECKPOINT")
            return try await fixture.slotState()?.invalidationReason == "idle_timeout"
        }
        #expect(invalidated, "the slot was invalidated by idle_replication_slot_timeout: \(postgres.serverLogTail(5))")
        let error = try await #require(throws: ConnectorError.self) { try await fixture.connector(configuration).run() }
        #expect(error.code == .slotLost)
        #expect(error.message.contains("invalidation_reason = idle_timeout"), "\(error.message)")
        #expect(error.message.contains("Raise idle_replication_slot_timeout or set it to 0"))
        #expect(!error.message.contains("the WAL it needed is gone"), "the WAL was not the cause: \(error.message)")
        #expect(error.message.contains("tailgate backfill"))
        try await postgres.stop(mode: .immediate)
    }
}
