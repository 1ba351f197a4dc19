import Foundation
import LibPQ
import Observability
import OutboxConnector
import TestSupport
import Testing

/// Where the fact "this connector has used slot S on system D" lives: the source database's
/// `tailgate_connector_slot` table, the state file only as a fallback and a source to migrate from.
@Suite struct SlotRecordTests {
    func systemID(_ fixture: OutboxFixture) async throws -> String {
        try #require(try await fixture.db.query("SELECT system_identifier::text AS id FROM pg_control_system()").first?["id"])
    }

    @Test func theRecordIsARowBesideTheOutboxAndAStateFileIsMigratedIntoIt() async throws {
        let fixture = try await OutboxFixture.make(partitions: 2)
        defer { fixture.close() }
        let configuration = try fixture.configuration()
        let first = try await fixture.start(configuration)
        try await first.stop()
        let system = try await systemID(fixture)
        let rows = try await fixture.db.query("SELECT connector, system_identifier, slot_name, since_lsn::text AS since FROM tailgate_connector_slot").rows
        #expect(rows.count == 1)
        #expect(rows.first?["connector"] == configuration.name && rows.first?["system_identifier"] == system && rows.first?["slot_name"] == fixture.slot)
        #expect(rows.first?["since"] != nil, "since the slot's consistent point")

        // An older connector's state file: its lines move into the table at the next start, logged.
        try await fixture.db.execute("DELETE FROM tailgate_connector_slot")
        try FileManager.default.createDirectory(atPath: fixture.stateDirectory, withIntermediateDirectories: true)
        try "\(system) \(fixture.slot)\n\(system) an_older_slot\n".write(toFile: fixture.stateDirectory + "/\(configuration.name).slot", atomically: true, encoding: .utf8)
        let log = LogLines()
        let second = try await fixture.start(configuration, log: log)
        try await second.stop()
        #expect(log.all.filter { $0.contains("event=slot_record_migrated") }.count == 2, "\(log.all)")
        let migrated = Set(try await fixture.db.query("SELECT slot_name FROM tailgate_connector_slot WHERE connector = $1", [configuration.name]).rows.compactMap { $0["slot_name"] })
        #expect(migrated == [fixture.slot, "an_older_slot"])
    }

    /// A least-privilege role on PostgreSQL 15+ (no CREATE on public) and no table from an administrator.
    func leastPrivilegeConfiguration(_ fixture: OutboxFixture) async throws -> ConnectorConfiguration {
        let role = "tg_\(fixture.database)"
        try await fixture.db.execute("CREATE ROLE \(role) LOGIN REPLICATION")
        try await fixture.db.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        try await fixture.db.execute("GRANT SELECT ON outbox_event TO \(role)")
        try await fixture.db.execute("CREATE PUBLICATION \(fixture.publication) FOR TABLE outbox_event WITH (publish = 'insert')")
        return try fixture.configuration {
            var postgres = $0["postgres"] as! [String: Any]
            postgres["conninfo"] = fixture.postgres.conninfo(database: fixture.database, user: role)
            postgres["createPublication"] = false
            $0["postgres"] = postgres
        }
    }

    /// Without the table, the record goes to the compacted topic: a fresh container (empty state directory) whose
    /// slot was dropped still refuses, from what Kafka remembers.
    @Test func aRoleThatMayNotCreateTheTableKeepsTheRecordInKafka() async throws {
        let fixture = try await OutboxFixture.make(partitions: 2)
        defer { fixture.close() }
        let configuration = try await leastPrivilegeConfiguration(fixture)
        // Created by the operator, compacted (the connector does not create it).
        try await fixture.kafka.createTopic("tailgate.connector-slots", partitions: 1)
        let log = LogLines()
        let first = try await fixture.start(configuration, log: log)
        try await first.stop()
        #expect(log.contains("event=slot_record_kafka") && !log.contains("event=slot_record_local"), "\(log.all.filter { $0.contains("slot") })")
        let records = try await fixture.readBack(["tailgate.connector-slots"], expected: 1, partitions: 1, timeout: .seconds(10))
        let system = try await systemID(fixture)
        #expect(records.map(\.keyText) == ["\(configuration.name) \(system) \(fixture.slot)"])

        try await fixture.db.query("SELECT pg_drop_replication_slot($1)", [fixture.slot])
        try FileManager.default.removeItem(atPath: fixture.stateDirectory)
        let refused = LogLines()
        let fresh = fixture.connector(configuration, log: refused)
        let error = try await #require(throws: ConnectorError.self) { try await fresh.run() }
        #expect(error.code == .slotLost && error.message.contains("will not re-create it silently"), "\(error)")
        #expect(try await fixture.slotState() == nil, "the slot was not re-created")
    }

    /// Without the table, a missing slot whose record cannot be read from Kafka (every broker down) is not created:
    /// the connector waits (WAITING, slot_record_unavailable) and creates it once it can tell this is a first start.
    @Test func aMissingSlotIsNotCreatedWhileItsRecordCannotBeRead() async throws {
        let fixture = try await OutboxFixture.make(partitions: 2)
        defer { fixture.close() }
        let configuration = try await leastPrivilegeConfiguration(fixture)
        try await fixture.kafka.createTopic("tailgate.connector-slots", partitions: 1)
        for broker: Int32 in 1...3 { try fixture.kafka.takeBrokerDown(broker) }
        let log = LogLines()
        let connector = fixture.connector(configuration, log: log)
        let task = Task { try await connector.run() }
        #expect(await eventually(timeout: .seconds(60)) { log.contains("event=slot_record_unavailable") }, "\(log.all.suffix(3))")
        #expect(connector.status.waiting?.cause == "slot_record_unavailable")
        #expect(try await fixture.slotState() == nil, "nothing is created while the record cannot be read")
        for broker: Int32 in 1...3 { try fixture.kafka.bringBrokerUp(broker) }
        #expect(await eventually(timeout: .seconds(90)) { connector.metrics.isStreaming })
        #expect(log.contains("event=slot_created") && log.contains("event=slot_record_kafka"))
        connector.requestStop()
        try await task.value
    }

    /// When Kafka cannot take the record either (unreachable here; in a real cluster also a topic nobody created), the
    /// state file keeps it and the log says how to move it into the database; once an administrator creates the
    /// table, the next start moves the file's line into it.
    @Test func withoutTheTableAndKafkaTheStateFileKeepsTheRecordAndSaysSo() async throws {
        let fixture = try await OutboxFixture.make(partitions: 2)
        defer { fixture.close() }
        let configuration = try await leastPrivilegeConfiguration(fixture)
        try await fixture.kafka.createTopic("tailgate.connector-slots", partitions: 1)
        let first = try await fixture.start(configuration)
        try await first.stop()
        // The slot exists now: the next start only records it, and Kafka is gone.
        for broker: Int32 in 1...3 { try fixture.kafka.takeBrokerDown(broker) }
        let log = LogLines()
        let second = try await fixture.start(configuration, log: log)
        for broker: Int32 in 1...3 { try fixture.kafka.bringBrokerUp(broker) }
        try await second.stop()
        #expect(log.contains("event=slot_record_kafka_failed") && log.contains("event=slot_record_local"), "\(log.all.filter { $0.contains("slot") })")
        #expect(log.contains("GRANT SELECT, INSERT ON"))
        let file = try String(contentsOfFile: fixture.stateDirectory + "/\(configuration.name).slot", encoding: .utf8)
        #expect(file == "\(try await systemID(fixture)) \(fixture.slot)\n")

        try await fixture.db.execute("""
            CREATE TABLE public.tailgate_connector_slot (connector text NOT NULL, system_identifier text NOT NULL, slot_name text NOT NULL,
                since_lsn pg_lsn, recorded_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (connector, system_identifier, slot_name))
            """)
        try await fixture.db.execute("GRANT SELECT, INSERT ON public.tailgate_connector_slot TO tg_\(fixture.database)")
        let migrating = LogLines()
        let third = try await fixture.start(configuration, log: migrating)
        try await third.stop()
        #expect(migrating.contains("event=slot_record_migrated") && !migrating.contains("event=slot_record_local"), "\(migrating.all)")
        #expect(try await fixture.db.query("SELECT slot_name FROM tailgate_connector_slot").rows.compactMap { $0["slot_name"] } == [fixture.slot])
    }
}
