import Dispatch
import Foundation
import RDKafka
import Synchronization

/// Sends poison events to the dead-letter topic and waits for Kafka's acknowledgement, so that the inbox marks an
/// event dead-lettered only once the record is safely in Kafka.
final class DeadLetterPublisher: Sendable {
    /// Delivery outcomes by token, shared with the producer's poll thread.
    private final class Outcomes: Sendable {
        let results = Mutex<[UInt64: KafkaError?]>([:])
        let signal = DispatchSemaphore(value: 0)
    }

    private let producer: KafkaProducer
    private let outcomes = Outcomes()
    private let nextToken = Atomic<UInt64>(0)

    init(kafka: [String: String], clientID: String) throws(KafkaError) {
        var properties = kafka
        for key in ["group.id", "enable.auto.commit", "enable.auto.offset.store", "auto.offset.reset", "enable.partition.eof",
                    "session.timeout.ms", "heartbeat.interval.ms", "max.poll.interval.ms", "partition.assignment.strategy",
                    "fetch.wait.max.ms", "isolation.level"] {
            properties.removeValue(forKey: key)
        }
        properties["client.id"] = clientID
        let outcomes = self.outcomes
        producer = try KafkaProducer(configuration: ProducerConfiguration(properties: properties), log: { _ in }) { report in
            outcomes.results.withLock { $0[report.token] = .some(report.error) }
            outcomes.signal.signal()
        }
    }

    /// Produces `record` and blocks until Kafka acknowledged it.
    ///
    /// - Throws: ``KafkaError`` when it was refused, or of kind `timedOut` after `timeout`.
    func publishAndWait(_ record: KafkaRecord, timeout: Duration = .seconds(30)) throws(KafkaError) {
        let token = nextToken.add(1, ordering: .relaxed).newValue
        while true {
            do {
                try producer.trySend(record, token: token)
                break
            } catch where error.kind == .queueFull {
                usleep(1_000)
            }
        }
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let outcome = outcomes.results.withLock({ $0.removeValue(forKey: token) }) {
                if let error = outcome { throw error }
                return
            }
            _ = outcomes.signal.wait(timeout: .now() + .milliseconds(100))
        }
        throw KafkaError(kind: .timedOut, codeName: "_TIMED_OUT", message: "the dead-letter record was not acknowledged within \(timeout)")
    }

    func close() async {
        await producer.close(timeout: .seconds(10))
    }
}
