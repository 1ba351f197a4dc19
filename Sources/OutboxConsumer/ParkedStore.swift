import ConsumerSchema
import Foundation
import LibPQ
import RDKafka

/// The parked-events table: the one place that decides which keys are parked, and holds their events in order.
///
/// Schema (`tailgate_parked` by default, ``ConsumerConfiguration/parkedTable``; the definition is
/// `ConsumerTables.parkedDefinition`, which `tailgate status` reads against), one row per parked event:
///
/// ```sql
/// CREATE TABLE tailgate_parked (
///     consumer_group text NOT NULL,
///     topic text NOT NULL,
///     partition int NOT NULL,
///     "offset" bigint NOT NULL,            -- the event's offset: the order of a key's parked events
///     record_key text NOT NULL,            -- the Kafka key as UTF-8; 'event:<event_id>' for a record without a key
///     event_id text NOT NULL,
///     event_type text,
///     key_bytes bytea, value bytea,        -- the record itself, to apply it on release
///     headers jsonb NOT NULL DEFAULT '[]', -- [{"name": …, "value": base64 or null}, …]
///     record_timestamp timestamptz,
///     error text,                          -- why the key was parked: set on its first event, NULL behind it
///     release_requested_at timestamptz,    -- set by a release request; cleared when the release ran
///     parked_at timestamptz NOT NULL DEFAULT now(),
///     PRIMARY KEY (consumer_group, topic, partition, "offset"))
/// ```
///
/// A parked key is (consumer_group, topic, partition, record_key); its first row (lowest offset) carries the error.
/// `tailgate status` and `tailgate parked list` read it; only the consumer that owns the partition writes it, in the
/// batch's transaction, so parking, the inbox and the stored offsets change together.
struct ParkedStore: Sendable {
    /// One parked key of a partition.
    struct Key: Hashable, Sendable {
        var topic: String
        var partition: Int32
        var key: String
    }

    let table: String
    let tableName: QualifiedName
    let group: String

    /// The parked keys of some partitions; prepared once per connection.
    private let parkedKeysStatement: PreparedStatement
    /// Fails (division by zero) when any of the given keys is parked; prepared once per connection.
    private let noneParkedStatement: PreparedStatement

    init(table: QualifiedName, group: String) {
        self.table = SQLIdentifier.quoteQualified(table)
        self.tableName = table
        self.group = group
        self.parkedKeysStatement = PreparedStatement("""
            SELECT DISTINCT p.topic, p.partition::text AS partition, p.record_key
            FROM \(self.table) p JOIN unnest($2::text[], $3::int[]) AS a(topic, partition) USING (topic, partition)
            WHERE p.consumer_group = $1
            """)
        // A guard, not a read: in a pipeline nothing can look at a result before the statements after it run, so a
        // parked key must fail the transaction itself. The server logs the statement with its division_by_zero: the
        // comment says why that is expected.
        self.noneParkedStatement = PreparedStatement("""
            /* tailgate: fails when a key of the batch is parked; the batch is then applied claim first */
            SELECT 1 / (NOT EXISTS (
                SELECT FROM \(self.table) p JOIN unnest($2::text[], $3::int[], $4::text[]) AS k(topic, partition, record_key)
                    USING (topic, partition, record_key)
                WHERE p.consumer_group = $1))::int AS none_parked
            """)
    }

    /// The parked key of a record: its key as text, or one of its own when it has none (nothing queues behind it).
    static func key(of record: ConsumerRecord, eventID: String) -> Key {
        Key(topic: record.topic, partition: record.partition,
            key: record.key.map { String(decoding: $0, as: UTF8.self) } ?? "event:\(eventID)")
    }

    func createStatements() -> [String] {
        [ConsumerTables.parkedDefinition(tableName)]
    }

    /// The statement that reads the parked keys among `partitions` (for a pipeline); the static `parkedKeys(_:)`
    /// reads its result.
    func parkedKeys(_ partitions: Set<TopicPartition>) -> PipelineStatement {
        let sorted = partitions.sorted()
        return PipelineStatement(parkedKeysStatement, [group, PostgresArray.literal(sorted.map(\.topic)),
                                                       PostgresArray.literal(sorted.map { Int64($0.partition) })])
    }

    /// The statement that fails the transaction (with division_by_zero) when any of `keys` is parked (for a
    /// pipeline that cannot read ``parkedKeys(_:)`` before its later statements run).
    func failIfAnyParked(_ keys: Set<Key>) -> PipelineStatement {
        let sorted = keys.sorted { ($0.topic, $0.partition, $0.key) < ($1.topic, $1.partition, $1.key) }
        return PipelineStatement(noneParkedStatement, [group, PostgresArray.literal(sorted.map(\.topic)),
                                                       PostgresArray.literal(sorted.map { Int64($0.partition) }),
                                                       PostgresArray.literal(sorted.map(\.key))])
    }

    /// The keys a ``parkedKeys(_:)`` statement returned.
    static func parkedKeys(_ result: QueryResult) -> Set<Key> {
        Set(result.rows.compactMap { row in
            guard let topic = row["topic"], let partition = row["partition"].flatMap({ Int32($0) }), let key = row["record_key"] else { return nil }
            return Key(topic: topic, partition: partition, key: key)
        })
    }

    /// Parks one event under `key`; `error` is set for the key's first event only.
    func park(_ session: Session, _ record: ConsumerRecord, eventID: String, key: Key, error: String?) throws {
        try session.execute("""
            INSERT INTO \(table) (consumer_group, topic, partition, "offset", record_key, event_id, event_type, key_bytes, value,
                                  headers, record_timestamp, error)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, to_timestamp($11::double precision / 1000), $12)
            ON CONFLICT DO NOTHING
            """, [group, record.topic, Int(record.partition), record.offset, key.key, eventID, record.header("event_type")?.stringValue,
                  record.key, record.value, Self.encodeHeaders(record.headers), record.timestampMilliseconds, error.map { String($0.prefix(2000)) }])
    }

    /// Parked keys of `partitions` whose release was requested.
    func releaseRequests(_ session: Session, _ partitions: Set<TopicPartition>) throws -> [Key] {
        guard !partitions.isEmpty else { return [] }
        let sorted = partitions.sorted()
        let rows = try session.query("""
            SELECT DISTINCT p.topic, p.partition::text AS partition, p.record_key
            FROM \(table) p JOIN unnest($2::text[], $3::int[]) AS a(topic, partition) USING (topic, partition)
            WHERE p.consumer_group = $1 AND p.release_requested_at IS NOT NULL
            """, [group, PostgresArray.literal(sorted.map(\.topic)), PostgresArray.literal(sorted.map { Int64($0.partition) })]).rows
        return rows.compactMap { row in
            guard let topic = row["topic"], let partition = row["partition"].flatMap({ Int32($0) }), let key = row["record_key"] else { return nil }
            return Key(topic: topic, partition: partition, key: key)
        }.sorted { ($0.topic, $0.partition, $0.key) < ($1.topic, $1.partition, $1.key) }
    }

    /// The parked events of `key`, in offset order (numeric: the poison head first, whatever the offsets' widths),
    /// locked until the transaction ends.
    func events(_ session: Session, of key: Key) throws -> [(record: ConsumerRecord, eventID: String)] {
        // `ORDER BY p."offset"` names the bigint column: an unqualified "offset" would be the text output column.
        let rows = try session.query("""
            SELECT p."offset"::text AS "offset", p.event_id, p.key_bytes, p.value, p.headers::text AS headers,
                   (extract(epoch FROM p.record_timestamp) * 1000)::bigint::text AS ts
            FROM \(table) p WHERE p.consumer_group = $1 AND p.topic = $2 AND p.partition = $3 AND p.record_key = $4
            ORDER BY p."offset" FOR UPDATE
            """, [group, key.topic, Int(key.partition), key.key]).rows
        return rows.compactMap { row in
            guard let offset = row["offset"].flatMap({ Int64($0) }), let eventID = row["event_id"] else { return nil }
            let record = ConsumerRecord(topic: key.topic, partition: key.partition, offset: offset,
                                        key: row["key_bytes"].flatMap(Self.decodeBytea), value: row["value"].flatMap(Self.decodeBytea),
                                        headers: Self.decodeHeaders(row["headers"] ?? "[]"), timestampMilliseconds: row["ts"].flatMap { Int64($0) })
            return (record, eventID)
        }
    }

    /// Removes one released event.
    func remove(_ session: Session, _ key: Key, offset: Int64) throws {
        try session.execute("""
            DELETE FROM \(table) WHERE consumer_group = $1 AND topic = $2 AND partition = $3 AND "offset" = $4
            """, [group, key.topic, Int(key.partition), offset])
    }

    /// After a release stopped at `offset` (the event failed again): it heads the key now, with the new error, and
    /// the request is done.
    func stopRelease(_ session: Session, _ key: Key, at offset: Int64, error: String) throws {
        try session.execute("""
            UPDATE \(table) SET release_requested_at = NULL,
                error = CASE WHEN "offset" = $5 THEN $6 ELSE error END
            WHERE consumer_group = $1 AND topic = $2 AND partition = $3 AND record_key = $4
            """, [group, key.topic, Int(key.partition), key.key, offset, String(error.prefix(2000))])
    }

    /// How many keys are parked and how long the oldest has been.
    func summary(_ session: Session) throws -> (keys: Int, events: Int, oldestSeconds: Double) {
        let row = try session.query("""
            SELECT count(DISTINCT (topic, partition, record_key))::text AS keys, count(*)::text AS events,
                   COALESCE(extract(epoch FROM now() - min(parked_at)), 0)::text AS oldest
            FROM \(table) WHERE consumer_group = $1
            """, [group]).first
        return (row?.int("keys") ?? 0, row?.int("events") ?? 0, row?["oldest"].flatMap { Double($0) } ?? 0)
    }

    static func encodeHeaders(_ headers: [KafkaHeader]) -> String {
        let array: [[String: Any]] = headers.map { header in
            ["name": header.name, "value": header.value.map { Data($0).base64EncodedString() } ?? NSNull()]
        }
        let data = (try? JSONSerialization.data(withJSONObject: array)) ?? Data("[]".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    static func decodeHeaders(_ json: String) -> [KafkaHeader] {
        guard let array = (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [[String: Any]] else { return [] }
        return array.map { entry in
            KafkaHeader(name: entry["name"] as? String ?? "",
                        value: (entry["value"] as? String).flatMap { Data(base64Encoded: $0) }.map { [UInt8]($0) })
        }
    }

    /// A bytea in PostgreSQL's text output (`\x0102…`).
    static func decodeBytea(_ text: String) -> [UInt8]? {
        text.hasPrefix("\\x") ? ByteaText.decode(text.utf8) : Array(text.utf8)
    }
}
