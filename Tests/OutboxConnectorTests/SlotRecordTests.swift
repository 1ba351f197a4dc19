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

    /// A role that may not create the table (PostgreSQL 15+: no CREATE on public): the state file keeps the record,
    /// and the log says how to move it into the database; once an administrator creates the table, it is used.
    @Test func aRoleThatMayNotCreateTheTableFallsBackToTheStateFileAndSaysSo() async throws {
        let fixture = try await OutboxFixture.make(partitions: 2)
        defer { fixture.close() }
        let role = "tg_\(fixture.database)"
        try await fixture.db.execute("CREATE ROLE \(role) LOGIN REPLICATION")
        try await fixture.db.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        try await fixture.db.execute("GRANT SELECT ON outbox_event TO \(role)")
        try await fixture.db.execute("CREATE PUBLICATION \(fixture.publication) FOR TABLE outbox_event WITH (publish = 'insert')")
        let configuration = try fixture.configuration {
            var postgres = $0["postgres"] as! [String: Any]
            postgres["conninfo"] = fixture.postgres.conninfo(database: fixture.database, user: role)
            postgres["createPublication"] = false
            $0["postgres"] = postgres
        }
        let log = LogLines()
        let first = try await fixture.start(configuration, log: log)
        try await first.stop()
        #expect(log.contains("event=slot_record_local"), "\(log.all.filter { $0.contains("slot") })")
        #expect(log.contains("GRANT SELECT, INSERT ON"))
        let file = try String(contentsOfFile: fixture.stateDirectory + "/\(configuration.name).slot", encoding: .utf8)
        #expect(file == "\(try await systemID(fixture)) \(fixture.slot)\n")

        // The administrator creates the table as the log says: the next start moves the file's line into it.
        try await fixture.db.execute("""
            CREATE TABLE public.tailgate_connector_slot (connector text NOT NULL, system_identifier text NOT NULL, slot_name text NOT NULL,
                since_lsn pg_lsn, recorded_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (connector, system_identifier, slot_name))
            """)
        try await fixture.db.execute("GRANT SELECT, INSERT ON public.tailgate_connector_slot TO \(role)")
        let migrating = LogLines()
        let second = try await fixture.start(configuration, log: migrating)
        try await second.stop()
        #expect(migrating.contains("event=slot_record_migrated") && !migrating.contains("event=slot_record_local"), "\(migrating.all)")
        #expect(try await fixture.db.query("SELECT slot_name FROM tailgate_connector_slot").rows.compactMap { $0["slot_name"] } == [fixture.slot])
    }
}
