import Foundation
import RDKafka
import Synchronization

/// The slot is missing and the slot record cannot be read: the connector cannot tell a first start from a lost slot,
/// so it creates nothing and checks again after a backoff.
struct SlotRecordUnavailable: Error, CustomStringConvertible {
    /// What could not be read, and why.
    var description: String
}

/// The slot record in a compacted Kafka topic, for a role that may neither create nor write the database table:
/// one record per connector, system and slot, keyed `CONNECTOR SYSTEM SLOT`, in ``topic`` (create it with
/// `cleanup.policy=compact`; Kafka Connect keeps its offsets the same way).
struct KafkaSlotRecord {
    /// The topic.
    static let topic = "tailgate.connector-slots"
    /// How long writing or reading the record may take.
    static let deadline = Duration.seconds(10)

    let kafka: [String: String]
    let connector: String

    func key(systemID: String, slot: String) -> String { "\(connector) \(systemID) \(slot)" }

    /// Writes the record and waits for Kafka's acknowledgement.
    ///
    /// - Throws: ``KafkaError`` when the topic does not exist (it is not created here: it must be compacted), or the
    ///   record was not acknowledged within ``deadline`` (Kafka unreachable, no write permission).
    func remember(systemID: String, slot: String, since: String?) async throws {
        if case .failure(let error) = await Self.offsets(kafka) {
            throw error.codeName == "UNKNOWN_TOPIC_OR_PART"
                ? KafkaError(kind: .configuration, codeName: error.codeName,
                             message: "topic \(Self.topic) does not exist; create it with cleanup.policy=compact (one partition is enough)")
                : error
        }
        var properties = kafka
        properties["client.id"] = "tailgate-\(connector)-slot-record"
        let failure = Mutex<KafkaError?>(nil)
        let producer = try KafkaProducer(configuration: ProducerConfiguration(properties: properties), log: { _ in }) { report in
            if let error = report.error { failure.withLock { $0 = error } }
        }
        let value = "{\"connector\": \(Self.quoted(connector)), \"system_identifier\": \(Self.quoted(systemID)), \"slot\": \(Self.quoted(slot)), \"since_lsn\": \(since.map(Self.quoted) ?? "null")}"
        try await producer.send(KafkaRecord(topic: Self.topic, key: Array(key(systemID: systemID, slot: slot).utf8), value: Array(value.utf8)), token: 0)
        let left = await producer.flush(timeout: Self.deadline)
        if left > 0 { producer.purge() }
        _ = await producer.close(timeout: .seconds(1))
        if let error = failure.withLock({ $0 }) { throw error }
        if left > 0 {
            throw KafkaError(kind: .timedOut, codeName: "_MSG_TIMED_OUT",
                             message: "the slot record was not acknowledged within \(Self.deadline) (does topic \(Self.topic) exist?)")
        }
    }

    /// Whether the topic holds the record for `slot` on `systemID`; `false` when the topic does not exist.
    ///
    /// - Throws: ``KafkaError`` when the topic cannot be read to its end within ``deadline``: without the record the
    ///   connector cannot tell a first start from a lost slot, so it must not guess.
    func contains(systemID: String, slot: String) async throws -> Bool {
        let ends: [TopicPartition: KafkaWatermarks.Offsets]
        switch await Self.offsets(kafka) {
        case .success(let offsets): ends = offsets
        case .failure(let error) where error.codeName == "UNKNOWN_TOPIC_OR_PART": return false
        case .failure(let error): throw error
        }
        let wanted = Array(key(systemID: systemID, slot: slot).utf8)
        var remaining = ends.filter { $0.value.high > $0.value.low }
        guard !remaining.isEmpty else { return false }
        var properties = kafka
        properties["group.id"] = "tailgate-\(connector)-slot-record-\(UUID().uuidString)"
        properties["enable.auto.commit"] = "false"
        let consumer = try KafkaConsumer(properties: properties, log: { _ in })
        defer { Task { try? await consumer.close() } }
        try consumer.assign(remaining.mapValues { _ in .beginning })
        let deadline = ContinuousClock.now + Self.deadline
        while !remaining.isEmpty {
            guard ContinuousClock.now < deadline else {
                throw KafkaError(kind: .timedOut, codeName: "_TIMED_OUT",
                                 message: "topic \(Self.topic) could not be read to its end within \(Self.deadline)")
            }
            for record in try await consumer.pollOnQueue(maxRecords: 1_000, timeout: .milliseconds(200)) {
                if record.key == wanted { return true }
                let partition = TopicPartition(topic: record.topic, partition: record.partition)
                if let end = remaining[partition], record.offset + 1 >= end.high { remaining[partition] = nil }
            }
        }
        return false
    }

    private static func offsets(_ kafka: [String: String]) async -> Result<[TopicPartition: KafkaWatermarks.Offsets], KafkaError> {
        do {
            return .success(try await KafkaWatermarks(properties: kafka, log: { _ in }).offsets(topic: topic, timeout: deadline))
        } catch {
            return .failure(error)
        }
    }

    private static func quoted(_ text: String) -> String {
        "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }
}
