import Foundation
import LibPQ
import PGOutput
import Synchronization
import TestSupport
import Testing

/// `ReplicationStream.receive(maxFrames:timeout:coalescing:handle:batchDone:)`: frames handed over on the
/// connection's thread, in order, with pauses that lose nothing, and small bursts under load taken together.
@Suite struct ReplicationStreamReceiveTests {
    /// What the handlers saw; the closures run on the connection's thread.
    final class Seen: Sendable {
        struct State {
            var decoder = PGOutputDecoder()
            var ids: [Int] = []
            var commits = 0
            var frames = 0
            var bursts = 0
            /// Ids whose Insert asked the stream to pause (each once).
            var pausedAt: Set<Int> = []
        }
        let state = Mutex(State())

        /// Decodes `frame`; returns the id of an Insert.
        func take(_ frame: ReplicationFrame) throws -> Int? {
            guard case .xLogData(let data) = frame else { return nil }
            return try state.withLock { state throws -> Int? in
                state.frames += 1
                switch try state.decoder.decode(data.data) {
                case .insert(let insert):
                    let id = Int(insert.newTuple.values[0].string ?? "") ?? -1
                    state.ids.append(id)
                    return id
                case .commit:
                    state.commits += 1
                default:
                    break
                }
                return nil
            }
        }
    }

    @Test func framesComeInOrderAndAPauseLosesNothing() async throws {
        let fixture = try await ReplicationFixture.make()
        for id in 1...100 { try await fixture.db.execute("INSERT INTO items VALUES ($1, 'batch', NULL)", [id]) }
        let (connection, stream) = try await fixture.start()
        let seen = Seen()
        var calls = 0, callsWithFrames = 0
        let deadline = ContinuousClock.now + .seconds(60)
        while seen.state.withLock({ $0.commits }) < 100, ContinuousClock.now < deadline {
            let handled = try await stream.receive(maxFrames: 64, timeout: .seconds(1), coalescing: .zero, handle: { frame in
                // Every tenth row asks to pause once, as the connector does when a record must wait for room.
                guard let id = try seen.take(frame), id % 10 == 0 else { return true }
                return !seen.state.withLock { $0.pausedAt.insert(id).inserted }
            }, batchDone: {
                seen.state.withLock { $0.bursts += 1 }
                return true
            })
            #expect(handled <= 64)
            calls += 1
            if handled > 0 { callsWithFrames += 1 }
        }
        let state = seen.state.withLock { $0 }
        #expect(state.ids == Array(1...100), "every row once, in commit order, across the pauses")
        #expect(state.pausedAt.count == 10)
        #expect(calls >= 11, "each pause returns to the caller")
        #expect(state.bursts >= callsWithFrames, "a call that handled frames ends its batch")
        await stream.close()
        _ = connection
    }

    @Test func smallBurstsUnderLoadAreTakenTogether() async throws {
        let fixture = try await ReplicationFixture.make()
        let (connection, stream) = try await fixture.start()
        let writer = Task {
            // 300 one-row transactions 0.3 ms apart, paced by the server itself (a client's round trips slow down with
            // a busy test process), each flushed at its commit (the server decodes only flushed WAL): the server
            // sends each as it commits, and a reader that looks after each finds one transaction.
            _ = try await fixture.db.execute("""
                DO $$ DECLARE next timestamptz := clock_timestamp(); BEGIN
                    FOR i IN 1..300 LOOP
                        SET LOCAL synchronous_commit = on;
                        INSERT INTO items VALUES (i, 'load', NULL);
                        COMMIT;
                        next := next + interval '0.3 ms';
                        WHILE clock_timestamp() < next LOOP END LOOP;
                    END LOOP;
                END $$
                """)
        }
        let seen = Seen()
        let deadline = ContinuousClock.now + .seconds(60)
        while seen.state.withLock({ $0.commits }) < 300, ContinuousClock.now < deadline {
            try await stream.receive(maxFrames: 100_000, timeout: .seconds(1), coalescing: .milliseconds(20), handle: { frame in
                _ = try seen.take(frame)
                return true
            }, batchDone: {
                seen.state.withLock { $0.bursts += 1 }
                return true
            })
        }
        try await writer.value
        let state = seen.state.withLock { $0 }
        #expect(state.ids == Array(1...300))
        // Read as they arrive, the transactions come in about as many bursts as there are transactions; pausing
        // 20 ms after a small burst while frames come less than 20 ms apart takes the transactions of those 20 ms
        // together. The bound, four transactions a burst on average, leaves room for a writer several times slower.
        #expect(state.bursts * 4 <= state.commits, "\(state.bursts) bursts for \(state.commits) transactions")
        await stream.close()
        _ = connection
    }
}
