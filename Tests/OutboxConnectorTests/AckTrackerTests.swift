@testable import OutboxConnector
import PGOutput
import Testing

@Suite struct AckTrackerTests {
    let a = LSN(rawValue: 100), b = LSN(rawValue: 200), c = LSN(rawValue: 300)

    @Test func aCommitIsConfirmableOnlyWhenItsRecordsAndEveryEarlierTransactionsAreAcknowledged() throws {
        var tracker = AckTracker(startingAt: LSN(rawValue: 50))
        try tracker.begin()
        let first = [try tracker.recordProduced(), try tracker.recordProduced()]
        #expect(try tracker.commit(endLSN: a) == nil)
        try tracker.begin()
        let second = try tracker.recordProduced()
        #expect(try tracker.commit(endLSN: b) == nil)
        #expect(tracker.inFlightRecords == 3)
        // The later transaction is acknowledged first: nothing moves.
        #expect(tracker.acknowledged(token: second).moved == nil)
        #expect(tracker.acknowledged(token: first[1]).moved == nil)
        #expect(tracker.confirmable == LSN(rawValue: 50))
        // The last record of the first transaction releases both.
        #expect(tracker.acknowledged(token: first[0]).moved == b)
        #expect(tracker.confirmable == b && tracker.inFlightRecords == 0 && tracker.pendingTransactions == 0)
    }

    @Test func transactionsWithoutRecordsAreConfirmedInOrder() throws {
        var tracker = AckTracker()
        try tracker.begin()
        let token = try tracker.recordProduced()
        _ = try tracker.commit(endLSN: a)
        try tracker.begin()
        #expect(try tracker.commit(endLSN: b) == nil, "an empty transaction waits behind an unacknowledged one")
        #expect(tracker.acknowledged(token: token).moved == b)
        try tracker.begin()
        #expect(try tracker.commit(endLSN: c) == c, "nothing pending: confirmable at once")
    }

    @Test func keepalivesAreConfirmableOnlyWhenIdle() throws {
        var tracker = AckTracker(startingAt: a)
        #expect(tracker.keepalive(serverWALEnd: b) == b)
        try tracker.begin()
        #expect(tracker.keepalive(serverWALEnd: c) == nil, "open transaction")
        let token = try tracker.recordProduced()
        _ = try tracker.commit(endLSN: c)
        #expect(tracker.keepalive(serverWALEnd: LSN(rawValue: 400)) == nil, "a record in flight")
        #expect(tracker.acknowledged(token: token).moved == c)
        #expect(tracker.keepalive(serverWALEnd: LSN(rawValue: 400)) == LSN(rawValue: 400))
        #expect(tracker.keepalive(serverWALEnd: LSN(rawValue: 350)) == nil, "never backwards")
    }

    @Test func unknownAndRepeatedAcknowledgementsChangeNothing() throws {
        var tracker = AckTracker()
        try tracker.begin()
        let token = try tracker.recordProduced()
        _ = try tracker.commit(endLSN: a)
        #expect(tracker.acknowledged(token: 999).moved == nil)
        #expect(tracker.acknowledged(token: token).moved == a)
        #expect(tracker.acknowledged(token: token).moved == nil)
        #expect(tracker.inFlightRecords == 0)
    }

    @Test func randomAcknowledgementOrderNeverConfirmsPastAnUnacknowledgedRecord() throws {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            var tracker = AckTracker()
            var tokens: [(UInt64, LSN)] = []
            var ends: [LSN] = []
            for transaction in 1...20 {
                try tracker.begin()
                let end = LSN(rawValue: UInt64(transaction * 100))
                for _ in 0..<Int.random(in: 0...3, using: &generator) { tokens.append((try tracker.recordProduced(), end)) }
                _ = try tracker.commit(endLSN: end)
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
    @Test func aLateAcknowledgementFromAnEarlierSessionMatchesNothing() throws {
        var earlier = AckTracker(firstToken: 1 << 40)
        try earlier.begin()
        let oldToken = try earlier.recordProduced()
        var current = AckTracker(firstToken: 2 << 40)
        try current.begin()
        _ = try current.recordProduced()
        _ = try current.commit(endLSN: LSN(rawValue: 500))
        #expect(current.acknowledged(token: oldToken).moved == nil, "a token of the earlier session")
        #expect(current.confirmable == .invalid && current.inFlightRecords == 1)
    }
}

@Suite struct AckTrackerProtocolViolationTests {
    @Test func aMessageOrderTheServerShouldNeverSendIsAnErrorNotACrash() throws {
        var tracker = AckTracker(startingAt: LSN(rawValue: 100))
        #expect(throws: AckTracker.ProtocolViolation.self) { _ = try tracker.recordProduced() }
        #expect(throws: AckTracker.ProtocolViolation.self) { _ = try tracker.commit(endLSN: LSN(rawValue: 200)) }
        try tracker.begin()
        let token = try tracker.recordProduced()
        #expect(throws: AckTracker.ProtocolViolation.self) { try tracker.begin() }
        // The violations changed nothing: the open transaction still holds its record.
        #expect(try tracker.commit(endLSN: LSN(rawValue: 300)) == nil)
        #expect(tracker.acknowledged(token: token).moved == LSN(rawValue: 300))
        #expect(tracker.inFlightRecords == 0 && !tracker.hasOpenTransaction)
    }
}

@Suite struct AckTrackerFailureTests {
    @Test func afterAFailureNothingMoreIsConfirmableWhateverIsAcknowledged() throws {
        var tracker = AckTracker(startingAt: LSN(rawValue: 100))
        try tracker.begin()
        let first = try tracker.recordProduced()
        #expect(try tracker.commit(endLSN: LSN(rawValue: 200)) == nil)
        try tracker.begin()
        let second = try tracker.recordProduced()
        #expect(try tracker.commit(endLSN: LSN(rawValue: 300)) == nil)
        #expect(tracker.acknowledged(token: first).moved == LSN(rawValue: 200))
        tracker.fail()
        #expect(tracker.acknowledged(token: second).moved == nil, "acknowledged after the failure, but not confirmable")
        #expect(tracker.keepalive(serverWALEnd: LSN(rawValue: 900)) == nil)
        try tracker.begin()
        #expect(try tracker.commit(endLSN: LSN(rawValue: 400)) == nil)
        #expect(tracker.confirmable == LSN(rawValue: 200) && tracker.isFailed && tracker.inFlightRecords == 0)
    }

    @Test func eachAcknowledgementCarriesItsTransactionsCommitTime() throws {
        var tracker = AckTracker()
        let early = PostgresTimestamp(rawValue: 1_000), late = PostgresTimestamp(rawValue: 2_000)
        let a = LSN(rawValue: 100), b = LSN(rawValue: 200)
        try tracker.begin(commitTime: early)
        let first = [try tracker.recordProduced(), try tracker.recordProduced()]
        _ = try tracker.commit(endLSN: a)
        try tracker.begin(commitTime: late)
        let second = try tracker.recordProduced()
        _ = try tracker.commit(endLSN: b)
        let acknowledgedSecond = tracker.acknowledged(token: second)
        #expect(acknowledgedSecond.commitTime == late && acknowledgedSecond.moved == nil)
        #expect(tracker.acknowledged(token: first[0]).commitTime == early)
        let acknowledgedLast = tracker.acknowledged(token: first[1])
        #expect(acknowledgedLast.commitTime == early && acknowledgedLast.moved == b)
        // A token it does not know (a late report from an earlier session) has none.
        #expect(tracker.acknowledged(token: second).commitTime == nil)
    }
}
