import LibPQ
@testable import OutboxConnector
import RDKafka
import Testing

/// The connector's lifecycle without any connection: every event in every state.
@Suite struct ConnectorStateMachineTests {
    typealias Machine = ConnectorStateMachine

    static let lost = PostgresError(code: .connectionLost, message: "server closed the connection")
    static let refused = PostgresError(code: .connectionFailed, message: "connection refused")
    static let slotBusy = PostgresError(code: .queryFailed, message: "replication slot is active", sqlState: .objectInUse)
    static let permissionDenied = PostgresError(code: .queryFailed, message: "permission denied", sqlState: .insufficientPrivilege)
    static let kafkaFatal = KafkaError(kind: .fatal, codeName: "_FATAL", message: "gap-less guarantee broken")
    static let setup = ConnectorError(.setup, "wal_level is replica")

    /// The states, and how to reach each from a new machine.
    enum Reached: CaseIterable, CustomStringConvertible {
        case preparing, connecting, streamed, waitingToPrepare, waitingToStream, stopped, failed

        var description: String { "\(self.state)" }

        var state: Machine.State {
            switch self {
            case .preparing: .preparing
            case .connecting: .streaming(streamed: false)
            case .streamed: .streaming(streamed: true)
            case .waitingToPrepare: .waiting(then: .prepare)
            case .waitingToStream: .waiting(then: .startSession)
            case .stopped: .stopped
            case .failed: .failed
            }
        }

        func machine() -> Machine {
            var machine = Machine(initialBackoff: .milliseconds(100), maxBackoff: .seconds(2), jitter: { 1 })
            _ = machine.start()
            switch self {
            case .preparing: break
            case .connecting: _ = machine.prepared()
            case .streamed: _ = machine.prepared(); machine.sessionStarted()
            case .waitingToPrepare: _ = machine.failed(ConnectorStateMachineTests.refused)
            case .waitingToStream: _ = machine.prepared(); _ = machine.failed(ConnectorStateMachineTests.lost)
            case .stopped: _ = machine.stopRequested()
            case .failed: _ = machine.failed(ConnectorStateMachineTests.setup)
            }
            #expect(machine.state == state)
            return machine
        }
    }

    /// What an action is, without its payload.
    enum Kind: Equatable {
        case prepare, startSession, wait(recreateProducer: Bool), finish, fail
        init(_ action: Machine.Action) {
            switch action {
            case .prepare: self = .prepare
            case .startSession: self = .startSession
            case .wait(_, _, let recreateProducer): self = .wait(recreateProducer: recreateProducer)
            case .finish: self = .finish
            case .fail: self = .fail
            }
        }
    }

    /// Whether `event` may be driven in `reached`; a pair the machine does not accept would stop the process, so it
    /// is checked to be refused instead (and ``noPathFromStartReachesAnImpossiblePair()`` shows none is reachable).
    static func drivable(_ event: Machine.Event, in reached: Reached) -> Bool {
        let accepted = Machine.accepts(event, in: reached.state)
        let expected: Bool = switch (reached, event) {
        case (.preparing, .prepared), (.preparing, .failed), (.preparing, .stopRequested): true
        case (.connecting, .sessionStarted), (.connecting, .sessionEnded), (.connecting, .failed), (.connecting, .stopRequested): true
        case (.streamed, .sessionEnded), (.streamed, .failed): true
        case (.waitingToPrepare, .waited), (.waitingToPrepare, .stopRequested): true
        case (.waitingToStream, .waited), (.waitingToStream, .stopRequested): true
        default: false
        }
        #expect(accepted == expected, "\(event) in \(reached): accepted \(accepted)")
        return accepted
    }

    @Test(arguments: Reached.allCases) func prepared(in reached: Reached) {
        guard Self.drivable(.prepared, in: reached) else { return }
        var machine = reached.machine()
        let action = Kind(machine.prepared())
        #expect(action == .startSession && machine.state == .streaming(streamed: false))
    }

    @Test(arguments: Reached.allCases) func sessionEnded(in reached: Reached) {
        guard Self.drivable(.sessionEnded, in: reached) else { return }
        var machine = reached.machine()
        let action = Kind(machine.sessionEnded())
        #expect(action == .finish && machine.state == .stopped, "a session only ends cleanly after draining for a stop")
    }

    @Test(arguments: Reached.allCases) func stopRequested(in reached: Reached) {
        guard Self.drivable(.stopRequested, in: reached) else { return }
        var machine = reached.machine()
        let action = Kind(machine.stopRequested())
        #expect(action == .finish && machine.state == .stopped, "nothing new starts after a stop request")
    }

    @Test(arguments: Reached.allCases) func waited(in reached: Reached) {
        guard Self.drivable(.waited, in: reached) else { return }
        var machine = reached.machine()
        let action = Kind(machine.waited())
        switch reached {
        case .waitingToPrepare:
            #expect(action == .prepare && machine.state == .preparing)
        default:
            #expect(action == .startSession && machine.state == .streaming(streamed: false))
        }
    }

    @Test(arguments: Reached.allCases) func transientPostgresFailure(in reached: Reached) {
        guard Self.drivable(.failed, in: reached) else { return }
        for error in [Self.lost, Self.refused] {
            var machine = reached.machine()
            let action = Kind(machine.failed(error))
            switch reached {
            case .preparing:
                #expect(action == .wait(recreateProducer: false) && machine.state == .waiting(then: .prepare),
                        "PostgreSQL unreachable at start is waited out like later")
            default:
                #expect(action == .wait(recreateProducer: false) && machine.state == .waiting(then: .startSession))
            }
        }
    }

    @Test(arguments: Reached.allCases) func slotInUse(in reached: Reached) {
        guard Self.drivable(.failed, in: reached) else { return }
        var machine = reached.machine()
        let action = machine.failed(Self.slotBusy)
        guard case .wait(let delay, .slotInUse, false) = action else {
            Issue.record("expected a short wait for the busy slot, got \(action)")
            return
        }
        #expect(delay <= Machine.slotInUseMaxWait)
    }

    @Test(arguments: Reached.allCases) func kafkaFatal(in reached: Reached) {
        guard Self.drivable(.failed, in: reached) else { return }
        var machine = reached.machine()
        let action = Kind(machine.failed(Self.kafkaFatal))
        #expect(action == .wait(recreateProducer: true), "a fatal producer is replaced, and the slot replays")
    }

    @Test(arguments: Reached.allCases) func slotRecordUnavailable(in reached: Reached) {
        guard Self.drivable(.failed, in: reached) else { return }
        var machine = reached.machine()
        let action = Kind(machine.failed(SlotRecordUnavailable(description: "Kafka unreachable")))
        switch reached {
        case .preparing:
            #expect(action == .wait(recreateProducer: false) && machine.state == .waiting(then: .prepare))
        default:
            #expect(action == .wait(recreateProducer: false) && machine.state == .waiting(then: .startSession),
                    "a missing slot whose record cannot be read is checked again, never created blindly")
        }
    }

    @Test(arguments: Reached.allCases) func permanentFailure(in reached: Reached) {
        guard Self.drivable(.failed, in: reached) else { return }
        for error in [Self.setup as any Error, Self.permissionDenied, ConnectorError(.shutdownDeadline, "3 purged"),
                      ConnectorError(.invalidStream, "undecodable"), KafkaError(kind: .permanent, codeName: "MSG_SIZE_TOO_LARGE", message: "")] {
            var machine = reached.machine()
            let action = Kind(machine.failed(error))
            #expect(action == .fail && machine.state == .failed, "\(error) is not retried")
        }
    }

    @Test(arguments: Reached.allCases) func sessionStarted(in reached: Reached) {
        guard Self.drivable(.sessionStarted, in: reached) else { return }
        var machine = reached.machine()
        machine.sessionStarted()
        #expect(machine.state == .streaming(streamed: true))
    }

    /// A payload for each event: `failed` with one error of each class, which lead to different states.
    static func drive(_ event: Machine.Event, _ machine: Machine) -> [(Machine, Machine.Action?)] {
        func after(_ step: (inout Machine) -> Machine.Action?) -> (Machine, Machine.Action?) {
            var copy = machine
            let action = step(&copy)
            return (copy, action)
        }
        switch event {
        case .prepared: return [after { $0.prepared() }]
        case .sessionStarted: return [after { $0.sessionStarted(); return nil }]
        case .sessionEnded: return [after { $0.sessionEnded() }]
        case .waited: return [after { $0.waited() }]
        case .stopRequested: return [after { $0.stopRequested() }]
        case .failed:
            let errors: [any Error] = [lost, slotBusy, kafkaFatal, SlotRecordUnavailable(description: "Kafka unreachable"), setup]
            return errors
                .map { error in after { $0.failed(error) } }
        }
    }

    /// The connector reports only what the last action asks for, and a stop request before a step; walking every
    /// such path from start() reaches exactly the pairs the machine accepts, so its precondition cannot fire.
    @Test func noPathFromStartReachesAnImpossiblePair() {
        struct Node: Hashable {
            let state: Machine.State
            let next: Set<Machine.Event>
        }
        func node(_ machine: Machine, after action: Machine.Action?, pending: Set<Machine.Event>) -> Node {
            guard let action else {
                // sessionStarted returns nothing: the session goes on and ends or fails (a stop request reaches it
                // through the StopSignal; the machine hears only how it ended).
                return Node(state: machine.state, next: pending.subtracting([.sessionStarted, .stopRequested]))
            }
            return Node(state: machine.state, next: action.reports.union(action.startsStep ? [.stopRequested] : []))
        }
        var start = Machine(initialBackoff: .milliseconds(100), maxBackoff: .seconds(2), jitter: { 1 })
        let first = start.start()
        var queue = [(start, node(start, after: first, pending: []))]
        var seen = Set([queue[0].1])
        var reached = Set<String>()
        while let (machine, current) = queue.popLast() {
            for event in current.next {
                reached.insert("\(event) in \(current.state)")
                guard Machine.accepts(event, in: current.state) else {
                    Issue.record("\(event) can be reported in \(current.state), which the machine refuses")
                    continue
                }
                for (after, action) in Self.drive(event, machine) {
                    let next = node(after, after: action, pending: current.next)
                    if seen.insert(next).inserted { queue.append((after, next)) }
                }
            }
        }
        let states: [Machine.State] = [.preparing, .streaming(streamed: false), .streaming(streamed: true),
                                       .waiting(then: .prepare), .waiting(then: .startSession), .stopped, .failed]
        var accepted = Set<String>()
        for state in states {
            for event in Machine.Event.allCases where Machine.accepts(event, in: state) {
                accepted.insert("\(event) in \(state)")
            }
        }
        #expect(reached == accepted, "every pair the machine accepts is reachable, and no other: \(reached.symmetricDifference(accepted).sorted())")
        #expect(Set(states.map { "\($0)" }) == Set(seen.map { "\($0.state)" }), "every state is reachable")
    }

    @Test func backoffDoublesOverFailedAttemptsUpToTheMaximumAndStartsOverAfterASessionThatStreamed() {
        var machine = Machine(initialBackoff: .milliseconds(100), maxBackoff: .milliseconds(500), jitter: { 1 })
        _ = machine.start()
        #expect(Self.waits(&machine, 5) == [.milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(500), .milliseconds(500)])
        _ = machine.prepared()
        machine.sessionStarted()
        guard case .wait(let afterStreaming, _, _) = machine.failed(Self.lost) else { Issue.record("no wait"); return }
        #expect(afterStreaming == .milliseconds(100), "a session that streamed resets the backoff")
    }

    /// The waits come from the shared, jittered backoff; the jitter is the machine's input, so it stays pure.
    @Test func theJitterSpreadsTheWaitsAndTheDefaultCapIsFourSeconds() {
        var machine = Machine(initialBackoff: .seconds(1), jitter: { 0 })
        _ = machine.start()
        #expect(Self.waits(&machine, 6) == [.seconds(1), .seconds(1), .seconds(2), .seconds(2), .seconds(2), .seconds(2)])
    }

    /// The waits of `count` consecutive refused connections.
    static func waits(_ machine: inout Machine, _ count: Int) -> [Duration] {
        (0..<count).compactMap { _ in
            defer { _ = machine.waited() }
            guard case .wait(let delay, _, _) = machine.failed(refused) else { Issue.record("no wait"); return nil }
            return delay
        }
    }

    @Test func aBusySlotIsRetriedAtLeastEverySecondHoweverLongTheBackoff() {
        var machine = Machine(initialBackoff: .seconds(4), maxBackoff: .seconds(30))
        _ = machine.start()
        _ = machine.prepared()
        for _ in 0..<4 {
            guard case .wait(let delay, .slotInUse, _) = machine.failed(Self.slotBusy) else { Issue.record("no wait"); return }
            #expect(delay == .seconds(1))
            _ = machine.waited()
        }
    }

    @Test func classificationDecidesWhatIsWaitedOut() {
        func isTransient(_ error: any Error) -> Bool {
            if case .permanent = Machine.classify(error) { return false }
            return true
        }
        #expect(isTransient(Self.lost) && isTransient(Self.refused) && isTransient(Self.slotBusy) && isTransient(Self.kafkaFatal))
        #expect(isTransient(PostgresError(code: .queryFailed, message: "shutting down", sqlState: .adminShutdown)))
        #expect(isTransient(PostgresError(code: .queryFailed, message: "too many", sqlState: .tooManyConnections)))
        #expect(!isTransient(Self.permissionDenied))
        #expect(!isTransient(PostgresError(code: .queryFailed, message: "canceled", sqlState: .queryCanceled)))
        #expect(!isTransient(Self.setup))
        #expect(!isTransient(KafkaError(kind: .permanent, codeName: "TOPIC_AUTHORIZATION_FAILED", message: "")))
    }
}
