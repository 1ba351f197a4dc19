import LibPQ
import RDKafka

/// The offsets table: where each partition resumes. The one place that decides which offsets may be stored.
struct OffsetStore: Sendable {
    let table: String
    let group: String

    init(table: QualifiedName, group: String) {
        self.table = SQLIdentifier.quoteQualified(table)
        self.group = group
    }

    /// The stored next offsets of `partitions` (absent when none is stored).
    func load(_ session: Session, _ partitions: [TopicPartition]) throws -> [TopicPartition: Int64] {
        guard !partitions.isEmpty else { return [:] }
        let rows = try session.query("""
            SELECT o.topic, o.partition::text AS partition, o.next_offset::text AS next_offset
            FROM \(table) o JOIN unnest($2::text[], $3::int[]) AS p(topic, partition) USING (topic, partition)
            WHERE o.consumer_group = $1
            """, [group, PostgresArray.literal(partitions.map(\.topic)), PostgresArray.literal(partitions.map { Int64($0.partition) })]).rows
        var offsets: [TopicPartition: Int64] = [:]
        for row in rows {
            if let topic = row["topic"], let partition = row["partition"].flatMap({ Int32($0) }), let next = row["next_offset"].flatMap({ Int64($0) }) {
                offsets[TopicPartition(topic: topic, partition: partition)] = next
            }
        }
        return offsets
    }

    /// Stores each partition's next offset, never moving one backwards: an instance that lost a partition cannot
    /// overwrite the position of its newer owner.
    func store(_ session: Session, _ nextOffsets: [TopicPartition: Int64]) throws {
        guard !nextOffsets.isEmpty else { return }
        let entries = nextOffsets.sorted { $0.key < $1.key }
        try session.execute("""
            INSERT INTO \(table) AS o (consumer_group, topic, partition, next_offset)
            SELECT $1, e.topic, e.partition, e.next_offset FROM unnest($2::text[], $3::int[], $4::bigint[]) AS e(topic, partition, next_offset)
            ON CONFLICT (consumer_group, topic, partition)
            DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now() WHERE o.next_offset < EXCLUDED.next_offset
            """, [group, PostgresArray.literal(entries.map(\.key.topic)), PostgresArray.literal(entries.map { Int64($0.key.partition) }),
                  PostgresArray.literal(entries.map(\.value))])
    }
}
