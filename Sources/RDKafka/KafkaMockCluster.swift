import Foundation
/// An in-memory Kafka cluster for tests and `tailgate dev-kafka`: librdkafka's mock cluster.
///
/// It speaks the real Kafka protocol on random loopback ports and supports fault injection. It is for
/// development only: nothing is durable, and librdkafka 2.0.2's mock keeps at most about 5 MiB or 100,000
/// message sets per partition (dropping the oldest silently), does not de-duplicate idempotent retries, and
/// does not move partition leaders when a broker goes down.
public final class KafkaMockCluster: Sendable {
    private let handle: MockClusterHandle

    /// Kafka protocol API keys that faults can target.
    public static let apiKeys: [String: Int16] = [
        "Produce": 0, "Fetch": 1, "ListOffsets": 2, "Metadata": 3, "OffsetCommit": 8, "OffsetFetch": 9,
        "FindCoordinator": 10, "JoinGroup": 11, "Heartbeat": 12, "LeaveGroup": 13, "SyncGroup": 14,
        "ApiVersions": 18, "InitProducerId": 22,
    ]

    /// Starts a cluster with `brokers` brokers (ids 1…N).
    ///
    /// - Throws: ``KafkaError``.
    public init(brokers: Int = 3, log: @escaping KafkaLogHandler = defaultKafkaLogHandler) throws(KafkaError) {
        handle = try MockClusterHandle(brokers: brokers, log: log)
    }

    /// The `bootstrap.servers` value for clients.
    public var bootstrapServers: String { handle.bootstrapServers }

    /// Creates a topic (the mock has no admin API; unknown topics are auto-created with 4 partitions).
    ///
    /// - Throws: ``KafkaError``.
    public func createTopic(_ name: String, partitions: Int, replicationFactor: Int = 1) throws(KafkaError) {
        try handle.createTopic(name, partitions: partitions, replicationFactor: replicationFactor)
    }

    /// Takes a broker down: its connections close and it refuses new ones (partition leadership stays).
    ///
    /// - Throws: ``KafkaError``.
    public func setBrokerDown(_ id: Int32) throws(KafkaError) {
        // Going down is when librdkafka 2.0.2 closes the listener and binds its port again at once (for the way
        // back up): never while a child process is being spawned (see `listenerGate`).
        Self.listenerGate.lock()
        defer { Self.listenerGate.unlock() }
        try handle.setBroker(id, up: false)
    }

    /// Brings a broker back up.
    ///
    /// - Throws: ``KafkaError``.
    public func setBrokerUp(_ id: Int32) throws(KafkaError) {
        Self.listenerGate.lock()
        defer { Self.listenerGate.unlock() }
        try handle.setBroker(id, up: true)
    }

    /// Held while a broker changes state, and by whoever starts child processes in this process.
    ///
    /// librdkafka 2.0.2's mock, taking a broker down, closes its listener and at once binds a new socket to the
    /// same port (kept for the way back up, when it starts listening again), and aborts the whole process if that
    /// bind fails (`rdkafka_mock.c:2100`, "Failed to create mock broker listener"; the log says EADDRINUSE). A child
    /// that is being spawned holds a copy of every descriptor until it execs, the listener included, and a copy
    /// keeps the port listening after the broker closed its own: a bind at that moment fails. `posix_spawn`
    /// returns only after the child has exec'd (and the listener is close-on-exec): a spawner that holds this
    /// gate around it never overlaps a broker going down.
    package static let listenerGate = NSLock()

    /// Moves a partition's leadership to `broker`.
    ///
    /// - Throws: ``KafkaError``.
    public func setLeader(topic: String, partition: Int32, broker: Int32) throws(KafkaError) {
        try handle.setLeader(topic: topic, partition: partition, broker: broker)
    }

    /// Makes the next requests of `apiKey` fail with `errors`, in order.
    ///
    /// - Throws: ``KafkaError``.
    public func pushRequestErrors(apiKey: Int16, errors: [Int32]) throws(KafkaError) {
        try handle.pushRequestErrors(apiKey: apiKey, errors: errors)
    }

    /// The numeric code of a librdkafka error name (e.g. `NOT_LEADER_FOR_PARTITION`), or of a number as text.
    public static func errorCode(named name: String) -> Int32? {
        Int32(name) ?? MockClusterHandle.errorCode(named: name)
    }

    /// Shuts the cluster down.
    public func close() {
        handle.destroy()
    }
}
