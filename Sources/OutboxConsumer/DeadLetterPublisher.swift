import Dispatch
import Foundation
import RDKafka
import Synchronization

/// Sends poison events to the dead-letter topic and waits for Kafka's acknowledgement, so that the inbox marks an
/// event dead-lettered only once the record is safely in Kafka.
final class DeadLetterPublisher: Sendable {
    /// What each waiting publisher waits for, by token, shared with the producer's poll thread: a semaphore the
    /// delivery report signals, and the report's outcome.
    private final class Outcomes: Sendable {
        let waiting = Mutex<[UInt64: (signal: DispatchSemaphore, error: KafkaError??)]>([:])

        func delivered(token: UInt64, error: KafkaError?) {
            let signal = waiting.withLock { waiting -> DispatchSemaphore? in
                waiting[token]?.error = .some(error)
                return waiting[token]?.signal
            }
            signal?.signal()
        }
    }

    private let producer: KafkaProducer
    private let outcomes = Outcomes()
    private let nextToken = Atomic<UInt64>(0)

    /// Creates the producer; `log` receives its librdkafka lines.
    init(kafka: [String: String], clientID: String, log: @escaping KafkaLogHandler = defaultKafkaLogHandler) throws(KafkaError) {
        var properties = kafka
        for key in ["group.id", "enable.auto.commit", "enable.auto.offset.store", "auto.offset.reset", "enable.partition.eof",
                    "session.timeout.ms", "heartbeat.interval.ms", "max.poll.interval.ms", "partition.assignment.strategy",
                    "fetch.wait.max.ms", "isolation.level"] {
            properties.removeValue(forKey: key)
        }
        properties["client.id"] = clientID
        let outcomes = self.outcomes
        producer = try KafkaProducer(configuration: ProducerConfiguration(properties: properties), log: log) { report in
            outcomes.delivered(token: report.token, error: report.error)
        }
    }

    /// Produces `record` and blocks until Kafka acknowledged it.
    ///
    /// - Throws: ``KafkaError`` when it was refused, or of kind `timedOut` after `timeout`.
    func publishAndWait(_ record: KafkaRecord, timeout: Duration = .seconds(30)) throws(KafkaError) {
        let token = nextToken.add(1, ordering: .relaxed).newValue
        let signal = DispatchSemaphore(value: 0)
        outcomes.waiting.withLock { $0[token] = (signal, nil) }
        defer { outcomes.waiting.withLock { _ = $0.removeValue(forKey: token) } }
        // Waits are events: a full queue waits for delivery reports to make room, the acknowledgement for its report.
        try producer.sendBlocking(record, token: token)
        let nanoseconds = timeout.components.seconds * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000
        if signal.wait(timeout: .now() + .nanoseconds(Int(clamping: nanoseconds))) == .timedOut {
            throw KafkaError(kind: .timedOut, codeName: "_TIMED_OUT", message: "the dead-letter record was not acknowledged within \(timeout)")
        }
        if case .some(.some(let error)) = outcomes.waiting.withLock({ $0[token]?.error }) { throw error }
    }

    func close() async {
        await producer.close(timeout: .seconds(10))
    }
}
