/// A partition of a topic.
public struct TopicPartition: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The topic.
    public var topic: String
    /// The partition number.
    public var partition: Int32

    /// Creates a topic partition.
    public init(topic: String, partition: Int32) {
        self.topic = topic
        self.partition = partition
    }

    public var description: String { "\(topic)[\(partition)]" }

    public static func < (lhs: TopicPartition, rhs: TopicPartition) -> Bool {
        (lhs.topic, lhs.partition) < (rhs.topic, rhs.partition)
    }
}

/// Where a consumer starts reading an assigned partition.
public enum StartOffset: Hashable, Sendable {
    /// At this offset (the next record to read).
    case offset(Int64)
    /// At the oldest record the broker keeps.
    case beginning
    /// After the newest record.
    case end
    /// At the offset committed to Kafka for the group, else per `auto.offset.reset`.
    case committed
}
