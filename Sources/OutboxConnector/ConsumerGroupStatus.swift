import Foundation

/// One consumer group's progress, as its own database records it (the `OutboxConsumer` offsets and inbox tables)
/// against the end of each Kafka partition: the consumer half of `tailgate status`.
///
/// The tables are read by their documented layout (README, "The consumer library"), so the status command needs no
/// consumer code: `tailgate_offsets(consumer_group, topic, partition, next_offset, updated_at)` and
/// `tailgate_inbox(consumer_group, event_id, …, status)` and, where the consumer parks keys,
/// `tailgate_parked(consumer_group, topic, partition, "offset", record_key, …)`.
package struct ConsumerGroupStatus: Sendable, Hashable, Codable {
    /// One partition the group reads.
    package struct Partition: Sendable, Hashable, Codable {
        /// The topic.
        package var topic: String
        /// The partition.
        package var partition: Int32
        /// The next offset the group will apply (its stored offset); `nil` when it never stored one.
        package var storedOffset: Int64?
        /// Kafka's end offset (the next offset to be written); `nil` when Kafka could not be asked.
        package var endOffset: Int64?
        /// The first offset still in Kafka's log.
        package var startOffset: Int64?
        /// When the stored offset last moved.
        package var updatedAt: Date?

        /// Creates a value.
        package init(topic: String, partition: Int32, storedOffset: Int64? = nil, endOffset: Int64? = nil, startOffset: Int64? = nil, updatedAt: Date? = nil) {
            self.topic = topic
            self.partition = partition
            self.storedOffset = storedOffset
            self.endOffset = endOffset
            self.startOffset = startOffset
            self.updatedAt = updatedAt
        }

        /// Records in Kafka the group has not applied: end − stored (from the log start when nothing is stored).
        package var lag: Int64? {
            guard let endOffset else { return nil }
            return max(0, endOffset - (storedOffset ?? startOffset ?? 0))
        }
    }

    /// The consumer database, password masked.
    package var database: String
    /// The consumer group.
    package var group: String
    /// Its partitions, by topic and partition.
    package var partitions: [Partition]
    /// Events of the group marked `dead_lettered` in its inbox (within the inbox's retention).
    package var deadLettered: Int
    /// Keys (topic, partition, key) parked behind a failing event (`tailgate_parked`); `nil` where the database has no
    /// parked table.
    package var parked: Int?
    /// Why Kafka's end offsets are missing, if they are.
    package var kafkaError: String?

    /// Creates a value.
    package init(database: String, group: String, partitions: [Partition], deadLettered: Int, parked: Int? = nil, kafkaError: String? = nil) {
        self.database = database
        self.group = group
        self.partitions = partitions
        self.deadLettered = deadLettered
        self.parked = parked
        self.kafkaError = kafkaError
    }

    /// The sum of the partitions' lag; `nil` when Kafka could not be asked.
    package var totalLag: Int64? {
        var total: Int64 = 0
        for partition in partitions {
            guard let lag = partition.lag else { return nil }
            total += lag
        }
        return total
    }

    /// The last time any of its stored offsets moved.
    package var lastProgress: Date? { partitions.compactMap(\.updatedAt).max() }
}
