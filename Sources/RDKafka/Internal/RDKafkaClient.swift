import CLibRDKafka
import Foundation
import Synchronization

/// The single owner of one librdkafka `rd_kafka_t`, and of the callbacks librdkafka calls into.
///
/// `@unchecked Sendable`: librdkafka handles are thread-safe for the calls made here (produce, poll, flush,
/// purge from any thread; the consumer calls are serialised by ``KafkaConsumer``), and the handle pointer is set
/// once in `init` and cleared only in `destroy()`, which its owner calls after every other use has ended.
final class RDKafkaClient: @unchecked Sendable {
    enum ClientType { case producer, consumer }

    /// What librdkafka's callbacks reach. Retained for as long as the handle lives.
    final class Callbacks: @unchecked Sendable {
        // Set before the handle is created and never changed: safe to read from librdkafka's threads.
        /// Called with the delivery reports one `rd_kafka_poll`/`rd_kafka_flush` served, in order (see
        /// ``deliverPending()``).
        var onDeliveries: (@Sendable ([DeliveryReport]) -> Void)?
        var onRebalance: ((RebalanceEvent) -> [TopicPartition: StartOffset])?
        var log: KafkaLogHandler = defaultKafkaLogHandler
        let clientName: String
        var onReachabilityChange: (@Sendable (_ reachable: Bool) -> Void)?
        let latestStatistics = Mutex<String?>(nil)
        let lastError = Mutex<KafkaError?>(nil)
        /// Since when no broker has been reachable; `nil` while one is (or before anything was learnt).
        let unreachableSince = Mutex<ContinuousClock.Instant?>(nil)
        /// Mirrors `unreachableSince != nil`, so that the delivery path checks it without a lock.
        private let unreachable = Atomic<Bool>(false)

        /// Reports collected by the delivery callback and not yet handed to ``onDeliveries``, and the topic names
        /// seen (librdkafka's topic handle → its name, so a report does not build the name again).
        private let collected = Mutex<(reports: [DeliveryReport], topicNames: [UnsafeRawPointer: String])>(([], [:]))
        /// Held while a batch is handed over, so that batches reach ``onDeliveries`` one at a time and in order,
        /// and a flush that returns has seen every report it waited for handed over.
        private let handingOver = Mutex<Void>(())

        init(clientName: String) {
            self.clientName = clientName
        }

        /// Collects one report (on the thread serving librdkafka's queue: the poll thread, or a flush).
        func collect(_ message: rd_kafka_message_t, client: OpaquePointer?) {
            collected.withLock { collected in
                let topic: String
                if let handle = message.rkt {
                    let key = UnsafeRawPointer(handle)
                    if let known = collected.topicNames[key] {
                        topic = known
                    } else {
                        topic = String(cString: rd_kafka_topic_name(handle))
                        collected.topicNames[key] = topic
                    }
                } else {
                    topic = ""
                }
                collected.reports.append(RDKafkaClient.deliveryReport(message, topic: topic, client: client))
            }
        }

        /// Hands the collected reports to ``onDeliveries`` as one batch: one wake-up, one lock and one confirmation
        /// for the many reports a poll serves, instead of one of each per record.
        func deliverPending() {
            handingOver.withLock { _ in
                let batch = collected.withLock { collected -> [DeliveryReport] in
                    guard !collected.reports.isEmpty else { return [] }
                    var batch: [DeliveryReport] = []
                    batch.reserveCapacity(collected.reports.count)
                    swap(&batch, &collected.reports)
                    return batch
                }
                guard !batch.isEmpty else { return }
                if batch.contains(where: { $0.error == nil }) { brokers(reachable: true) }
                onDeliveries?(batch)
            }
        }

        /// Records what was learnt about the brokers; calls ``onReachabilityChange`` on a change.
        ///
        /// Sources: `_ALL_BROKERS_DOWN` (down), a successful delivery (up), and the statistics' broker states.
        func brokers(reachable: Bool) {
            if reachable && !unreachable.load(ordering: .relaxed) { return }
            let changed = unreachableSince.withLock { since -> Bool in
                if reachable {
                    defer { since = nil }
                    return since != nil
                }
                guard since == nil else { return false }
                since = .now
                return true
            }
            unreachable.store(!reachable, ordering: .relaxed)
            if changed { onReachabilityChange?(reachable) }
        }

        /// Whether any broker is up, from a statistics JSON document; `nil` when it names no broker.
        static func anyBrokerUp(statistics: String) -> Bool? {
            guard let document = try? JSONSerialization.jsonObject(with: Data(statistics.utf8)) as? [String: Any],
                  let brokers = document["brokers"] as? [String: Any] else { return nil }
            let states = brokers.compactMap { name, value -> String? in
                guard !name.hasSuffix("/internal"), let broker = value as? [String: Any] else { return nil }
                return broker["state"] as? String
            }
            return states.isEmpty ? nil : states.contains("UP")
        }
    }

    /// How long data sent to a broker may stay unacknowledged before the kernel ends the connection
    /// (`TCP_USER_TIMEOUT`), like libpq's `tcp_user_timeout` default in ``LibPQ``.
    static let brokerUserTimeoutMilliseconds: UInt32 = 15_000

    /// Handles created and not yet destroyed, process-wide (for leak checks).
    static let liveHandles = Atomic<Int>(0)

    let handle: OpaquePointer
    let callbacks: Callbacks
    private let callbackContext: Unmanaged<Callbacks>
    private let destroyed = Atomic<Bool>(false)
    let name: String

    init(type: ClientType, properties: [String: String], callbacks: Callbacks) throws(KafkaError) {
        let configuration = rd_kafka_conf_new()!
        for (key, value) in properties.sorted(by: { $0.key < $1.key }) {
            var errorText = [CChar](repeating: 0, count: 512)
            let result = rd_kafka_conf_set(configuration, key, value, &errorText, errorText.count)
            guard result == RD_KAFKA_CONF_OK else {
                rd_kafka_conf_destroy(configuration)
                let reason = cString(errorText)
                throw KafkaError(kind: .configuration, codeName: result == RD_KAFKA_CONF_UNKNOWN ? "CONF_UNKNOWN" : "CONF_INVALID",
                                 message: "property '\(key)': \(reason)")
            }
        }
        let context = Unmanaged.passRetained(callbacks)
        rd_kafka_conf_set_opaque(configuration, context.toOpaque())
        rd_kafka_conf_set_log_cb(configuration, { client, level, facility, buffer in
            guard let client, let opaque = rd_kafka_opaque(client) else { return }
            let callbacks = Unmanaged<Callbacks>.fromOpaque(opaque).takeUnretainedValue()
            callbacks.log(KafkaLogEvent(level: KafkaLogEvent.Level(rawValue: Int(level)) ?? .info,
                                        facility: facility.map { String(cString: $0) } ?? "",
                                        client: callbacks.clientName, message: buffer.map { String(cString: $0) } ?? ""))
        })
        rd_kafka_conf_set_error_cb(configuration, { client, code, reason, opaque in
            guard let opaque else { return }
            let callbacks = Unmanaged<Callbacks>.fromOpaque(opaque).takeUnretainedValue()
            let error = RDKafkaClient.error(code: rd_kafka_resp_err_t(rawValue: code), message: reason.map { String(cString: $0) } ?? "", client: client)
            callbacks.lastError.withLock { $0 = error }
            if code == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN.rawValue { callbacks.brokers(reachable: false) }
            let level: KafkaLogEvent.Level = error.isFatal ? .critical : .warning
            callbacks.log(KafkaLogEvent(level: level, facility: "ERROR", client: callbacks.clientName, message: error.description))
        })
        // Broker connections are not left hanging on a silently dropped network: the kernel ends a connection whose
        // sent data stays unacknowledged for `brokerUserTimeout` (TCP_USER_TIMEOUT), librdkafka reconnects, and a
        // healed network is used at the next reconnect instead of at TCP's next retransmission, which backs off to
        // tens of seconds. librdkafka 2.0 has no property for it, so the socket is made here.
        rd_kafka_conf_set_socket_cb(configuration, { domain, type, socketProtocol, _ in
            let descriptor = Glibc.socket(domain, type | Int32(SOCK_CLOEXEC.rawValue), socketProtocol)
            guard descriptor >= 0 else { return -1 }
            if domain == AF_INET || domain == AF_INET6 {
                var milliseconds = RDKafkaClient.brokerUserTimeoutMilliseconds
                _ = setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_USER_TIMEOUT, &milliseconds, socklen_t(MemoryLayout<UInt32>.size))
            }
            return descriptor
        })
        rd_kafka_conf_set_stats_cb(configuration, { _, json, length, opaque in
            guard let opaque, let json else { return 0 }
            let callbacks = Unmanaged<Callbacks>.fromOpaque(opaque).takeUnretainedValue()
            let text = String(decoding: UnsafeRawBufferPointer(start: json, count: length), as: UTF8.self)
            callbacks.latestStatistics.withLock { $0 = text }
            if let up = Callbacks.anyBrokerUp(statistics: text) { callbacks.brokers(reachable: up) }
            return 0
        })
        switch type {
        case .producer:
            rd_kafka_conf_set_dr_msg_cb(configuration, { client, message, opaque in
                guard let opaque, let message else { return }
                Unmanaged<Callbacks>.fromOpaque(opaque).takeUnretainedValue().collect(message.pointee, client: client)
            })
        case .consumer:
            rd_kafka_conf_set_rebalance_cb(configuration, { client, code, partitions, opaque in
                guard let client, let opaque else { return }
                let callbacks = Unmanaged<Callbacks>.fromOpaque(opaque).takeUnretainedValue()
                RDKafkaClient.rebalance(client: client, code: code, partitions: partitions, callbacks: callbacks)
            })
        }
        var errorText = [CChar](repeating: 0, count: 512)
        guard let handle = rd_kafka_new(type == .producer ? RD_KAFKA_PRODUCER : RD_KAFKA_CONSUMER, configuration, &errorText, errorText.count) else {
            rd_kafka_conf_destroy(configuration)
            context.release()
            throw KafkaError(kind: .configuration, codeName: "CONF_INVALID", message: cString(errorText))
        }
        self.handle = handle
        self.callbacks = callbacks
        self.callbackContext = context
        self.name = String(cString: rd_kafka_name(handle))
        Self.liveHandles.add(1, ordering: .relaxed)
    }

    /// Destroys the handle; idempotent. Call only when no other thread uses it.
    func destroy() {
        guard !destroyed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        rd_kafka_destroy(handle)
        callbackContext.release()
        Self.liveHandles.subtract(1, ordering: .relaxed)
    }

    deinit {
        destroy()
    }

    /// Waits up to `timeout` for every librdkafka handle in the process to be fully torn down.
    ///
    /// - Returns: `true` when none is left.
    static func waitDestroyed(timeout: Duration) -> Bool {
        rd_kafka_wait_destroyed(Int32(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)) == 0
    }

    // MARK: Errors

    static func error(code: rd_kafka_resp_err_t, message: String, client: OpaquePointer?) -> KafkaError {
        let name = String(cString: rd_kafka_err2name(code))
        var text = message.isEmpty ? String(cString: rd_kafka_err2str(code)) : message
        var kind: KafkaError.Kind
        switch code {
        case RD_KAFKA_RESP_ERR__FATAL:
            kind = .fatal
            if let cause = client.flatMap(fatalCause) {
                text = "\(cause.codeName): \(cause.message)"
            }
        case RD_KAFKA_RESP_ERR__QUEUE_FULL: kind = .queueFull
        case RD_KAFKA_RESP_ERR__TIMED_OUT, RD_KAFKA_RESP_ERR__MSG_TIMED_OUT: kind = .timedOut
        case RD_KAFKA_RESP_ERR__PURGE_QUEUE, RD_KAFKA_RESP_ERR__PURGE_INFLIGHT: kind = .purged
        case RD_KAFKA_RESP_ERR__INVALID_ARG, RD_KAFKA_RESP_ERR__UNKNOWN_PROTOCOL: kind = .configuration
        case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN, RD_KAFKA_RESP_ERR__TRANSPORT, RD_KAFKA_RESP_ERR__RESOLVE: kind = .unreachable
        default: kind = .permanent
        }
        return KafkaError(kind: kind, codeName: name, code: code.rawValue, message: text)
    }

    static func error(_ code: rd_kafka_resp_err_t, client: OpaquePointer?) -> KafkaError {
        error(code: code, message: "", client: client)
    }

    /// Converts and destroys an `rd_kafka_error_t`.
    static func consume(_ error: OpaquePointer, client: OpaquePointer?) -> KafkaError {
        defer { rd_kafka_error_destroy(error) }
        let code = rd_kafka_error_code(error)
        var converted = Self.error(code: code, message: String(cString: rd_kafka_error_string(error)), client: client)
        if rd_kafka_error_is_fatal(error) != 0 { converted.kind = .fatal }
        return converted
    }

    /// The producer's fatal error, if one was raised.
    func fatalError() -> KafkaError? {
        Self.fatalCause(handle)
    }

    /// The fatal error `client` raised (`rd_kafka_fatal_error`), if any.
    static func fatalCause(_ client: OpaquePointer) -> KafkaError? {
        var buffer = [CChar](repeating: 0, count: 512)
        let code = rd_kafka_fatal_error(client, &buffer, buffer.count)
        guard code != RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
        return KafkaError(kind: .fatal, codeName: String(cString: rd_kafka_err2name(code)), code: code.rawValue,
                          message: cString(buffer))
    }

    // MARK: Producer

    static func deliveryReport(_ message: rd_kafka_message_t, topic: String, client: OpaquePointer?) -> DeliveryReport {
        let token = UInt64(UInt(bitPattern: message._private)) &- 1
        var error = message.err == RD_KAFKA_RESP_ERR_NO_ERROR ? nil : Self.error(message.err, client: client)
        // A record failing after the producer raised a fatal error (e.g. a gap-less guarantee that cannot hold)
        // fails because of it: the producer must be replaced, whatever the record's own error says.
        if error != nil, error?.kind != .fatal, let cause = client.flatMap(fatalCause) {
            error?.kind = .fatal
            error?.message += " (the producer raised a fatal error: \(cause.codeName): \(cause.message))"
        }
        return DeliveryReport(token: token, topic: topic, partition: message.partition,
                              offset: message.offset >= 0 && error == nil ? message.offset : nil, error: error)
    }

    /// Enqueues one record; `token` comes back in its delivery report.
    func produce(_ record: KafkaRecord, token: UInt64) throws(KafkaError) {
        var headers: OpaquePointer?
        if !record.headers.isEmpty {
            headers = rd_kafka_headers_new(record.headers.count)
            for header in record.headers {
                // The name's bytes with their length: no NUL-terminated copy (a short name is stored inline in
                // the String, and passing it as a C string would allocate one per header).
                var name = header.name
                name.withUTF8 { name in
                    name.withMemoryRebound(to: CChar.self) { name in
                        withOptionalBytes(header.value) { value, count in
                            _ = rd_kafka_header_add(headers, name.baseAddress, name.count, value, count)
                        }
                    }
                }
            }
        }
        // The token travels as the message's opaque pointer (offset by one so that token 0 is not NULL).
        let opaque = UnsafeMutableRawPointer(bitPattern: UInt(token &+ 1))
        let failure: OpaquePointer? = record.topic.withCString { topic in
            withOptionalBytes(record.key) { keyPointer, keyCount in
                withOptionalBytes(record.value) { valuePointer, valueCount in
                    // On the stack: one record's arguments, no heap allocation per record.
                    withUnsafeTemporaryAllocation(of: rd_kafka_vu_t.self, capacity: 7) { values in
                        values.initialize(repeating: rd_kafka_vu_t())
                        values[0].vtype = RD_KAFKA_VTYPE_TOPIC
                        values[0].u.cstr = topic
                        values[1].vtype = RD_KAFKA_VTYPE_KEY
                        values[1].u.mem.ptr = UnsafeMutableRawPointer(mutating: keyPointer)
                        values[1].u.mem.size = keyCount
                        values[2].vtype = RD_KAFKA_VTYPE_VALUE
                        values[2].u.mem.ptr = UnsafeMutableRawPointer(mutating: valuePointer)
                        values[2].u.mem.size = valueCount
                        values[3].vtype = RD_KAFKA_VTYPE_MSGFLAGS
                        values[3].u.i = RD_KAFKA_MSG_F_COPY
                        values[4].vtype = RD_KAFKA_VTYPE_OPAQUE
                        values[4].u.ptr = opaque
                        var count = 5
                        if let partition = record.partition {
                            values[count].vtype = RD_KAFKA_VTYPE_PARTITION
                            values[count].u.i32 = partition
                            count += 1
                        }
                        if let headers {
                            values[count].vtype = RD_KAFKA_VTYPE_HEADERS
                            values[count].u.headers = headers
                            count += 1
                        }
                        return rd_kafka_produceva(handle, values.baseAddress, count)
                    }
                }
            }
        }
        if let failure {
            // On failure the headers still belong to us.
            if let headers { rd_kafka_headers_destroy(headers) }
            throw Self.consume(failure, client: handle)
        }
    }

    /// Serves queued callbacks for up to `timeout` milliseconds, then hands the delivery reports they produced over
    /// as one batch; returns how many callbacks it served.
    @discardableResult
    func poll(milliseconds: Int32) -> Int {
        let served = Int(rd_kafka_poll(handle, milliseconds))
        callbacks.deliverPending()
        return served
    }

    /// Asks the cluster for `topic`'s metadata and waits up to `milliseconds` for the answer (blocking).
    ///
    /// librdkafka 2.0 looks up a topic first used after the client connected only on its next one-second topic
    /// scan, holding that topic's first records until then; asking at once makes them wait one round trip.
    /// - Returns: Whether the cluster answered.
    @discardableResult
    func requestMetadata(topic: String, milliseconds: Int32) -> Bool {
        guard let topicHandle = rd_kafka_topic_new(handle, topic, nil) else { return false }
        defer { rd_kafka_topic_destroy(topicHandle) }
        var metadata: UnsafePointer<rd_kafka_metadata>?
        let result = rd_kafka_metadata(handle, 0, topicHandle, &metadata, milliseconds)
        if let metadata { rd_kafka_metadata_destroy(metadata) }
        return result == RD_KAFKA_RESP_ERR_NO_ERROR
    }

    /// Waits up to `milliseconds` for every queued record to be delivered; returns how many are left.
    func flush(milliseconds: Int32) -> Int {
        _ = rd_kafka_flush(handle, milliseconds)
        callbacks.deliverPending()
        return Int(rd_kafka_outq_len(handle))
    }

    /// Drops queued and in-flight records; each gets a delivery report with a purge error.
    func purge() {
        _ = rd_kafka_purge(handle, Int32(RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT))
    }

    /// Records not yet delivered, plus queued callbacks.
    var outQueueLength: Int { Int(rd_kafka_outq_len(handle)) }
}

private func withOptionalBytes<R>(_ bytes: [UInt8]?, _ body: (UnsafeRawPointer?, Int) -> R) -> R {
    guard let bytes else { return body(nil, 0) }
    return bytes.withUnsafeBytes { body($0.baseAddress, $0.count) }
}

/// The text in a NUL-terminated buffer that librdkafka filled.
func cString(_ buffer: [CChar]) -> String {
    let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
    return String(decoding: bytes, as: UTF8.self)
}
