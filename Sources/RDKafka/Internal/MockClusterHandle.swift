import CLibRDKafka

/// librdkafka's experimental mock cluster (`rdkafka_mock.h`): real Kafka protocol on loopback, in this process.
///
/// Owns the cluster and the producer handle that hosts it; `destroy()` frees both, cluster first.
/// `@unchecked Sendable`: the mock API is thread-safe (it posts operations to the cluster's own thread).
final class MockClusterHandle: @unchecked Sendable {
    private let host: RDKafkaClient
    private var cluster: OpaquePointer?
    let bootstrapServers: String

    init(brokers: Int, log: @escaping KafkaLogHandler) throws(KafkaError) {
        let callbacks = RDKafkaClient.Callbacks(clientName: "tailgate-mock-cluster")
        callbacks.log = log
        // The mock's broker sockets take their options from this handle: TCP_NODELAY like a real broker's, or each
        // second response on a connection waits ~40 ms for the client's delayed TCP acknowledgement.
        host = try RDKafkaClient(type: .producer, properties: ["socket.nagle.disable": "true"], callbacks: callbacks)
        guard let cluster = rd_kafka_mock_cluster_new(host.handle, Int32(brokers)) else {
            host.destroy()
            throw KafkaError(kind: .configuration, codeName: "MOCK", message: "librdkafka could not create a mock cluster")
        }
        self.cluster = cluster
        bootstrapServers = String(cString: rd_kafka_mock_cluster_bootstraps(cluster))
    }

    deinit {
        destroy()
    }

    func destroy() {
        if let cluster { rd_kafka_mock_cluster_destroy(cluster) }
        cluster = nil
        host.destroy()
    }

    private func check(_ result: rd_kafka_resp_err_t, _ what: String) throws(KafkaError) {
        if result != RD_KAFKA_RESP_ERR_NO_ERROR {
            var error = RDKafkaClient.error(result, client: nil)
            error.message = "\(what): \(error.message)"
            throw error
        }
    }

    private func live() throws(KafkaError) -> OpaquePointer {
        guard let cluster else { throw KafkaError(kind: .closed, codeName: "CLOSED", message: "the mock cluster was closed") }
        return cluster
    }

    func createTopic(_ name: String, partitions: Int, replicationFactor: Int) throws(KafkaError) {
        try check(rd_kafka_mock_topic_create(try live(), name, Int32(partitions), Int32(replicationFactor)), "create topic \(name)")
    }

    func setBroker(_ id: Int32, up: Bool) throws(KafkaError) {
        let cluster = try live()
        try check(up ? rd_kafka_mock_broker_set_up(cluster, id) : rd_kafka_mock_broker_set_down(cluster, id), "broker \(id)")
    }

    func setLeader(topic: String, partition: Int32, broker: Int32) throws(KafkaError) {
        try check(rd_kafka_mock_partition_set_leader(try live(), topic, partition, broker), "leader of \(topic)[\(partition)]")
    }

    func pushRequestErrors(apiKey: Int16, errors: [Int32]) throws(KafkaError) {
        let cluster = try live()
        let codes = errors.map { rd_kafka_resp_err_t(rawValue: $0) }
        codes.withUnsafeBufferPointer { rd_kafka_mock_push_request_errors_array(cluster, apiKey, codes.count, $0.baseAddress) }
    }

    /// The numeric code of a librdkafka error name (`NOT_LEADER_FOR_PARTITION`, `_TRANSPORT`, …).
    static func errorCode(named name: String) -> Int32? {
        var descriptions: UnsafePointer<rd_kafka_err_desc>?
        var count = 0
        rd_kafka_get_err_descs(&descriptions, &count)
        guard let descriptions else { return nil }
        let wanted = name.uppercased()
        for index in 0..<count {
            let description = descriptions[index]
            if let entry = description.name, String(cString: entry) == wanted { return description.code.rawValue }
        }
        return nil
    }
}
