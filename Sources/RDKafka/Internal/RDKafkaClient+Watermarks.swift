import CLibRDKafka

extension RDKafkaClient {
    /// The number of partitions of `topic`, asking the cluster and waiting up to `milliseconds` (blocking).
    ///
    /// - Throws: ``KafkaError``: the request's error, or the topic's (`UNKNOWN_TOPIC_OR_PART` for a topic that does
    ///   not exist).
    func partitionCount(topic: String, milliseconds: Int32) throws(KafkaError) -> Int32 {
        guard let topicHandle = rd_kafka_topic_new(handle, topic, nil) else {
            throw KafkaError(kind: .configuration, codeName: "INVALID_ARG", message: "cannot use topic name '\(topic)'")
        }
        defer { rd_kafka_topic_destroy(topicHandle) }
        var metadata: UnsafePointer<rd_kafka_metadata>?
        let result = rd_kafka_metadata(handle, 0, topicHandle, &metadata, milliseconds)
        defer { if let metadata { rd_kafka_metadata_destroy(metadata) } }
        guard result == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else { throw Self.error(result, client: handle) }
        guard metadata.pointee.topic_cnt > 0 else {
            throw KafkaError(kind: .permanent, codeName: "UNKNOWN_TOPIC_OR_PART", message: "no metadata for topic '\(topic)'")
        }
        let described = metadata.pointee.topics[0]
        guard described.err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw Self.error(described.err, client: handle) }
        return described.partition_cnt
    }

    /// A partition's low and high watermarks (first offset, next offset to be written), asked of its leader and
    /// waited for up to `milliseconds` (blocking).
    ///
    /// - Throws: ``KafkaError``.
    func queryWatermarks(_ partition: TopicPartition, milliseconds: Int32) throws(KafkaError) -> (low: Int64, high: Int64) {
        var low: Int64 = -1, high: Int64 = -1
        let result = rd_kafka_query_watermark_offsets(handle, partition.topic, partition.partition, &low, &high, milliseconds)
        guard result == RD_KAFKA_RESP_ERR_NO_ERROR else { throw Self.error(result, client: handle) }
        return (low, high)
    }
}
