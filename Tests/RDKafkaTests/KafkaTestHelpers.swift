import RDKafka
import TestSupport
import Synchronization
import Testing

/// Collects delivery reports from the producer's poll thread.
final class DeliveryLog: Sendable {
    private let reports = Mutex<[DeliveryReport]>([])

    func record(_ report: DeliveryReport) { reports.withLock { $0.append(report) } }
    var all: [DeliveryReport] { reports.withLock { $0 } }
    var count: Int { reports.withLock { $0.count } }
}

/// Collects log events, to assert on what librdkafka said.
final class LogCapture: Sendable {
    private let events = Mutex<[KafkaLogEvent]>([])
    var handler: KafkaLogHandler { { [self] event in events.withLock { $0.append(event) } } }
    var all: [KafkaLogEvent] { events.withLock { $0 } }
}

enum KafkaTestHelpers {
    static let quiet: KafkaLogHandler = mockClusterLog

    /// Reads every partition of `topic` from the beginning until `expected` records arrived or `timeout` passed.
    static func readBack(bootstrap: String, topic: String, partitions: Int32, expected: Int,
                         timeout: Duration = .seconds(120)) async throws -> [ConsumerRecord] {
        try await KafkaReader.readBack(bootstrap: bootstrap, topics: [topic], partitions: partitions, timeout: timeout) {
            $0.count >= expected
        }
    }

    static func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }
    static func text(_ bytes: [UInt8]?) -> String? { bytes.map { String(decoding: $0, as: UTF8.self) } }
}
