import Foundation
import LibPQ
import Synchronization

/// A steady commerce load for fault tests: a transaction of ``rowsPerTransaction`` outbox rows at a fixed
/// interval, each event id derived from a sequence number, with the instant each transaction began.
final class OutboxLoad: Sendable {
    static let rowsPerTransaction = 5
    private let transactions = Mutex<[(firstSequence: Int, began: ContinuousClock.Instant)]>([])
    private let failures = Mutex<[String]>([])
    private let running = Atomic<Bool>(true)
    private let task = Mutex<Task<Void, Never>?>(nil)

    /// The event id of sequence number `sequence` (a UUID, as the outbox table's `id`).
    static func eventID(_ sequence: Int) -> String {
        String(format: "00000000-0000-4000-8000-%012x", sequence)
    }

    /// Starts inserting through `db` (which the cuts must not touch: a Unix socket) every `interval`.
    init(db: Connection, interval: Duration = .milliseconds(100)) {
        task.withLock { $0 = Task { [self] in await self.write(db, interval: interval) } }
    }

    private func write(_ db: Connection, interval: Duration) async {
        var sequence = 0
        var due = ContinuousClock.now
        while running.load(ordering: .acquiring) {
            let began = ContinuousClock.now
            do {
                try await db.execute("""
                    INSERT INTO outbox_event (id, topic, aggregate_type, aggregate_id, event_type, payload)
                    SELECT ('00000000-0000-4000-8000-' || lpad(to_hex($1::int + g), 12, '0'))::uuid,
                           CASE WHEN g % 2 = 0 THEN 'order-events' ELSE 'catalog-events' END, 'product',
                           'key-' || (($1::int + g) % 50), 'E', jsonb_build_object('seq', $1::int + g)
                    FROM generate_series(0, $2::int - 1) g
                    """, [sequence, Self.rowsPerTransaction])
                let first = sequence
                transactions.withLock { $0.append((first, began)) }
                sequence += Self.rowsPerTransaction
            } catch {
                failures.withLock { $0.append("\(error)") }
            }
            due += interval
            if due > .now { try? await Task.sleep(until: due, clock: .continuous) } else { due = .now }
        }
    }

    /// Event ids of the transactions that began after `instant`.
    func ids(after instant: ContinuousClock.Instant) -> [String] {
        transactions.withLock { $0 }.filter { $0.began > instant }.flatMap { transaction in
            (0..<Self.rowsPerTransaction).map { Self.eventID(transaction.firstSequence + $0) }
        }
    }

    /// Every event id written so far.
    var allIDs: [String] {
        transactions.withLock { $0 }.flatMap { transaction in
            (0..<Self.rowsPerTransaction).map { Self.eventID(transaction.firstSequence + $0) }
        }
    }

    /// Insert errors (the load's own connection never crosses a cut, so there should be none).
    var errors: [String] { failures.withLock { $0 } }

    /// Stops the load after the transaction in progress.
    func stop() async {
        running.store(false, ordering: .releasing)
        await task.withLock { $0 }?.value
    }
}
