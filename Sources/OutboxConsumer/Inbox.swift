import ConsumerSchema
import LibPQ

/// The inbox table: which events this consumer group has applied (or dead-lettered). The one place that decides
/// whether an event is new.
struct Inbox: Sendable {
    /// The schema version this release creates; later releases migrate from it. Version 2: the `parked` status and
    /// the parked-events table.
    static let schemaVersion = 2

    let table: String
    let group: String
    /// The consumer's tables, whose definitions ``createStatements(offsets:parked:)`` creates.
    private let tables: ConsumerTables
    /// Inserts the batch's event ids and returns the ones that were new; prepared once per connection.
    private let claimStatement: PreparedStatement
    /// Inserts the batch's event ids, failing with unique_violation when one is there already (or twice in the
    /// batch); prepared once per connection.
    private let insertStatement: PreparedStatement

    init(tables: ConsumerTables, group: String) {
        self.table = SQLIdentifier.quoteQualified(tables.inbox)
        self.group = group
        self.tables = tables
        let insert = """
            INSERT INTO \(self.table) (consumer_group, event_id, topic, partition, "offset")
            SELECT $1, e.event_id, e.topic, e.partition, e.off
            FROM unnest($2::text[], $3::text[], $4::int[], $5::bigint[]) AS e(event_id, topic, partition, off)
            """
        self.claimStatement = PreparedStatement(insert + """

            ON CONFLICT (consumer_group, event_id) DO NOTHING
            RETURNING event_id
            """)
        // The server logs the statement with its unique_violation: the comment says why that is expected.
        self.insertStatement = PreparedStatement("""
            /* tailgate: fails when an event of the batch is already applied; the batch is then applied claim first */
            \(insert)
            """)
    }

    /// The statements that create the consumer's tables (``ConsumerTables`` defines the inbox and the offsets
    /// table; `parked` its own) and migrate an older schema, in one transaction.
    func createStatements(offsets: OffsetStore, parked: ParkedStore) -> [String] {
        assert(offsets.table == SQLIdentifier.quoteQualified(tables.offsets), "the offsets store and the inbox name different tables")
        let checkName = SQLIdentifier.quote(tables.inboxStatusCheckName)
        return [
            "SELECT pg_advisory_xact_lock(hashtext('tailgate.outbox_consumer.schema'))",
            "CREATE TABLE IF NOT EXISTS tailgate_schema_version (component text PRIMARY KEY, version int NOT NULL)",
            tables.inboxDefinition,
            "CREATE INDEX IF NOT EXISTS \(SQLIdentifier.quote(indexName)) ON \(table) (consumer_group, processed_at)",
            tables.offsetsDefinition,
            // Version 1 inboxes only allowed 'applied' and 'dead_lettered'.
            """
            DO $$ BEGIN
                IF EXISTS (SELECT FROM pg_constraint WHERE conrelid = '\(table.replacingOccurrences(of: "'", with: "''"))'::regclass
                           AND conname = \(checkName.replacingOccurrences(of: "\"", with: "'"))
                           AND pg_get_constraintdef(oid) NOT LIKE '%parked%') THEN
                    ALTER TABLE \(table) DROP CONSTRAINT \(checkName);
                    ALTER TABLE \(table) ADD CONSTRAINT \(checkName) \(tables.inboxStatusCheck);
                END IF;
            END $$
            """,
        ] + parked.createStatements() + [
            """
            INSERT INTO tailgate_schema_version VALUES ('outbox_consumer', \(Self.schemaVersion))
            ON CONFLICT (component) DO UPDATE SET version = GREATEST(tailgate_schema_version.version, EXCLUDED.version)
            """,
        ]
    }

    private var indexName: String {
        String((table.replacingOccurrences(of: "\"", with: "").replacingOccurrences(of: ".", with: "_") + "_processed_at").prefix(63))
    }

    /// The statement that records the batch's events (for a pipeline); ``claimed(_:)`` reads its result: the ids
    /// that were not there yet, the ones to apply.
    func claim(_ entries: [(id: String, topic: String, partition: Int32, offset: Int64)]) -> PipelineStatement {
        PipelineStatement(claimStatement, parameters(entries))
    }

    private func parameters(_ entries: [(id: String, topic: String, partition: Int32, offset: Int64)]) -> [(any PostgresBindable)?] {
        [group, PostgresArray.literal(entries.map(\.id)), PostgresArray.literal(entries.map(\.topic)),
         PostgresArray.literal(entries.map { Int64($0.partition) }), PostgresArray.literal(entries.map(\.offset))]
    }

    /// The statement that records the batch's events all new (for a pipeline): it fails with unique_violation, and
    /// aborts the transaction, when any of them is in the inbox already or twice among `entries`.
    func insertAllNew(_ entries: [(id: String, topic: String, partition: Int32, offset: Int64)]) -> PipelineStatement {
        PipelineStatement(insertStatement, parameters(entries))
    }

    /// The ids a ``claim(_:)`` inserted: the events that are new.
    static func claimed(_ result: QueryResult) -> Set<String> {
        Set(result.rows.compactMap { $0[0] })
    }

    /// Marks an event as dead-lettered, with why.
    func markDeadLettered(_ session: Session, id: String, error: String) throws {
        try session.execute("UPDATE \(table) SET status = \(ConsumerTables.InboxStatus.deadLettered.literal), error = $3 WHERE consumer_group = $1 AND event_id = $2",
                            [group, id, String(error.prefix(2000))])
    }

    /// Marks an event as parked (its key waits for a release).
    func markParked(_ session: Session, id: String, error: String?) throws {
        try session.execute("UPDATE \(table) SET status = \(ConsumerTables.InboxStatus.parked.literal), error = $3 WHERE consumer_group = $1 AND event_id = $2",
                            [group, id, error.map { String($0.prefix(2000)) }])
    }

    /// Marks a parked event as applied (released).
    func markReleased(_ session: Session, id: String) throws {
        try session.execute("UPDATE \(table) SET status = \(ConsumerTables.InboxStatus.applied.literal), error = NULL, processed_at = now() WHERE consumer_group = $1 AND event_id = $2",
                            [group, id])
    }

    /// Deletes up to `limit` rows processed longer ago than `seconds`; returns how many.
    func sweep(_ session: Session, olderThanSeconds seconds: Int64, limit: Int = 1000) throws -> Int {
        try session.execute("""
            DELETE FROM \(table) WHERE ctid IN (
                SELECT ctid FROM \(table) WHERE consumer_group = $1 AND status <> \(ConsumerTables.InboxStatus.parked.literal) AND processed_at < now() - make_interval(secs => $2::double precision)
                LIMIT $3)
            """, [group, seconds, limit])
    }
}
