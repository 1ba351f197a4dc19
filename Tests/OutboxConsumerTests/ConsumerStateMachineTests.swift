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

    /// The states, and how to reach each from a new machine: of a statement handler's (batches start with the one
    /// pipeline), and of an ordinary handler's (`plain…`: batches start claim first).
    enum Reached: CaseIterable, CustomStringConvertible {
        case polling, applyingOnePipeline, applyingClaimFirst, applyingWithSavepoints, retrying, stopped
        case plainPolling, plainApplyingClaimFirst, plainApplyingWithSavepoints, plainRetrying

        var description: String { "\(state) (\(isPlain ? "plain" : "statements"))" }

        /// Whether the machine is an ordinary handler's.
        var isPlain: Bool { [.plainPolling, .plainApplyingClaimFirst, .plainApplyingWithSavepoints, .plainRetrying].contains(self) }

        /// How the machine's batches start.
        var firstMethod: Machine.Method { isPlain ? .claimFirst : .onePipeline }

        /// Whether a batch is in hand and applied next.
        var isApplying: Bool {
            if case .applying = state { return true }
            return false
        }

        var state: Machine.State {
            switch self {
            case .polling, .plainPolling: .polling
            case .applyingOnePipeline: .applying(.onePipeline)
            case .applyingClaimFirst, .plainApplyingClaimFirst: .applying(.claimFirst)
            case .applyingWithSavepoints, .plainApplyingWithSavepoints: .applying(.savepoints)
            case .retrying, .plainRetrying: .retrying
            case .stopped: .stopped
            }
        }

        func machine() -> Machine {
            var machine = Machine(statementHandler: !isPlain, initialBackoff: .milliseconds(100), maxBackoff: .seconds(2), jitter: { 1 })
            switch self {
            case .polling, .plainPolling: break
            case .applyingOnePipeline, .plainApplyingClaimFirst: _ = machine.recordsPolled(batch, revokedLeaving: nil)
            case .applyingClaimFirst:
                _ = machine.recordsPolled(batch, revokedLeaving: nil)
                _ = machine.batchFailed(.onePipelineFailed)
            case .applyingWithSavepoints:
                _ = machine.recordsPolled(batch, revokedLeaving: nil)
                _ = machine.batchFailed(.onePipelineFailed)
                _ = machine.batchFailed(.handlerFailed)
            case .plainApplyingWithSavepoints:
                _ = machine.recordsPolled(batch, revokedLeaving: nil)
                _ = machine.batchFailed(.handlerFailed)
            case .retrying, .plainRetrying:
                _ = machine.recordsPolled(batch, revokedLeaving: nil)
                _ = machine.batchFailed(rolledBack)
            case .stopped: _ = machine.stop()
            }
            #expect(machine.state == state)
            #expect(machine.firstMethod == firstMethod)
            #expect(machine.pending == (state == .polling || state == .stopped ? [] : batch))
            return machine
        }
    }

    @Test(arguments: Reached.allCases) func recordsPolled(in reached: Reached) {
        var machine = reached.machine()
        let more = [Self.record(Self.p1, 21)]
        let action = machine.recordsPolled(more, revokedLeaving: nil)
        switch reached.state {
        case .polling:
            #expect(action == .apply(more, method: reached.firstMethod) && machine.state == .applying(reached.firstMethod),
                    "a statement handler's batch starts with the one pipeline, an ordinary handler's claim first")
        case .retrying:
            #expect(action == .none && machine.state == .retrying, "the batch keeps waiting for its retry time")
            #expect(machine.pending == Self.batch + more, "records fetched meanwhile are retried with it")
        case .applying, .stopped:
            #expect(action == .none && machine.state == reached.state, "the loop polls only while polling or retrying")
        }
    }

    @Test(arguments: Reached.allCases) func anEmptyPoll(in reached: Reached) {
        var machine = reached.machine()
        let action = machine.recordsPolled([], revokedLeaving: nil)
        #expect(action == (reached.state == .polling ? .poll : .none) && machine.state == reached.state)
    }

    /// Records of partitions revoked during the poll are not this member's to apply: dropped from the poll's records
    /// and from a waiting batch, which is abandoned when none is left.
    @Test(arguments: Reached.allCases) func recordsPolledWhilePartitionsWereRevoked(in reached: Reached) {
        var machine = reached.machine()
        let polled = [Self.record(Self.p0, 12), Self.record(Self.p1, 21)]
        let keepP1 = machine.recordsPolled(polled, revokedLeaving: [Self.p1])
        switch reached.state {
        case .polling:
            #expect(keepP1 == .apply([Self.record(Self.p1, 21)], method: reached.firstMethod))
        case .retrying:
            #expect(keepP1 == .none && machine.pending == [Self.record(Self.p1, 20), Self.record(Self.p1, 21)])
            #expect(machine.recordsPolled([], revokedLeaving: []) == .abandonRetry(reason: "its partitions were revoked"))
            #expect(machine.state == .polling && machine.pending.isEmpty)
        case .applying, .stopped:
            #expect(keepP1 == .none && machine.state == reached.state)
        }
        var revokedAll = reached.machine()
        let action = revokedAll.recordsPolled(polled, revokedLeaving: [])
        switch reached.state {
        case .polling: #expect(action == .poll && revokedAll.state == .polling)
        case .retrying: #expect(action == .abandonRetry(reason: "its partitions were revoked") && revokedAll.state == .polling)
        default: #expect(action == .none && revokedAll.state == reached.state)
        }
    }

    @Test(arguments: Reached.allCases) func batchCommitted(in reached: Reached) {
        var machine = reached.machine()
        let action = machine.batchCommitted()
        if reached.isApplying {
            #expect(action == .resumeAndPoll && machine.state == .polling && machine.pending.isEmpty)
        } else {
            #expect(action == .none && machine.state == reached.state)
        }
    }

    /// The fallbacks are states: the one pipeline that did not commit sends the batch back claim first at once; a
    /// handler failing claim first sends it back with savepoints; a rollback (or a handler failure that escaped its
    /// savepoint) waits for a retry. Each attempt reports only its own kind of failure.
    @Test(arguments: Reached.allCases) func batchFailed(in reached: Reached) {
        var onePipeline = reached.machine(), handlerFailed = reached.machine(), rolledBack = reached.machine()
        let afterOnePipeline = onePipeline.batchFailed(.onePipelineFailed)
        let afterHandler = handlerFailed.batchFailed(.handlerFailed), afterRollback = rolledBack.batchFailed(Self.rolledBack)
        let retry = Machine.State.retrying
        let waitForTheDatabase = (Machine.Action.retryAfter(.milliseconds(100), reason: "the database is unreachable", records: 3), retry)
        let unexpected = (Machine.Action.none, reached.state)
        let expected: [(Machine.Action, Machine.State)] = switch reached.state {
        case .applying(.onePipeline): [(.apply(Self.batch, method: .claimFirst), .applying(.claimFirst)), unexpected, waitForTheDatabase]
        case .applying(.claimFirst): [unexpected, (.apply(Self.batch, method: .savepoints), .applying(.savepoints)), waitForTheDatabase]
        case .applying(.savepoints):
            [unexpected, (.retryAfter(.milliseconds(100), reason: "a handler failed outside its savepoint", records: 3), retry), waitForTheDatabase]
        case .polling, .retrying, .stopped: [unexpected, unexpected, unexpected]
        }
        #expect(afterOnePipeline == expected[0].0 && onePipeline.state == expected[0].1)
        #expect(afterHandler == expected[1].0 && handlerFailed.state == expected[1].1)
        #expect(afterRollback == expected[2].0 && rolledBack.state == expected[2].1)
        #expect(onePipeline.pending == reached.machine().pending && handlerFailed.pending == onePipeline.pending,
                "a fallback keeps the whole batch")
    }

    /// After a reconnect that found lost commits, the records of the partitions sought back are fetched again.
    @Test(arguments: Reached.allCases) func databaseReconnected(in reached: Reached) {
        var some = reached.machine()
        let rewoundP0 = some.databaseReconnected(rewound: [Self.p0])
        switch reached.state {
        case .applying(let method):
            #expect(rewoundP0 == .apply([Self.record(Self.p1, 20)], method: method), "the rest is applied the same way")
            #expect(some.state == reached.state)
        case .retrying:
            #expect(rewoundP0 == .none && some.state == .retrying && some.pending == [Self.record(Self.p1, 20)])
        case .polling, .stopped:
            #expect(rewoundP0 == .none && some.state == reached.state)
        }
        var all = reached.machine()
        let rewoundBoth = all.databaseReconnected(rewound: [Self.p0, Self.p1])
        switch reached.state {
        case .applying: #expect(rewoundBoth == .resumeAndPoll && all.state == .polling)
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
        switch reached.state {
        case .polling, .applying: #expect(due == .releaseParkedKeys)
        case .retrying, .stopped: #expect(due == .none)
        }
        #expect(machine.housekeeping(releasesDue: false) == .none)
        #expect(machine.state == reached.state)
    }

    @Test(arguments: Reached.allCases) func releasesDone(in reached: Reached) {
        var machine = reached.machine()
        let action = machine.releasesDone()
        switch reached.state {
        case .polling: #expect(action == .poll)
        case .applying(let method): #expect(action == .apply(Self.batch, method: method))
        case .retrying, .stopped: #expect(action == .none)
        }
        #expect(machine.state == reached.state)
    }

    @Test(arguments: Reached.allCases) func backoffElapsed(in reached: Reached) {
        var machine = reached.machine()
        let action = machine.backoffElapsed()
        if reached.state == .retrying {
            #expect(action == .apply(Self.batch, method: reached.firstMethod) && machine.state == .applying(reached.firstMethod),
                    "a retried batch tries the cheapest way first")
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

    /// A statement handler's batch that fell back claim first, then with savepoints, and committed: the next batch
    /// starts with the one pipeline again, and a fallback waits no backoff.
    @Test func theNextBatchStartsWithTheOnePipelineAgainAfterAFallback() {
        var machine = Machine(statementHandler: true, initialBackoff: .milliseconds(100), maxBackoff: .seconds(2), jitter: { 1 })
        #expect(machine.recordsPolled(Self.batch, revokedLeaving: nil) == .apply(Self.batch, method: .onePipeline))
        #expect(machine.batchFailed(.onePipelineFailed) == .apply(Self.batch, method: .claimFirst))
        #expect(machine.batchFailed(.handlerFailed) == .apply(Self.batch, method: .savepoints))
        #expect(machine.batchCommitted() == .resumeAndPoll)
        let next = [Self.record(Self.p0, 12)]
        #expect(machine.recordsPolled(next, revokedLeaving: nil) == .apply(next, method: .onePipeline))
    }

    @Test func theRetryWaitsGrowAcrossRollbacksAndStartOverAfterACommit() {
        var machine = Machine(statementHandler: true, initialBackoff: .milliseconds(100), maxBackoff: .milliseconds(300), jitter: { 1 })
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
