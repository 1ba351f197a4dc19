import OutboxConnector
import PGOutput
import Testing

@Suite struct AckTrackerTests {
    let a = LSN(rawValue: 100), b = LSN(rawValue: 200), c = LSN(rawValue: 300)

    @Test func aCommitIsConfirmableOnlyWhenItsRecordsAndEveryEarlierTransactionsAreAcknowledged() {
        var tracker = AckTracker(startingAt: LSN(rawValue: 50))
        tracker.begin()
        let first = [tracker.recordProduced(), tracker.recordProduced()]
        #expect(tracker.commit(endLSN: a) == nil)
        tracker.begin()
        let second = tracker.recordProduced()
        #expect(tracker.commit(endLSN: b) == nil)
        #expect(tracker.inFlightRecords == 3)
        // The later transaction is acknowledged first: nothing moves.
        #expect(tracker.acknowledged(token: second) == nil)
        #expect(tracker.acknowledged(token: first[1]) == nil)
        #expect(tracker.confirmable == LSN(rawValue: 50))
        // The last record of the first transaction releases both.
        #expect(tracker.acknowledged(token: first[0]) == b)
        #expect(tracker.confirmable == b && tracker.inFlightRecords == 0 && tracker.pendingTransactions == 0)
    }

    @Test func transactionsWithoutRecordsAreConfirmedInOrder() {
        var tracker = AckTracker()
        tracker.begin()
        let token = tracker.recordProduced()
        _ = tracker.commit(endLSN: a)
        tracker.begin()
        #expect(tracker.commit(endLSN: b) == nil, "an empty transaction waits behind an unacknowledged one")
        #expect(tracker.acknowledged(token: token) == b)
        tracker.begin()
        #expect(tracker.commit(endLSN: c) == c, "nothing pending: confirmable at once")
    }

    @Test func keepalivesAreConfirmableOnlyWhenIdle() {
        var tracker = AckTracker(startingAt: a)
        #expect(tracker.keepalive(serverWALEnd: b) == b)
        tracker.begin()
        #expect(tracker.keepalive(serverWALEnd: c) == nil, "open transaction")
        let token = tracker.recordProduced()
        _ = tracker.commit(endLSN: c)
        #expect(tracker.keepalive(serverWALEnd: LSN(rawValue: 400)) == nil, "a record in flight")
        #expect(tracker.acknowledged(token: token) == c)
        #expect(tracker.keepalive(serverWALEnd: LSN(rawValue: 400)) == LSN(rawValue: 400))
        #expect(tracker.keepalive(serverWALEnd: LSN(rawValue: 350)) == nil, "never backwards")
    }

    @Test func unknownAndRepeatedAcknowledgementsChangeNothing() {
        var tracker = AckTracker()
        tracker.begin()
        let token = tracker.recordProduced()
        _ = tracker.commit(endLSN: a)
        #expect(tracker.acknowledged(token: 999) == nil)
        #expect(tracker.acknowledged(token: token) == a)
        #expect(tracker.acknowledged(token: token) == nil)
        #expect(tracker.inFlightRecords == 0)
    }

    @Test func randomAcknowledgementOrderNeverConfirmsPastAnUnacknowledgedRecord() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            var tracker = AckTracker()
            var tokens: [(UInt64, LSN)] = []
            var ends: [LSN] = []
            for transaction in 1...20 {
                tracker.begin()
                let end = LSN(rawValue: UInt64(transaction * 100))
                for _ in 0..<Int.random(in: 0...3, using: &generator) { tokens.append((tracker.recordProduced(), end)) }
                _ = tracker.commit(endLSN: end)
                ends.append(end)
            }
            var unacknowledged = tokens
            unacknowledged.shuffle(using: &generator)
            while let (token, _) = unacknowledged.popLast() {
                _ = tracker.acknowledged(token: token)
                // The oldest transaction still waiting bounds what may be confirmed.
                if let oldestWaiting = unacknowledged.map(\.1).min() {
                    #expect(tracker.confirmable < oldestWaiting)
                }
            }
            #expect(tracker.confirmable == ends.last)
        }
    }
}

@Suite struct AckTrackerSessionTests {
    @Test func aLateAcknowledgementFromAnEarlierSessionMatchesNothing() {
        var earlier = AckTracker(firstToken: 1 << 40)
        earlier.begin()
        let oldToken = earlier.recordProduced()
        var current = AckTracker(firstToken: 2 << 40)
        current.begin()
        _ = current.recordProduced()
        _ = current.commit(endLSN: LSN(rawValue: 500))
        #expect(current.acknowledged(token: oldToken) == nil, "a token of the earlier session")
        #expect(current.confirmable == .invalid && current.inFlightRecords == 1)
    }
}
