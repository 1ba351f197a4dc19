import LibPQ
import Observability
import PGOutput
import RDKafka

/// Turns an inserted outbox row into the Kafka record the record-layout contract describes. Pure, no I/O.
///
/// key = the key column's text; value = the payload (jsonb/json/text as UTF-8, bytea as its bytes); headers:
/// `event_id`, the configured headers in order (a NULL column omits its header), `traceparent` and `tracestate`
/// (from `outbox.traceColumn`/`traceStateColumn`, when valid), `tailgate_lsn` (the transaction's commit LSN) and
/// `tailgate_xid`, `tailgate_commit_time` (microseconds since the Unix epoch); with Debezium compatibility also `id`.
/// With `"format": "cloudevents"` the CloudEvents binary-mode headers come first (see ``CloudEventsMapping``).
struct OutboxRouter: Sendable {
    /// Where a row goes.
    enum Routing: Sendable, Equatable {
        /// The record to publish.
        case publish(KafkaRecord)
        /// The row cannot be published; `record` is its dead-letter record (when a dead-letter topic is set).
        case reject(reason: String, eventID: String?, deadLetter: KafkaRecord?)
    }

    /// The transaction a row belongs to.
    struct TransactionContext: Sendable {
        /// The commit LSN (`Begin.finalLSN`), known before the rows arrive.
        let commitLSN: LSN
        /// The transaction id.
        let xid: UInt32
        /// The `tailgate_lsn`, `tailgate_xid` and `tailgate_commit_time` headers, formatted once for every row of the
        /// transaction.
        let transactionHeaders: [KafkaHeader]
        /// The commit time in RFC 3339 form for `ce_time`; `nil` when unknown (a backfill).
        let commitTimeRFC3339: String?

        /// Creates a context.
        ///
        /// - Parameter commitTime: The transaction's commit time (`Begin.commitTime`); `nil` (a backfill) is
        ///   written as `0`.
        init(commitLSN: LSN, xid: UInt32, commitTime: PostgresTimestamp? = nil) {
            self.commitLSN = commitLSN
            self.xid = xid
            transactionHeaders = [KafkaHeader(name: "tailgate_lsn", string: commitLSN.description),
                                  KafkaHeader(name: "tailgate_xid", string: String(xid)),
                                  KafkaHeader(name: "tailgate_commit_time", string: String(commitTime?.unixMicroseconds ?? 0))]
            commitTimeRFC3339 = commitTime?.rfc3339
        }
    }

    static let byteaOID: UInt32 = 17

    let configuration: ConnectorConfiguration
    let maxRecordBytes: Int
    /// Topic names already derived from a column's bytes and checked.
    private let topics = TopicNames()
    let onInvalidTraceContext: @Sendable (_ eventID: String?, _ rejection: TraceContext.Rejection) -> Void

    /// Creates a router.
    ///
    /// - Parameters:
    ///   - maxRecordBytes: Records larger than this are rejected before producing (`message.max.bytes`).
    ///   - onInvalidTraceContext: Told about each trace context value dropped because it is not valid W3C Trace
    ///     Context (the row is still published, without it), for a warning and a counter.
    init(configuration: ConnectorConfiguration, maxRecordBytes: Int = 1_000_000,
                onInvalidTraceContext: @escaping @Sendable (_ eventID: String?, _ rejection: TraceContext.Rejection) -> Void = { _, _ in }) {
        self.configuration = configuration
        self.maxRecordBytes = maxRecordBytes
        self.onInvalidTraceContext = onInvalidTraceContext
    }

    /// The columns the configuration reads.
    var requiredColumns: [String] {
        var columns = [configuration.eventIdColumn, configuration.keyColumn, configuration.payloadColumn]
        switch configuration.topic {
        case .column(let column), .template(let column, _): columns.append(column)
        case .fixed: break
        }
        columns += configuration.headers.map(\.column)
        columns += [configuration.traceColumn, configuration.traceStateColumn].compactMap { $0 }
        columns += configuration.cloudEvents?.columns ?? []
        var seen = Set<String>()
        return columns.filter { seen.insert($0).inserted }
    }

    /// Checks that a Relation message for the outbox table still has every configured column.
    ///
    /// - Throws: ``ConnectorError`` with code `schemaChanged` naming the missing columns.
    func validate(_ relation: Relation) throws(ConnectorError) {
        let missing = requiredColumns.filter { relation.columnIndex(named: $0) == nil }
        guard missing.isEmpty else {
            throw ConnectorError(.schemaChanged, "the outbox table \(relation.namespace).\(relation.name) no longer has column(s) \(missing.joined(separator: ", ")) that the configuration maps; restore them or change the connector file, then restart (nothing past the last complete record was confirmed)")
        }
    }

    /// Routes one inserted row.
    ///
    /// The hot path works on the columns' bytes: the key, the payload and the header values share the decoded
    /// row's buffers instead of being copied through `String`s, and a topic name is checked once (``topics``).
    public func route(_ row: Row, in transaction: TransactionContext) -> Routing {
        let eventIDBytes = Self.text(row, configuration.eventIdColumn)
        var eventID: String? { eventIDBytes.map { String(decoding: $0, as: UTF8.self) } }
        let key = Self.text(row, configuration.keyColumn)
        let payload = payloadBytes(row)
        var headers: [KafkaHeader] = []
        headers.reserveCapacity(configuration.headers.count + 13)
        var cloudEventsProblem: String?
        if let cloudEvents = configuration.cloudEvents {
            cloudEventsProblem = cloudEventsHeaders(cloudEvents, row, eventID: eventID, transaction: transaction, into: &headers)
        }
        if let eventIDBytes { headers.append(KafkaHeader(name: "event_id", value: eventIDBytes)) }
        for (name, column) in configuration.headers {
            if let value = Self.text(row, column) { headers.append(KafkaHeader(name: name, value: value)) }
        }
        if let traceColumn = configuration.traceColumn {
            let (context, rejection) = TraceContext.check(traceParent: row[traceColumn]?.string,
                                                          traceState: configuration.traceStateColumn.flatMap { row[$0]?.string })
            if let context {
                headers.append(KafkaHeader(name: "traceparent", string: context.traceParent))
                if let state = context.traceState { headers.append(KafkaHeader(name: "tracestate", string: state)) }
            }
            if let rejection { onInvalidTraceContext(eventID, rejection) }
        }
        headers += transaction.transactionHeaders
        if configuration.debeziumCompatible, let eventIDBytes { headers.append(KafkaHeader(name: "id", value: eventIDBytes)) }

        func reject(_ reason: String, oversized: Bool = false) -> Routing {
            var deadLetter: KafkaRecord?
            if let topic = configuration.deadLetterTopic {
                var value = payload
                if oversized || value.map({ $0.count > maxRecordBytes / 2 }) == true {
                    value = Array("{\"tailgate_reference\":{\"event_id\":\(jsonString(eventID)),\"lsn\":\"\(transaction.commitLSN)\",\"xid\":\(transaction.xid),\"payload_bytes\":\(payload?.count ?? 0)}}".utf8)
                }
                deadLetter = KafkaRecord(topic: topic, key: key, value: value,
                                         headers: headers + [KafkaHeader(name: "tailgate_error", string: reason)])
            }
            return .reject(reason: reason, eventID: eventID, deadLetter: deadLetter)
        }

        guard let eventIDBytes, !eventIDBytes.isEmpty else { return reject("the event id column \(configuration.eventIdColumn) is NULL or empty") }
        guard let key else { return reject("the key column \(configuration.keyColumn) is NULL") }
        guard let payload else { return reject("the payload column \(configuration.payloadColumn) is NULL or not valid") }
        if let cloudEventsProblem { return reject(cloudEventsProblem) }
        let topic: String
        switch configuration.topic {
        case .fixed(let name):
            topic = name
        case .column(let column), .template(let column, _):
            guard let value = Self.text(row, column), !value.isEmpty else { return reject("the topic column \(column) is NULL or empty") }
            switch topics.topic(for: value, configuration: configuration) {
            case .success(let name): topic = name
            case .failure(let problem): return reject(problem.reason)
            }
        }
        let record = KafkaRecord(topic: topic, key: key, value: payload, headers: headers)
        guard record.approximateSize <= maxRecordBytes else {
            return reject("the record is \(record.approximateSize) bytes, over message.max.bytes (\(maxRecordBytes))", oversized: true)
        }
        return .publish(record)
    }

    /// A column's text bytes when it holds valid UTF-8 text (`nil` for NULL, unchanged TOAST, binary or invalid
    /// UTF-8, as ``PGOutput/TupleData/Value/string`` would say), without building a `String`.
    static func text(_ row: Row, _ column: String) -> [UInt8]? {
        guard case .text(let bytes)? = row[column] else { return nil }
        // ASCII (every id, key and topic in practice) is valid UTF-8; anything else is checked in full.
        if bytes.allSatisfy({ $0 < 0x80 }) || String(validating: bytes, as: UTF8.self) != nil { return bytes }
        return nil
    }

    /// Appends the CloudEvents binary-mode headers; returns why the row cannot be a CloudEvent (a required attribute's
    /// column is NULL or empty), or `nil`.
    private func cloudEventsHeaders(_ mapping: CloudEventsMapping, _ row: Row, eventID: String?,
                                    transaction: TransactionContext, into headers: inout [KafkaHeader]) -> String? {
        headers.append(KafkaHeader(name: "ce_specversion", string: CloudEventsMapping.specVersion))
        if let eventID, !eventID.isEmpty { headers.append(KafkaHeader(name: "ce_id", string: eventID)) }
        let source = mapping.source(value: mapping.sourceColumn.flatMap { row[$0]?.string })
        if let source { headers.append(KafkaHeader(name: "ce_source", string: source)) }
        let type = row[mapping.typeColumn]?.string
        if let type, !type.isEmpty { headers.append(KafkaHeader(name: "ce_type", string: type)) }
        if let time = transaction.commitTimeRFC3339 { headers.append(KafkaHeader(name: "ce_time", string: time)) }
        if let subjectColumn = mapping.subjectColumn, let subject = row[subjectColumn]?.string, !subject.isEmpty {
            headers.append(KafkaHeader(name: "ce_subject", string: subject))
        }
        if let index = row.relation.columnIndex(named: configuration.payloadColumn) {
            headers.append(KafkaHeader(name: "content-type",
                                       string: CloudEventsMapping.contentType(payloadTypeOID: row.relation.columns[index].typeOID)))
        }
        if source == nil, let column = mapping.sourceColumn { return "the CloudEvents source column \(column) is NULL or empty (ce_source is required)" }
        if type?.isEmpty != false { return "the CloudEvents type column \(mapping.typeColumn) is NULL or empty (ce_type is required)" }
        return nil
    }

    private func payloadBytes(_ row: Row) -> [UInt8]? {
        guard let index = row.relation.columnIndex(named: configuration.payloadColumn) else { return nil }
        guard case .text(let bytes) = row.values[index] else { return nil }
        if row.relation.columns[index].typeOID == Self.byteaOID {
            return ByteaText.decode(bytes)
        }
        return bytes
    }

    private func jsonString(_ text: String?) -> String {
        guard let text else { return "null" }
        return EventLogger.Format.quoted(text)
    }
}
