/// A header of a Kafka record: a name and optional bytes. Names may repeat; order is kept.
public struct KafkaHeader: Hashable, Sendable {
    /// The header name.
    public var name: String
    /// The value, or `nil` for a null header.
    public var value: [UInt8]?

    /// Creates a header with bytes.
    public init(name: String, value: [UInt8]?) {
        self.name = name
        self.value = value
    }

    /// Creates a header with a UTF-8 string value.
    public init(name: String, string: String) {
        self.init(name: name, value: Array(string.utf8))
    }

    /// The value as UTF-8 text, or `nil` for null or invalid UTF-8.
    public var stringValue: String? { value.flatMap { String(validating: $0, as: UTF8.self) } }
}

/// A record to produce.
public struct KafkaRecord: Hashable, Sendable {
    /// The topic.
    public var topic: String
    /// The partition, or `nil` to let the partitioner choose from the key.
    public var partition: Int32?
    /// The key; records with the same key go to the same partition and stay in order.
    public var key: [UInt8]?
    /// The value.
    public var value: [UInt8]?
    /// The headers, in order.
    public var headers: [KafkaHeader]

    /// Creates a record.
    public init(topic: String, partition: Int32? = nil, key: [UInt8]?, value: [UInt8]?, headers: [KafkaHeader] = []) {
        self.topic = topic
        self.partition = partition
        self.key = key
        self.value = value
        self.headers = headers
    }

    /// The approximate size on the wire, for limits such as `message.max.bytes`.
    public var approximateSize: Int {
        (key?.count ?? 0) + (value?.count ?? 0) + headers.reduce(0) { $0 + $1.name.utf8.count + ($1.value?.count ?? 0) + 8 } + 64
    }
}
