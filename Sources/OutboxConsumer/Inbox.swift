import LibPQ

/// The inbox table: which events this consumer group has applied (or dead-lettered). The one place that decides
/// whether an event is new.
struct Inbox: Sendable {
    /// The schema version this release creates; later releases migrate from it. Version 2: the `parked` status and
    /// the parked-events table.
    static let schemaVersion = 2

    let table: String
    let group: String
    private let name: QualifiedName
    /// Inserts the batch's event ids and returns the ones that were new; prepared once per connection.
    private let claimStatement: PreparedStatement

    init(table: QualifiedName, group: String) {
        self.table = SQLIdentifier.quoteQualified(table)
        self.group = group
        self.name = table
        self.claimStatement = PreparedStatement("""
            INSERT INTO \(self.table) (consumer_group, event_id, topic, partition, "offset")
            SELECT $1, e.event_id, e.topic, e.partition, e.off
            FROM unnest($2::text[], $3::text[], $4::int[], $5::bigint[]) AS e(event_id, topic, partition, off)
            ON CONFLICT (consumer_group, event_id) DO NOTHING
            RETURNING event_id
            """)
    }

    func createStatements(offsets: OffsetStore, parked: ParkedStore) -> [String] {
        [
            "SELECT pg_advisory_xact_lock(hashtext('tailgate.outbox_consumer.schema'))",
            "CREATE TABLE IF NOT EXISTS tailgate_schema_version (component text PRIMARY KEY, version int NOT NULL)",
            """
            CREATE TABLE IF NOT EXISTS \(table) (
                consumer_group text NOT NULL,
                event_id text NOT NULL,
                topic text NOT NULL,
                partition int NOT NULL,
                "offset" bigint NOT NULL,
                status text NOT NULL DEFAULT 'applied' CHECK (status IN ('applied', 'dead_lettered', 'parked')),
                error text,
                processed_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (consumer_group, event_id))
            """,
            "CREATE INDEX IF NOT EXISTS \(SQLIdentifier.quote(indexName)) ON \(table) (consumer_group, processed_at)",
            """
            CREATE TABLE IF NOT EXISTS \(offsets.table) (
                consumer_group text NOT NULL,
                topic text NOT NULL,
                partition int NOT NULL,
                next_offset bigint NOT NULL,
                updated_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (consumer_group, topic, partition))
            """,
            // Version 1 inboxes only allowed 'applied' and 'dead_lettered'.
            """
            DO $$ BEGIN
                IF EXISTS (SELECT FROM pg_constraint WHERE conrelid = '\(table.replacingOccurrences(of: "'", with: "''"))'::regclass
                           AND conname = \(SQLIdentifier.quote(statusCheckName).replacingOccurrences(of: "\"", with: "'"))
                           AND pg_get_constraintdef(oid) NOT LIKE '%parked%') THEN
                    ALTER TABLE \(table) DROP CONSTRAINT \(SQLIdentifier.quote(statusCheckName));
                    ALTER TABLE \(table) ADD CONSTRAINT \(SQLIdentifier.quote(statusCheckName))
                        CHECK (status IN ('applied', 'dead_lettered', 'parked'));
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

    /// PostgreSQL's name for the status column's CHECK constraint.
    private var statusCheckName: String {
        String((name.name + "_status_check").prefix(63))
    }

    private var indexName: String {
        String((table.replacingOccurrences(of: "\"", with: "").replacingOccurrences(of: ".", with: "_") + "_processed_at").prefix(63))
    }

    /// The statement that records the batch's events (for a pipeline); ``claimed(_:)`` reads its result: the ids
    /// that were not there yet, the ones to apply.
    func claim(_ entries: [(id: String, topic: String, partition: Int32, offset: Int64)]) -> PipelineStatement {
        PipelineStatement(claimStatement, [group, PostgresArray.literal(entries.map(\.id)), PostgresArray.literal(entries.map(\.topic)),
                                           PostgresArray.literal(entries.map { Int64($0.partition) }), PostgresArray.literal(entries.map(\.offset))])
    }

    /// The ids a ``claim(_:)`` inserted: the events that are new.
    static func claimed(_ result: QueryResult) -> Set<String> {
        Set(result.rows.compactMap { $0[0] })
    }

    /// Marks an event as dead-lettered, with why.
    func markDeadLettered(_ session: Session, id: String, error: String) throws {
        try session.execute("UPDATE \(table) SET status = 'dead_lettered', error = $3 WHERE consumer_group = $1 AND event_id = $2",
                            [group, id, String(error.prefix(2000))])
    }

    /// Marks an event as parked (its key waits for a release).
    func markParked(_ session: Session, id: String, error: String?) throws {
        try session.execute("UPDATE \(table) SET status = 'parked', error = $3 WHERE consumer_group = $1 AND event_id = $2",
                            [group, id, error.map { String($0.prefix(2000)) }])
    }

    /// Marks a parked event as applied (released).
    func markReleased(_ session: Session, id: String) throws {
        try session.execute("UPDATE \(table) SET status = 'applied', error = NULL, processed_at = now() WHERE consumer_group = $1 AND event_id = $2",
                            [group, id])
    }

    /// Deletes up to `limit` rows processed longer ago than `seconds`; returns how many.
    func sweep(_ session: Session, olderThanSeconds seconds: Int64, limit: Int = 1000) throws -> Int {
        try session.execute("""
            DELETE FROM \(table) WHERE ctid IN (
                SELECT ctid FROM \(table) WHERE consumer_group = $1 AND status <> 'parked' AND processed_at < now() - make_interval(secs => $2::double precision)
                LIMIT $3)
            """, [group, seconds, limit])
    }
}
