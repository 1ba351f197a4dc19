import LibPQ
import RDKafka

/// The offsets table, and every decision about offsets: which next offset a batch stores, where an assigned
/// partition starts, and when Kafka's committed copy stands in for the database's.
///
/// The decisions are pure (``nextOffsets(after:)``, ``startOffsets(for:stored:)``); only ``load(_:_:)`` and
/// ``store(_:_:)`` touch the database. Nothing else in the consumer computes an offset.
struct OffsetStore: Sendable {
    let table: String
    let group: String
    /// Where a partition with no stored offset starts.
    let defaultStart: StartOffset
    /// Stores next offsets, never moving one backwards; prepared once per connection.
    private let storeStatement: PreparedStatement

    init(table: QualifiedName, group: String, defaultStart: StartOffset) {
        self.table = SQLIdentifier.quoteQualified(table)
        self.group = group
        self.defaultStart = defaultStart
        self.storeStatement = PreparedStatement("""
            INSERT INTO \(self.table) AS o (consumer_group, topic, partition, next_offset)
            SELECT $1, e.topic, e.partition, e.next_offset FROM unnest($2::text[], $3::int[], $4::bigint[]) AS e(topic, partition, next_offset)
            ON CONFLICT (consumer_group, topic, partition)
            DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now() WHERE o.next_offset < EXCLUDED.next_offset
            """)
    }

    /// Each partition's next offset once `records` are applied: one past the highest offset seen.
    static func nextOffsets(after records: [ConsumerRecord]) -> [TopicPartition: Int64] {
        var next: [TopicPartition: Int64] = [:]
        for record in records { next[record.topicPartition] = max(next[record.topicPartition] ?? 0, record.offset + 1) }
        return next
    }

    /// Where each of `partitions` starts when assigned.
    ///
    /// - Parameter stored: The database's next offsets, or `nil` when the database could not be read. Then every
    ///   partition starts at Kafka's committed copy, which mirrors the database's and is never ahead of it: at worst
    ///   events are read again, and the inbox skips them. "Never ahead" holds because offsets are mirrored only
    ///   after a ``durabilityBarrier(_:)`` (see ``MirrorSchedule``), so a crash keeps every commit Kafka has
    ///   mirrored even under `synchronous_commit=off`. A failover to an asynchronous standby can lose such commits;
    ///   a member that keeps its partitions goes back by itself (``rewinds(known:stored:)``), but one assigned a
    ///   partition while the database cannot be read starts at Kafka's copy, past them: use synchronous replication
    ///   for a service database that fails over and must never miss an event.
    func startOffsets(for partitions: [TopicPartition], stored: [TopicPartition: Int64]?) -> [TopicPartition: StartOffset] {
        guard let stored else { return Dictionary(uniqueKeysWithValues: partitions.map { ($0, StartOffset.committed) }) }
        return Dictionary(uniqueKeysWithValues: partitions.map { ($0, stored[$0].map { StartOffset.offset($0) } ?? defaultStart) })
    }

    /// Where partitions must go back to because the database lost commits: each partition whose stored next offset
    /// (`stored`, read from a new connection) is below what this member knows the database held (`known`: loaded
    /// at assignment, raised by every committed batch) starts again at the stored offset, or at ``defaultStart``
    /// when none is stored any more. The records in between were applied in transactions the database no longer
    /// has (a failover to a standby that had not received them, a crash under `synchronous_commit=off`); applying
    /// them again is exactly once, since their inbox rows went with those transactions.
    func rewinds(known: [TopicPartition: Int64], stored: [TopicPartition: Int64]) -> [TopicPartition: StartOffset] {
        var rewinds: [TopicPartition: StartOffset] = [:]
        for (partition, held) in known {
            if let now = stored[partition] {
                if now < held { rewinds[partition] = .offset(now) }
            } else {
                rewinds[partition] = defaultStart
            }
        }
        return rewinds
    }

    /// Makes every commit before it durable, whatever the session's `synchronous_commit`: one transaction of its own
    /// (it takes a transaction id, so it writes a commit record) that waits for the WAL flush, which covers every
    /// earlier commit record. One round trip and one flush, however many batches it covers.
    func durabilityBarrier(_ session: Session) throws {
        try session.query("SELECT set_config('synchronous_commit', 'on', true), txid_current()")
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

    /// The statement that stores each partition's next offset (for a pipeline, in the batch's transaction), never
    /// moving one backwards: an instance that lost a partition cannot overwrite the position of its newer owner.
    /// `nil` when there is nothing to store.
    ///
    /// The batch's transaction may run it before its handlers: the offsets follow from the records alone, and they
    /// commit or roll back with everything else.
    func store(_ nextOffsets: [TopicPartition: Int64]) -> PipelineStatement? {
        guard !nextOffsets.isEmpty else { return nil }
        let entries = nextOffsets.sorted { $0.key < $1.key }
        return PipelineStatement(storeStatement, [group, PostgresArray.literal(entries.map(\.key.topic)),
                                                  PostgresArray.literal(entries.map { Int64($0.key.partition) }),
                                                  PostgresArray.literal(entries.map(\.value))])
    }
}
