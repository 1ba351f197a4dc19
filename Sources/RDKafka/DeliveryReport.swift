/// The fate of one produced record, reported by the producer's poll thread.
public struct DeliveryReport: Hashable, Sendable {
    /// The caller's token given to ``KafkaProducer/send(_:token:)``.
    public var token: UInt64
    /// The topic.
    public var topic: String
    /// The partition it went to (-1 when it was never assigned one).
    public var partition: Int32
    /// Its offset, when the broker reported one; `nil` e.g. for a record the broker saw as a duplicate.
    public var offset: Int64?
    /// `nil` when the record was acknowledged by all in-sync replicas; otherwise why it was not.
    public var error: KafkaError?

    /// Creates a report.
    public init(token: UInt64, topic: String, partition: Int32, offset: Int64?, error: KafkaError?) {
        self.token = token
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.error = error
    }

    /// The record was acknowledged.
    public var isDelivered: Bool { error == nil }
}
