import Foundation
import RDKafka
import Synchronization

/// A steady stream of outbox-like records for fault tests: ``recordsPerRound`` records with `event_id` headers
/// `ev-N` at a fixed interval, produced from wherever the producer was created, with the instant each round began.
final class EventLoad: Sendable {
    static let recordsPerRound = 5
    private let rounds = Mutex<[(firstSequence: Int, began: ContinuousClock.Instant)]>([])
    private let failures = Mutex<[String]>([])
    private let running = Atomic<Bool>(true)
    private let task = Mutex<Task<Void, Never>?>(nil)

    static func eventID(_ sequence: Int) -> String { "ev-\(sequence)" }

    /// Starts producing to `topic` with `producer` (which the cuts must not touch) every `interval`.
    init(producer: KafkaProducer, topic: String, interval: Duration = .milliseconds(100)) {
        task.withLock { $0 = Task { [self] in await self.produce(producer, topic: topic, interval: interval) } }
    }

    private func produce(_ producer: KafkaProducer, topic: String, interval: Duration) async {
        var sequence = 0
        var due = ContinuousClock.now
        while running.load(ordering: .acquiring) {
            let began = ContinuousClock.now
            do {
                for offset in 0..<Self.recordsPerRound {
                    let number = sequence + offset
                    try await producer.send(KafkaRecord(topic: topic, key: Array("key-\(number % 50)".utf8), value: Array("{\"n\":\(number)}".utf8),
                                                        headers: [KafkaHeader(name: "event_id", string: Self.eventID(number)),
                                                                  KafkaHeader(name: "event_type", string: "Tested")]),
                                            token: UInt64(number))
                }
                let first = sequence
                rounds.withLock { $0.append((first, began)) }
                sequence += Self.recordsPerRound
            } catch {
                failures.withLock { $0.append("\(error)") }
            }
            due += interval
            if due > .now { try? await Task.sleep(until: due, clock: .continuous) } else { due = .now }
        }
    }

    /// The lowest sequence number produced in a round that began after `instant`, if any.
    func firstSequence(after instant: ContinuousClock.Instant) -> Int? {
        rounds.withLock { $0 }.first { $0.began > instant }?.firstSequence
    }

    /// Every event id produced so far.
    var allIDs: [String] {
        rounds.withLock { $0 }.flatMap { round in (0..<Self.recordsPerRound).map { Self.eventID(round.firstSequence + $0) } }
    }

    /// Produce errors (the producer never crosses a cut, so there should be none).
    var errors: [String] { failures.withLock { $0 } }

    /// Stops after the round in progress.
    func stop() async {
        running.store(false, ordering: .releasing)
        await task.withLock { $0 }?.value
    }
}
