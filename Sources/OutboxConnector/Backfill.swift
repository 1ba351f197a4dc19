import LibPQ
import Observability
import PGOutput
import RDKafka
import Foundation
import Synchronization

/// Publishes outbox rows that are already in the table, with the same record layout and `event_id`s as the
/// stream, so consumers de-duplicate any overlap (`tailgate backfill`).
///
/// With `createSlot`, the connector's slot is created in the same step and the rows are read in the snapshot the
/// slot starts from: every row committed before the slot is backfilled, every row after it is streamed, none is
/// missed — the exact cut-over from a poller. On a standby (PostgreSQL 16+, `postgres.primaryConninfo` set) the slot
/// is created there as `tailgate run` creates it, and the rows are read on the standby in its exported snapshot.
package struct Backfill: Sendable {
    /// The connector's configuration.
    package var configuration: ConnectorConfiguration
    /// A SQL condition on the outbox table (the operator's own SQL), e.g. `created_at > now() - interval '1 day'`.
    package var condition: String?
    /// Create the slot and read in its exported snapshot.
    package var createSlot: Bool
    /// Where the connector remembers its slots (as for `tailgate run`).
    package var stateDirectory: String
    let logger: EventLogger

    /// Creates a backfill.
    package init(configuration: ConnectorConfiguration, condition: String? = nil, createSlot: Bool = false,
                stateDirectory: String = ".tailgate-state", logger: EventLogger = EventLogger()) {
        self.configuration = configuration
        self.condition = condition
        self.createSlot = createSlot
        self.stateDirectory = stateDirectory
        self.logger = logger.with(("connector", configuration.name), ("command", "backfill"))
    }

    /// Runs the backfill.
    ///
    /// - Returns: How many records Kafka acknowledged (dead letters included).
    /// - Throws: ``ConnectorError`` (setup, an undeliverable row without a dead-letter topic, a delivery error),
    ///   ``PostgresError``, ``KafkaError``.
    package func run() async throws -> Int {
        let connector = Connector(configuration: configuration, options: .init(stateDirectory: stateDirectory), logger: logger)
        let setup = try await connector.prepare()
        defer { Task { await setup.close() } }
        var replication: ReplicationConnection?
        var snapshot: String?
        if createSlot {
            let connection = try await ReplicationConnection.connect(configuration.conninfo)
            if try await connection.slotState(configuration.slot) != nil {
                throw ConnectorError(.setup, "--create-slot: the slot \(configuration.slot) exists already; drop it first or backfill without --create-slot")
            }
            // On a standby (16+) as in `run`: the primary is asked for standby snapshots so that the creation does
            // not wait for its next checkpoint. The exported snapshot is then the standby's at the consistent point,
            // and the rows are read on the standby in it (below), so the cut-over stays exact.
            let onStandby = setup.sessions.state.withLock { $0.onStandby }
            let created = try await connector.createSlot(connection, setup: setup, onStandby: onStandby, snapshot: .export)
            try await SlotRecord(directory: stateDirectory, connector: configuration.name, schema: setup.schema, admin: setup.admin,
                                 logger: logger).remember(systemID: setup.systemID, slot: configuration.slot, since: created.consistentPoint)
            logger.info("slot_created", ("slot", configuration.slot), ("consistent_point", created.consistentPoint.description),
                        ("snapshot", created.snapshotName ?? ""))
            replication = connection
            snapshot = created.snapshotName
        }
        defer { if let replication { Task { await replication.close() } } }

        let relation = try await outboxRelation(setup)
        let router = connector.router
        let acknowledged = Mutex((count: 0, failure: nil as KafkaError?))
        var properties = configuration.kafka
        properties["client.id"] = properties["client.id"] ?? "tailgate-\(configuration.name)-backfill"
        let producer = try KafkaProducer(configuration: ProducerConfiguration(properties: properties), log: { _ in }) { report in
            acknowledged.withLock { state in
                if let error = report.error { state.failure = state.failure ?? error } else { state.count += 1 }
            }
        }
        // Read in one snapshot (the slot's, with --create-slot) and publish as we go.
        let connection = try await Connection.connect(configuration.conninfo)
        defer { Task { await connection.close() } }
        let columns = relation.columns.map { SQLIdentifier.quote($0.name) + "::text" }.joined(separator: ", ")
        let orderColumn = relation.columnIndex(named: "created_at") != nil ? "created_at" : configuration.eventIdColumn
        let sql = "SELECT \(columns) FROM \(SQLIdentifier.quote(setup.schema)).\(SQLIdentifier.quote(setup.table))"
            + (condition.map { " WHERE \($0)" } ?? "") + " ORDER BY \(SQLIdentifier.quote(orderColumn))"
        let sent = try await publishAll(connection: connection, sql: sql, snapshot: snapshot, relation: relation,
                                        router: router, producer: producer)
        let left = await producer.close(timeout: .seconds(60))
        let (count, failure) = acknowledged.withLock { ($0.count, $0.failure) }
        if let failure { throw ConnectorError(.deliveryFailed, "backfill: Kafka refused a record: \(failure)") }
        if left > 0 { throw ConnectorError(.shutdownDeadline, "backfill: \(left) record(s) were not acknowledged within 60 s") }
        logger.info("backfill_done", ("rows", "\(sent)"), ("acknowledged", "\(count)"))
        return count
    }

    /// Reads the rows through a cursor in one snapshot and sends them as they come (memory stays bounded).
    private func publishAll(connection: Connection, sql: String, snapshot: String?, relation: Relation, router: OutboxRouter,
                            producer: KafkaProducer) async throws -> Int {
        let logger = self.logger
        return try await connection.transaction { tx in
            try tx.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            if let snapshot { try tx.query("SET TRANSACTION SNAPSHOT \(SQLIdentifier.literal(snapshot))") }
            try tx.query("DECLARE tailgate_backfill NO SCROLL CURSOR FOR \(sql)")
            let context = OutboxRouter.TransactionContext(commitLSN: .invalid, xid: 0)
            var sent = 0
            while true {
                let rows = try tx.query("FETCH 1000 FROM tailgate_backfill").rows
                if rows.isEmpty { return sent }
                for values in rows.map(\.values) {
                    let row = Row(relation: relation, values: values.map { $0.map { TupleData.Value.text(Array($0.utf8)) } ?? .null })
                    let record: KafkaRecord
                    switch router.route(row, in: context) {
                    case .publish(let routed):
                        record = routed
                    case .reject(let reason, let eventID, let deadLetter):
                        guard let deadLetter else {
                            throw ConnectorError(.undeliverableRow, "backfill: row event_id=\(eventID ?? "NULL") cannot become a record: \(reason); set \"deadLetterTopic\" or fix the row")
                        }
                        logger.warning("dead_letter", ("event_id", eventID ?? "NULL"), ("reason", reason))
                        record = deadLetter
                    }
                    // This runs on the connection's own queue, so waiting out a full producer queue blocks no task;
                    // the wait ends when delivery reports make room.
                    try producer.sendBlocking(record, token: UInt64(sent))
                    sent += 1
                }
            }
        }
    }

    private func outboxRelation(_ setup: Connector.Setup) async throws -> Relation {
        let rows = try await setup.admin.query(deadline: .seconds(30), """
            SELECT a.attname, a.atttypid::text AS type FROM pg_catalog.pg_attribute a
            WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum
            """, [SQLIdentifier.quote(setup.schema) + "." + SQLIdentifier.quote(setup.table)]).rows
        return Relation(id: 0, namespace: setup.schema, name: setup.table, replicaIdentity: .default,
                        columns: rows.map { .init(isKey: false, name: $0["attname"] ?? "", typeOID: UInt32($0["type"] ?? "") ?? 0, typeModifier: -1) })
    }
}
