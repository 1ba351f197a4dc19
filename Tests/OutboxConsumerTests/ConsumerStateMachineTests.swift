@testable import OutboxConsumer
import RDKafka
import Testing

/// The consumer's batch lifecycle without any connection: every event in every state.
@Suite struct ConsumerStateMachineTests {
    typealias Machine = ConsumerStateMachine

    static let p0 = TopicPartition(topic: "events", partition: 0)
    static let p1 = TopicPartition(topic: "events", partition: 1)

    static func record(_ partition: TopicPartition, _ offset: Int64) -> ConsumerRecord {
        ConsumerRecord(topic: partition.topic, partition: partition.partition, offset: offset, key: nil, value: nil, headers: [],
                       timestampMilliseconds: nil)
    }

    /// A batch with records of both partitions.
    static let batch = [record(p0, 10), record(p1, 20), record(p0, 11)]
    static let rolledBack = Machine.Failure.rolledBack(reason: "the database is unreachable")

    /// The states, and how to reach each from a new machine.
    enum Reached: CaseIterable, CustomStringConvertible {
        case polling, applyingFast, applyingWithSavepoints, retrying, stopped

        var description: String { "\(state)" }

        /// The machine's state, in the order of the cases.
        static let states: [Machine.State] = [.polling, .applying(savepoints: false), .applying(savepoints: true), .retrying, .stopped]

        var state: Machine.State { Self.states[Self.allCases.firstIndex(of: self)!] }

        func machine() -> Machine {
            var machine = Machine(initialBackoff: .milliseconds(100), maxBackoff: .seconds(2), jitter: { 1 })
            switch self {
            case .polling: break
            case .applyingFast: _ = machine.recordsPolled(batch, revokedLeaving: nil)
            case .applyingWithSavepoints:
                _ = machine.recordsPolled(batch, revokedLeaving: nil)
                _ = machine.batchFailed(.handlerFailed)
            case .retrying:
                _ = machine.recordsPolled(batch, revokedLeaving: nil)
                _ = machine.batchFailed(rolledBack)
            case .stopped: _ = machine.stop()
            }
            #expect(machine.state == state)
            #expect(machine.pending == (self == .polling || self == .stopped ? [] : batch))
            return machine
        }
    }

    @Test(arguments: Reached.allCases) func recordsPolled(in reached: Reached) {
        var machine = reached.machine()
        let more = [Self.record(Self.p1, 21)]
        let action = machine.recordsPolled(more, revokedLeaving: nil)
        switch reached {
        case .polling:
            #expect(action == .apply(more, savepoints: false) && machine.state == .applying(savepoints: false))
        case .retrying:
            #expect(action == .none && machine.state == .retrying, "the batch keeps waiting for its retry time")
            #expect(machine.pending == Self.batch + more, "records fetched meanwhile are retried with it")
        case .applyingFast, .applyingWithSavepoints, .stopped:
            #expect(action == .none && machine.state == reached.state, "the loop polls only while polling or retrying")
        }
    }

    @Test(arguments: Reached.allCases) func anEmptyPoll(in reached: Reached) {
        var machine = reached.machine()
        let action = machine.recordsPolled([], revokedLeaving: nil)
        #expect(action == (reached == .polling ? .poll : .none) && machine.state == reached.state)
    }

    /// Records of partitions revoked during the poll are not this member's to apply: dropped from the poll's records
    /// and from a waiting batch, which is abandoned when none is left.
    @Test(arguments: Reached.allCases) func recordsPolledWhilePartitionsWereRevoked(in reached: Reached) {
        var machine = reached.machine()
        let polled = [Self.record(Self.p0, 12), Self.record(Self.p1, 21)]
        let keepP1 = machine.recordsPolled(polled, revokedLeaving: [Self.p1])
        switch reached {
        case .polling:
            #expect(keepP1 == .apply([Self.record(Self.p1, 21)], savepoints: false))
        case .retrying:
            #expect(keepP1 == .none && machine.pending == [Self.record(Self.p1, 20), Self.record(Self.p1, 21)])
            #expect(machine.recordsPolled([], revokedLeaving: []) == .abandonRetry(reason: "its partitions were revoked"))
            #expect(machine.state == .polling && machine.pending.isEmpty)
        case .applyingFast, .applyingWithSavepoints, .stopped:
            #expect(keepP1 == .none && machine.state == reached.state)
        }
        var revokedAll = reached.machine()
        let action = revokedAll.recordsPolled(polled, revokedLeaving: [])
        switch reached {
        case .polling: #expect(action == .poll && revokedAll.state == .polling)
        case .retrying: #expect(action == .abandonRetry(reason: "its partitions were revoked") && revokedAll.state == .polling)
        default: #expect(action == .none && revokedAll.state == reached.state)
        }
    }

    @Test(arguments: Reached.allCases) func batchCommitted(in reached: Reached) {
        var machine = reached.machine()
        let action = machine.batchCommitted()
        switch reached {
        case .applyingFast, .applyingWithSavepoints:
            #expect(action == .resumeAndPoll && machine.state == .polling && machine.pending.isEmpty)
        default:
            #expect(action == .none && machine.state == reached.state)
        }
    }

    /// The savepoint fallback is a state: a handler failing in the fast attempt sends the batch back with savepoints;
    /// a rollback (or a handler failure that escaped its savepoint) waits for a retry.
    @Test(arguments: Reached.allCases) func batchFailed(in reached: Reached) {
        var handlerFailed = reached.machine(), rolledBack = reached.machine()
        let afterHandler = handlerFailed.batchFailed(.handlerFailed), afterRollback = rolledBack.batchFailed(Self.rolledBack)
        let retry = Machine.State.retrying
        let expected: [(Machine.Action, Machine.State)] = switch reached {
        case .applyingFast: [(.apply(Self.batch, savepoints: true), .applying(savepoints: true)),
                             (.retryAfter(.milliseconds(100), reason: "the database is unreachable", records: 3), retry)]
        case .applyingWithSavepoints: [(.retryAfter(.milliseconds(100), reason: "a handler failed outside its savepoint", records: 3), retry),
                                       (.retryAfter(.milliseconds(100), reason: "the database is unreachable", records: 3), retry)]
        case .polling, .retrying, .stopped: [(.none, reached.state), (.none, reached.state)]
        }
        #expect(afterHandler == expected[0].0 && handlerFailed.state == expected[0].1)
        #expect(afterRollback == expected[1].0 && rolledBack.state == expected[1].1)
    }

    /// After a reconnect that found lost commits, the records of the partitions sought back are fetched again.
    @Test(arguments: Reached.allCases) func databaseReconnected(in reached: Reached) {
        var some = reached.machine()
        let rewoundP0 = some.databaseReconnected(rewound: [Self.p0])
        switch reached {
        case .applyingFast, .applyingWithSavepoints:
            #expect(rewoundP0 == .apply([Self.record(Self.p1, 20)], savepoints: reached == .applyingWithSavepoints))
            #expect(some.state == reached.state)
        case .retrying:
            #expect(rewoundP0 == .none && some.state == .retrying && some.pending == [Self.record(Self.p1, 20)])
        case .polling, .stopped:
            #expect(rewoundP0 == .none && some.state == reached.state)
        }
        var all = reached.machine()
        let rewoundBoth = all.databaseReconnected(rewound: [Self.p0, Self.p1])
        switch reached {
        case .applyingFast, .applyingWithSavepoints: #expect(rewoundBoth == .resumeAndPoll && all.state == .polling)
        case .retrying:
            #expect(rewoundBoth == .abandonRetry(reason: "its partitions were sought back to the database's offsets") && all.state == .polling)
        case .polling, .stopped: #expect(rewoundBoth == .none && all.state == reached.state)
        }
        #expect(all.pending.isEmpty)
    }

    /// A release runs at a batch boundary whatever the traffic (polling, or a batch in hand not yet applied), never
    /// while a rolled-back batch waits for its retry.
    @Test(arguments: Reached.allCases) func housekeeping(in reached: Reached) {
        var machine = reached.machine()
        let due = machine.housekeeping(releasesDue: true)
        switch reached {
        case .polling, .applyingFast, .applyingWithSavepoints: #expect(due == .releaseParkedKeys)
        case .retrying, .stopped: #expect(due == .none)
        }
        #expect(machine.housekeeping(releasesDue: false) == .none)
        #expect(machine.state == reached.state)
    }

    @Test(arguments: Reached.allCases) func releasesDone(in reached: Reached) {
        var machine = reached.machine()
        let action = machine.releasesDone()
        switch reached {
        case .polling: #expect(action == .poll)
        case .applyingFast: #expect(action == .apply(Self.batch, savepoints: false))
        case .applyingWithSavepoints: #expect(action == .apply(Self.batch, savepoints: true))
        case .retrying, .stopped: #expect(action == .none)
        }
        #expect(machine.state == reached.state)
    }

    @Test(arguments: Reached.allCases) func backoffElapsed(in reached: Reached) {
        var machine = reached.machine()
        let action = machine.backoffElapsed()
        if reached == .retrying {
            #expect(action == .apply(Self.batch, savepoints: false) && machine.state == .applying(savepoints: false),
                    "a retried batch tries the fast way first")
        } else {
            #expect(action == .none && machine.state == reached.state)
        }
    }

    @Test(arguments: Reached.allCases) func stop(in reached: Reached) {
        var machine = reached.machine()
        let action = machine.stop()
        #expect(action == (reached == .stopped ? .none : .finish))
        #expect(machine.state == .stopped && machine.pending.isEmpty)
    }

    @Test func theRetryWaitsGrowAcrossRollbacksAndStartOverAfterACommit() {
        var machine = Machine(initialBackoff: .milliseconds(100), maxBackoff: .milliseconds(300), jitter: { 1 })
        _ = machine.recordsPolled(Self.batch, revokedLeaving: nil)
        var waits: [Duration] = []
        for _ in 0..<4 {
            if case .retryAfter(let delay, _, _) = machine.batchFailed(Self.rolledBack) { waits.append(delay) }
            _ = machine.backoffElapsed()
        }
        #expect(waits == [.milliseconds(100), .milliseconds(200), .milliseconds(300), .milliseconds(300)])
        #expect(machine.batchCommitted() == .resumeAndPoll)
        _ = machine.recordsPolled(Self.batch, revokedLeaving: nil)
        #expect(machine.batchFailed(Self.rolledBack) == .retryAfter(.milliseconds(100), reason: "the database is unreachable", records: 3))
    }
}
