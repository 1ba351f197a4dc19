import LibPQ
import PGOutput

extension Connector {
    /// What `prepare()` learnt about the database.
    struct Setup: Sendable {
        /// A connection for checks and heartbeats.
        let admin: AdminConnection
        /// The outbox table's real schema and name.
        let schema: String
        let table: String
        /// The cluster's system identifier.
        let systemID: String

        func isOutbox(_ relation: Relation) -> Bool {
            relation.namespace == schema && relation.name == table
        }
    }

    /// Checks the database side without changing anything: what `tailgate validate --connect` reports.
    ///
    /// - Returns: One line per problem; empty when the connector can start.
    public func validateDatabase() async -> [String] {
        do {
            let setup = try await prepare(createMissing: false)
            await setup.admin.close()
            return []
        } catch let error as ConnectorError {
            return error.problems
        } catch {
            return ["\(error)"]
        }
    }

    /// Checks the database side and, with `createMissing`, creates the publication if configured.
    ///
    /// - Throws: ``ConnectorError`` with code `setup`, one message listing what is wrong and what to do.
    func prepare(createMissing: Bool = true) async throws -> Setup {
        let admin = try await Connection.connect(configuration.conninfo)
        var problems: [String] = []
        let role = try await admin.query("SELECT rolreplication OR rolsuper AS replication, current_user AS name FROM pg_catalog.pg_roles WHERE rolname = current_user").first
        if role?.bool("replication") != true {
            problems.append("the role \(role?["name"] ?? "?") lacks the REPLICATION attribute; ALTER ROLE \(SQLIdentifier.quote(role?["name"] ?? "tailgate")) REPLICATION")
        }
        let walLevel = try await admin.query("SHOW wal_level").first?[0]
        if walLevel != "logical" {
            problems.append("wal_level is '\(walLevel ?? "?")'; set wal_level = logical in postgresql.conf and restart PostgreSQL")
        }
        let quotedTable = SQLIdentifier.quoteQualified(configuration.table)
        guard let table = try await admin.query("""
            SELECT c.oid::text AS oid, n.nspname, c.relname, c.relkind::text AS relkind
            FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
            WHERE c.oid = to_regclass($1)
            """, [quotedTable]).first, let oid = table["oid"], let schema = table["nspname"], let name = table["relname"] else {
            await admin.close()
            throw ConnectorError(.setup, "the outbox table \(configuration.table) does not exist (or the role cannot see it); check $.outbox.table and GRANT SELECT on it", problems: problems + ["the outbox table \(configuration.table) does not exist (or the role cannot see it); check $.outbox.table and GRANT SELECT on it"])
        }
        let partitioned = table["relkind"] == "p"
        let columns = try await admin.query("""
            SELECT attname FROM pg_catalog.pg_attribute WHERE attrelid = $1::oid AND attnum > 0 AND NOT attisdropped ORDER BY attnum
            """, [oid]).rows.compactMap { $0["attname"] }
        let missing = router.requiredColumns.filter { !columns.contains($0) }
        if !missing.isEmpty {
            problems.append("the table \(schema).\(name) has no column(s) \(missing.joined(separator: ", ")) named in the connector file; its columns are \(columns.joined(separator: ", "))")
        }
        let primaryKey = try await admin.query("SELECT 1 FROM pg_catalog.pg_index WHERE indrelid = $1::oid AND indisprimary", [oid])
        if primaryKey.rows.isEmpty {
            problems.append("the table \(schema).\(name) has no primary key; add one (e.g. on the event id column) so that replication can identify rows")
        }
        let systemID = try await admin.query("SELECT system_identifier::text AS id FROM pg_control_system()").first?["id"] ?? "unknown"
        if problems.isEmpty || !createMissing {
            try await ensurePublication(admin: admin, schema: schema, table: name, partitioned: partitioned,
                                        create: createMissing, problems: &problems)
        }
        guard problems.isEmpty else {
            await admin.close()
            throw ConnectorError(.setup, "the database is not ready for connector \(configuration.name):\n" + problems.map { "  - \($0)" }.joined(separator: "\n"),
                                 problems: problems)
        }
        return Setup(admin: AdminConnection(conninfo: configuration.conninfo, connection: admin), schema: schema, table: name,
                     systemID: systemID)
    }

    private func ensurePublication(admin: Connection, schema: String, table: String, partitioned: Bool, create: Bool,
                                   problems: inout [String]) async throws {
        let publication = try await admin.query(
            "SELECT puballtables, pubinsert, pubviaroot FROM pg_catalog.pg_publication WHERE pubname = $1", [configuration.publication]).first
        guard let publication else {
            guard configuration.createPublication, create else {
                if configuration.createPublication { return } // validation only: it will be created at start
                problems.append("the publication \(configuration.publication) does not exist; create it with CREATE PUBLICATION \(SQLIdentifier.quote(configuration.publication)) FOR TABLE \(SQLIdentifier.quote(schema)).\(SQLIdentifier.quote(table)) WITH (publish = 'insert'\(partitioned ? ", publish_via_partition_root = true" : "")), or set \"createPublication\": true")
                return
            }
            try await admin.execute("""
                CREATE PUBLICATION \(SQLIdentifier.quote(configuration.publication)) FOR TABLE \(SQLIdentifier.quote(schema)).\(SQLIdentifier.quote(table)) \
                WITH (publish = 'insert'\(partitioned ? ", publish_via_partition_root = true" : ""))
                """)
            logger.info("publication_created", ("publication", configuration.publication), ("table", "\(schema).\(table)"))
            return
        }
        if publication.bool("pubinsert") == false {
            problems.append("the publication \(configuration.publication) does not publish inserts; ALTER PUBLICATION … SET (publish = 'insert')")
        }
        if partitioned && publication.bool("pubviaroot") == false {
            problems.append("the outbox table is partitioned but the publication \(configuration.publication) lacks publish_via_partition_root = true; ALTER PUBLICATION … SET (publish_via_partition_root = true)")
        }
        let covers = try await admin.query("""
            SELECT 1 FROM pg_catalog.pg_publication_tables WHERE pubname = $1 AND schemaname = $2 AND tablename = $3
            """, [configuration.publication, schema, table])
        if covers.rows.isEmpty && !partitioned {
            problems.append("the publication \(configuration.publication) does not include \(schema).\(table); ALTER PUBLICATION … ADD TABLE \(SQLIdentifier.quote(schema)).\(SQLIdentifier.quote(table))")
        }
    }

    /// Checks the slot before streaming, creating it the first time if configured; returns where to start.
    ///
    /// - Throws: ``ConnectorError`` with code `slotLost` for a slot that disappeared or was invalidated.
    func checkSlot(_ replication: ReplicationConnection, setup: Setup) async throws -> LSN {
        let record = SlotRecord(directory: options.stateDirectory, connector: configuration.name)
        let slot = configuration.slot
        guard let state = try await replication.slotState(slot) else {
            if record.contains(systemID: setup.systemID, slot: slot) {
                throw ConnectorError(.slotLost, "replication slot \(slot) was used by this connector before and no longer exists: events committed since its last position may be missing from Kafka. Tailgate will not re-create it silently. To recover: create the slot (SELECT pg_create_logical_replication_slot('\(slot)', 'pgoutput')), run `tailgate backfill` for the rows written meanwhile, then remove the line for \(slot) from \(record.path) and restart.")
            }
            guard configuration.createSlot else {
                throw ConnectorError(.setup, "replication slot \(slot) does not exist; create it with SELECT pg_create_logical_replication_slot('\(slot)', 'pgoutput'), or set \"createSlot\": true")
            }
            let created = try await replication.createSlot(slot)
            try record.remember(systemID: setup.systemID, slot: slot)
            logger.info("slot_created", ("slot", slot), ("consistent_point", created.consistentPoint.description))
            return created.consistentPoint
        }
        metrics.slot(walStatus: state.walStatus, safeWALSize: state.safeWALSize)
        guard state.isLogical, state.plugin == "pgoutput" else {
            throw ConnectorError(.setup, "replication slot \(slot) is not a logical pgoutput slot (plugin \(state.plugin ?? "none")); choose another slot name")
        }
        if state.walStatus == "lost" {
            throw ConnectorError(.slotLost, "replication slot \(slot) is invalidated (wal_status = lost, e.g. by max_slot_wal_keep_size): the WAL it needed is gone. Drop and re-create it, then run `tailgate backfill` for the rows written since \(state.confirmedFlushLSN?.description ?? "its last position").")
        }
        try record.remember(systemID: setup.systemID, slot: slot)
        let acknowledged = pipelineConfirmable ?? .invalid
        return max(acknowledged, state.confirmedFlushLSN ?? .invalid)
    }
}
