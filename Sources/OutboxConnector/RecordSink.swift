import RDKafka

/// Where the connector's records go: Kafka in production; nowhere in the decode-and-route benchmark.
///
/// The sink reports each record's fate through the delivery handler it was created with, exactly like
/// ``KafkaProducer`` (the Kafka sink *is* the producer).
protocol RecordSink: AnyObject, Sendable {
    /// Sends without suspending; `queueFull` is back-pressure.
    func trySend(_ record: KafkaRecord, token: UInt64) throws(KafkaError)
    /// Sends, waiting out back-pressure.
    func send(_ record: KafkaRecord, token: UInt64) async throws(KafkaError)
    /// Waits up to `timeout` for every record's report; returns how many are still unreported.
    func flush(timeout: Duration) async -> Int
    /// Drops what is not yet sent; its reports say so.
    func purge()
    /// Flushes up to `timeout`, purges the rest and releases the sink; returns how many were purged.
    @discardableResult func close(timeout: Duration) async -> Int
}

extension KafkaProducer: RecordSink {}

/// A sink that acknowledges every record at once and sends nothing: the connector's decode, route and confirm
/// path without Kafka. For benchmarks only — with it the WAL is confirmed for events that went nowhere.
final class DiscardingSink: RecordSink {
    private let onDeliveries: @Sendable ([DeliveryReport]) -> Void

    init(onDeliveries: @escaping @Sendable ([DeliveryReport]) -> Void) {
        self.onDeliveries = onDeliveries
    }

    func trySend(_ record: KafkaRecord, token: UInt64) throws(KafkaError) {
        onDeliveries([DeliveryReport(token: token, topic: record.topic, partition: 0, offset: nil, error: nil)])
    }

    func send(_ record: KafkaRecord, token: UInt64) async throws(KafkaError) {
        try trySend(record, token: token)
    }

    func flush(timeout: Duration) async -> Int { 0 }
    func purge() {}
    func close(timeout: Duration) async -> Int { 0 }
}
