import Foundation
import RDKafka

/// One event as a handler sees it: the Kafka record plus the identity the inbox de-duplicates on.
public struct OutboxEvent: Sendable {
    /// The event id (the `event_id` header, or `topic/partition/offset` by the missing-id policy).
    public var id: String
    /// The event type (the `event_type` header), if present.
    public var type: String?
    /// The record key as UTF-8 text (the aggregate id), if present.
    public var key: String?
    /// The payload bytes.
    public var payload: [UInt8]
    /// All headers, in order.
    public var headers: [KafkaHeader]
    /// The topic.
    public var topic: String
    /// The partition.
    public var partition: Int32
    /// The offset.
    public var offset: Int64
    /// The record timestamp.
    public var timestamp: Date?

    /// Decodes the JSON payload.
    ///
    /// - Throws: `DecodingError` for a payload that does not match `T`.
    public func decode<T: Decodable>(_ type: T.Type = T.self, decoder: JSONDecoder = JSONDecoder()) throws -> T {
        try decoder.decode(T.self, from: Data(payload))
    }

    /// The W3C `traceparent` the connector published (from `outbox.traceColumn`), to continue the producer's trace:
    /// start the handler's span as its child. `nil` when the row had none.
    public var traceParent: String? { header("traceparent") }

    /// When the transaction that wrote the event committed in the source database (the connector's
    /// `tailgate_commit_time` header); `nil` for backfilled records and records from elsewhere.
    public var commitTime: Date? {
        guard let text = header("tailgate_commit_time"), let micros = Int64(text), micros > 0 else { return nil }
        return Date(timeIntervalSince1970: Double(micros) / 1_000_000)
    }

    /// The W3C `tracestate` that travelled with ``traceParent``, if any.
    public var traceState: String? { header("tracestate") }

    /// The first header named `name` as UTF-8 text.
    public func header(_ name: String) -> String? {
        headers.first { $0.name == name }?.stringValue
    }
}
