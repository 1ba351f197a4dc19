import Dispatch

/// Reads partitions' end offsets from a cluster, for lag reports (`tailgate status`): how far each partition's
/// log reaches, independent of any consumer group.
///
/// It joins no group and consumes nothing. Its blocking calls run on its own serial queue, never on the
/// concurrency pool.
public final class KafkaWatermarks: Sendable {
    /// A partition's offsets.
    public struct Offsets: Sendable, Hashable {
        /// The first offset still in the log.
        public var low: Int64
        /// The offset the next record will get (the log end offset).
        public var high: Int64
    }

    private let client: RDKafkaClient
    private let queue = DispatchQueue(label: "tailgate.kafka.watermarks")

    /// Creates a reader.
    ///
    /// - Parameter properties: librdkafka properties (`bootstrap.servers`, TLS, SASL…). `group.id` is not needed.
    /// - Throws: ``KafkaError`` of kind `configuration` naming a bad property.
    public init(properties: [String: String], log: @escaping KafkaLogHandler = defaultKafkaLogHandler) throws(KafkaError) {
        let callbacks = RDKafkaClient.Callbacks(clientName: properties["client.id"] ?? "tailgate-status")
        callbacks.log = log
        var properties = properties
        properties["group.id"] = properties["group.id"] ?? "tailgate-status"
        properties["enable.auto.commit"] = "false"
        client = try RDKafkaClient(type: .consumer, properties: properties, callbacks: callbacks)
    }

    deinit {
        client.destroy()
    }

    /// Every partition of `topic` with its offsets.
    ///
    /// - Parameter timeout: How long each request to the cluster may take.
    /// - Throws: ``KafkaError``: the cluster did not answer in time, or the topic does not exist.
    public func offsets(topic: String, timeout: Duration = .seconds(10)) async throws(KafkaError) -> [TopicPartition: Offsets] {
        let client = self.client
        let milliseconds = KafkaProducer.milliseconds(timeout)
        let result: Result<[TopicPartition: Offsets], KafkaError> = await withCheckedContinuation { continuation in
            queue.async {
                do throws(KafkaError) {
                    var answer: [TopicPartition: Offsets] = [:]
                    let count = try client.partitionCount(topic: topic, milliseconds: milliseconds)
                    for partition in 0..<count {
                        let topicPartition = TopicPartition(topic: topic, partition: partition)
                        let (low, high) = try client.queryWatermarks(topicPartition, milliseconds: milliseconds)
                        answer[topicPartition] = Offsets(low: low, high: high)
                    }
                    continuation.resume(returning: .success(answer))
                } catch {
                    continuation.resume(returning: .failure(error))
                }
            }
        }
        return try result.get()
    }
}
