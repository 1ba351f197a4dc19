import CLibRDKafka

extension RDKafkaClient {
    /// The rebalance callback: asks the handler where assigned partitions start and applies the assignment,
    /// incrementally under the cooperative protocol.
    static func rebalance(client: OpaquePointer, code: rd_kafka_resp_err_t, partitions: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?,
                          callbacks: Callbacks) {
        let cooperative = String(cString: rd_kafka_rebalance_protocol(client)) == "COOPERATIVE"
        let list = partitions.map(topicPartitions) ?? []
        switch code {
        case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
            let starts = callbacks.onRebalance?(.assigned(list)) ?? [:]
            if let partitions {
                for index in 0..<Int(partitions.pointee.cnt) {
                    let element = partitions.pointee.elems[index]
                    let key = TopicPartition(topic: String(cString: element.topic), partition: element.partition)
                    partitions.pointee.elems[index].offset = rawOffset(starts[key] ?? .committed)
                }
            }
            if cooperative {
                if let error = rd_kafka_incremental_assign(client, partitions) { report(consume(error, client: client), callbacks) }
            } else {
                let result = rd_kafka_assign(client, partitions)
                if result != RD_KAFKA_RESP_ERR_NO_ERROR { report(error(result, client: client), callbacks) }
            }
        default:
            let lost = rd_kafka_assignment_lost(client) != 0
            _ = callbacks.onRebalance?(.revoked(list, lost: lost))
            if cooperative {
                if let error = rd_kafka_incremental_unassign(client, partitions) { report(consume(error, client: client), callbacks) }
            } else {
                _ = rd_kafka_assign(client, nil)
            }
        }
    }

    private static func report(_ error: KafkaError, _ callbacks: Callbacks) {
        callbacks.lastError.withLock { $0 = error }
        callbacks.log(KafkaLogEvent(level: .error, facility: "REBALANCE", client: callbacks.clientName, message: error.description))
    }

    static func rawOffset(_ start: StartOffset) -> Int64 {
        switch start {
        case .offset(let offset): offset
        case .beginning: Int64(RD_KAFKA_OFFSET_BEGINNING)
        case .end: Int64(RD_KAFKA_OFFSET_END)
        case .committed: Int64(RD_KAFKA_OFFSET_STORED)
        }
    }

    static func topicPartitions(_ list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) -> [TopicPartition] {
        (0..<Int(list.pointee.cnt)).map { index in
            let element = list.pointee.elems[index]
            return TopicPartition(topic: String(cString: element.topic), partition: element.partition)
        }
    }

    /// Builds a C list; `offsets` sets each entry's offset.
    static func withList<R>(_ entries: [(TopicPartition, Int64?)], _ body: (UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) -> R) -> R {
        let list = rd_kafka_topic_partition_list_new(Int32(max(1, entries.count)))!
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for (partition, offset) in entries {
            let element = rd_kafka_topic_partition_list_add(list, partition.topic, partition.partition)!
            if let offset { element.pointee.offset = offset }
        }
        return body(list)
    }

    func redirectMainQueueToConsumer() {
        _ = rd_kafka_poll_set_consumer(handle)
    }

    func subscribe(_ topics: [String]) throws(KafkaError) {
        let result = Self.withList(topics.map { (TopicPartition(topic: $0, partition: RD_KAFKA_PARTITION_UA), nil) }) {
            rd_kafka_subscribe(handle, $0)
        }
        if result != RD_KAFKA_RESP_ERR_NO_ERROR { throw Self.error(result, client: handle) }
    }

    func assign(_ starts: [TopicPartition: StartOffset]) throws(KafkaError) {
        let entries = starts.sorted { $0.key < $1.key }.map { ($0.key, Optional(Self.rawOffset($0.value))) }
        let result = Self.withList(entries) { rd_kafka_assign(handle, $0) }
        if result != RD_KAFKA_RESP_ERR_NO_ERROR { throw Self.error(result, client: handle) }
    }

    /// Moves the fetch position of assigned partitions, waiting up to `milliseconds` for the fetcher to take it (so
    /// that no record fetched from the old position is returned afterwards).
    func seek(_ starts: [TopicPartition: StartOffset], milliseconds: Int32) throws(KafkaError) {
        var failed: (partition: TopicPartition, code: rd_kafka_resp_err_t)?
        let entries = starts.sorted { $0.key < $1.key }.map { ($0.key, Optional(Self.rawOffset($0.value))) }
        let error = Self.withList(entries) { list -> OpaquePointer? in
            let error = rd_kafka_seek_partitions(handle, list, milliseconds)
            for index in 0..<Int(list.pointee.cnt) where list.pointee.elems[index].err != RD_KAFKA_RESP_ERR_NO_ERROR && failed == nil {
                let element = list.pointee.elems[index]
                failed = (TopicPartition(topic: String(cString: element.topic), partition: element.partition), element.err)
            }
            return error
        }
        if let error { throw Self.consume(error, client: handle) }
        if let failed {
            var error = Self.error(failed.code, client: handle)
            error.message = "seeking \(failed.partition): \(error.message)"
            throw error
        }
    }

    func assignment() throws(KafkaError) -> [TopicPartition] {
        var list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
        let result = rd_kafka_assignment(handle, &list)
        guard result == RD_KAFKA_RESP_ERR_NO_ERROR, let list else { throw Self.error(result, client: handle) }
        defer { rd_kafka_topic_partition_list_destroy(list) }
        return Self.topicPartitions(list).sorted()
    }

    /// Polls one message: a record, `nil` when the timeout passed, or an error event.
    func consumerPoll(milliseconds: Int32) -> Result<ConsumerRecord, KafkaError>? {
        guard let message = rd_kafka_consumer_poll(handle, milliseconds) else { return nil }
        defer { rd_kafka_message_destroy(message) }
        let raw = message.pointee
        if raw.err != RD_KAFKA_RESP_ERR_NO_ERROR {
            if raw.err == RD_KAFKA_RESP_ERR__PARTITION_EOF { return nil }
            var error = Self.error(raw.err, client: handle)
            if error.kind != .fatal { error.kind = .consumer }
            if raw.payload != nil, raw.len > 0 {
                error.message = String(decoding: UnsafeRawBufferPointer(start: raw.payload, count: raw.len), as: UTF8.self)
            }
            return .failure(error)
        }
        var headers: [KafkaHeader] = []
        var headerList: OpaquePointer?
        if rd_kafka_message_headers(message, &headerList) == RD_KAFKA_RESP_ERR_NO_ERROR, let headerList {
            var index = 0
            var name: UnsafePointer<CChar>?
            var value: UnsafeRawPointer?
            var size = 0
            while rd_kafka_header_get_all(headerList, index, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
                headers.append(KafkaHeader(name: name.map { String(cString: $0) } ?? "",
                                           value: value.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) }))
                index += 1
            }
        }
        var timestampType = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
        let timestamp = rd_kafka_message_timestamp(message, &timestampType)
        return .success(ConsumerRecord(
            topic: raw.rkt.map { String(cString: rd_kafka_topic_name($0)) } ?? "",
            partition: raw.partition, offset: raw.offset,
            key: raw.key.map { Array(UnsafeRawBufferPointer(start: $0, count: raw.key_len)) },
            value: raw.payload.map { Array(UnsafeRawBufferPointer(start: $0, count: raw.len)) },
            headers: headers,
            timestampMilliseconds: timestampType == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? nil : timestamp))
    }

    func commit(_ offsets: [TopicPartition: Int64], waiting: Bool = true) throws(KafkaError) {
        guard !offsets.isEmpty else { return }
        let result = Self.withList(offsets.sorted { $0.key < $1.key }.map { ($0.key, Optional($0.value)) }) {
            rd_kafka_commit(handle, $0, waiting ? 0 : 1)
        }
        if result != RD_KAFKA_RESP_ERR_NO_ERROR { throw Self.error(result, client: handle) }
    }

    func committed(_ partitions: [TopicPartition], milliseconds: Int32) throws(KafkaError) -> [TopicPartition: Int64] {
        var answer: [TopicPartition: Int64] = [:]
        let result = Self.withList(partitions.map { ($0, nil) }) { list in
            let result = rd_kafka_committed(handle, list, milliseconds)
            for index in 0..<Int(list.pointee.cnt) where list.pointee.elems[index].offset >= 0 {
                let element = list.pointee.elems[index]
                answer[TopicPartition(topic: String(cString: element.topic), partition: element.partition)] = element.offset
            }
            return result
        }
        if result != RD_KAFKA_RESP_ERR_NO_ERROR { throw Self.error(result, client: handle) }
        return answer
    }

    /// The partition's log end offset as last seen by this consumer, and its current position (next offset to
    /// fetch), without a network round trip.
    func watermarkAndPosition(_ partition: TopicPartition) -> (high: Int64, position: Int64)? {
        var low: Int64 = 0, high: Int64 = 0
        guard rd_kafka_get_watermark_offsets(handle, partition.topic, partition.partition, &low, &high) == RD_KAFKA_RESP_ERR_NO_ERROR,
              high >= 0 else { return nil }
        var position: Int64 = -1
        _ = Self.withList([(partition, nil)]) { list in
            let result = rd_kafka_position(handle, list)
            if result == RD_KAFKA_RESP_ERR_NO_ERROR, list.pointee.cnt > 0 { position = list.pointee.elems[0].offset }
            return result
        }
        return (high, position)
    }

    func setPaused(_ partitions: [TopicPartition], paused: Bool) throws(KafkaError) {
        // librdkafka reports a partition it does not know in that partition's entry, not in the result.
        var failed: (partition: TopicPartition, code: rd_kafka_resp_err_t)?
        let result = Self.withList(partitions.map { ($0, nil) }) { list in
            let result = paused ? rd_kafka_pause_partitions(handle, list) : rd_kafka_resume_partitions(handle, list)
            for index in 0..<Int(list.pointee.cnt) where list.pointee.elems[index].err != RD_KAFKA_RESP_ERR_NO_ERROR && failed == nil {
                let element = list.pointee.elems[index]
                failed = (TopicPartition(topic: String(cString: element.topic), partition: element.partition), element.err)
            }
            return result
        }
        if result != RD_KAFKA_RESP_ERR_NO_ERROR { throw Self.error(result, client: handle) }
        if let failed {
            var error = Self.error(failed.code, client: handle)
            error.message = "\(paused ? "pausing" : "resuming") \(failed.partition): \(error.message)"
            throw error
        }
    }

    /// Leaves the group (running the final revocation through the rebalance callback).
    func consumerClose() -> KafkaError? {
        let result = rd_kafka_consumer_close(handle)
        return result == RD_KAFKA_RESP_ERR_NO_ERROR ? nil : Self.error(result, client: handle)
    }
}
