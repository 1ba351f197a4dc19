import LibPQ

/// The tables an `OutboxConsumer` keeps in its service's database: their names and their definitions.
///
/// The one place both halves take them from: the consumer creates and writes the tables, `tailgate status`
/// (``ConsumerGroupStatus`` in `OutboxConnector`) reads them. A column or status renamed here is renamed for both.
package struct ConsumerTables: Sendable, Hashable {
    /// The offsets table: one row per (consumer group, topic, partition) with the next offset to apply.
    package var offsets: QualifiedName
    /// The inbox table: one row per event a consumer group applied, dead-lettered or parked.
    package var inbox: QualifiedName
    /// The parked events table: one row per event waiting behind its key's first failure.
    package var parked: QualifiedName

    /// `tailgate_offsets`, the consumer's default offsets table.
    package static let defaultOffsets = QualifiedName(schema: nil, name: "tailgate_offsets")
    /// `tailgate_inbox`, the consumer's default inbox table.
    package static let defaultInbox = QualifiedName(schema: nil, name: "tailgate_inbox")
    /// `tailgate_parked`, the consumer's default parked events table.
    package static let defaultParked = QualifiedName(schema: nil, name: "tailgate_parked")
    /// The consumer's defaults: `tailgate_offsets`, `tailgate_inbox` and `tailgate_parked`.
    package static let defaults = ConsumerTables(offsets: defaultOffsets, inbox: defaultInbox, parked: defaultParked)

    /// Creates table names.
    package init(offsets: QualifiedName, inbox: QualifiedName, parked: QualifiedName = defaultParked) {
        self.offsets = offsets
        self.inbox = inbox
        self.parked = parked
    }

    /// What the inbox's `status` column says about an event.
    package enum InboxStatus: String, CaseIterable, Sendable {
        /// The handler applied it (or a release did).
        case applied
        /// It was sent to the dead-letter topic.
        case deadLettered = "dead_lettered"
        /// Its key is parked; it waits in the parked events table.
        case parked

        /// The value as an SQL literal, e.g. `'dead_lettered'`.
        package var literal: String { "'\(rawValue)'" }

        /// The CHECK constraint's condition on `status`.
        static var check: String { "status IN (\(allCases.map(\.literal).joined(separator: ", ")))" }
    }

    /// `CREATE TABLE IF NOT EXISTS` for the inbox.
    package var inboxDefinition: String {
        """
        CREATE TABLE IF NOT EXISTS \(SQLIdentifier.quoteQualified(inbox)) (
            consumer_group text NOT NULL,
            event_id text NOT NULL,
            topic text NOT NULL,
            partition int NOT NULL,
            "offset" bigint NOT NULL,
            status text NOT NULL DEFAULT \(InboxStatus.applied.literal) CHECK (\(InboxStatus.check)),
            error text,
            processed_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (consumer_group, event_id))
        """
    }

    /// PostgreSQL's name for the inbox's CHECK constraint on `status` (version 1 inboxes lack the `parked` value).
    package var inboxStatusCheckName: String {
        String((inbox.name + "_status_check").prefix(63))
    }

    /// The inbox's CHECK constraint on `status`, as `ADD CONSTRAINT` writes it.
    package var inboxStatusCheck: String { "CHECK (\(InboxStatus.check))" }

    /// `CREATE TABLE IF NOT EXISTS` for the offsets table.
    package var offsetsDefinition: String {
        """
        CREATE TABLE IF NOT EXISTS \(SQLIdentifier.quoteQualified(offsets)) (
            consumer_group text NOT NULL,
            topic text NOT NULL,
            partition int NOT NULL,
            next_offset bigint NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (consumer_group, topic, partition))
        """
    }

    /// `CREATE TABLE IF NOT EXISTS` for the parked events table (see `ParkedStore` for what each column holds).
    package var parkedDefinition: String { Self.parkedDefinition(parked) }

    /// `CREATE TABLE IF NOT EXISTS` for a parked events table named `table`.
    package static func parkedDefinition(_ table: QualifiedName) -> String {
        """
        CREATE TABLE IF NOT EXISTS \(SQLIdentifier.quoteQualified(table)) (
            consumer_group text NOT NULL,
            topic text NOT NULL,
            partition int NOT NULL,
            "offset" bigint NOT NULL,
            record_key text NOT NULL,
            event_id text NOT NULL,
            event_type text,
            key_bytes bytea,
            value bytea,
            headers jsonb NOT NULL DEFAULT '[]',
            record_timestamp timestamptz,
            error text,
            release_requested_at timestamptz,
            parked_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (consumer_group, topic, partition, "offset"))
        """
    }
}
