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
        case prepare, startSession, wait(recreateProducer: Bool), finish, fail, none
        init(_ action: Machine.Action) {
            switch action {
            case .prepare: self = .prepare
            case .startSession: self = .startSession
            case .wait(_, _, let recreateProducer): self = .wait(recreateProducer: recreateProducer)
            case .finish: self = .finish
            case .fail: self = .fail
            case .none: self = .none
            }
        }
    }

    @Test(arguments: Reached.allCases) func prepared(in reached: Reached) {
        var machine = reached.machine()
        let action = Kind(machine.prepared())
        switch reached {
        case .preparing:
            #expect(action == .startSession && machine.state == .streaming(streamed: false))
        default:
            #expect(action == .none && machine.state == reached.state, "prepared() is only meaningful while preparing")
        }
    }

    @Test(arguments: Reached.allCases) func sessionEnded(in reached: Reached) {
        var machine = reached.machine()
        let action = Kind(machine.sessionEnded())
        switch reached {
        case .connecting, .streamed:
            #expect(action == .finish && machine.state == .stopped, "a session only ends cleanly after draining for a stop")
        default:
            #expect(action == .none && machine.state == reached.state)
        }
    }

    @Test(arguments: Reached.allCases) func stopRequested(in reached: Reached) {
        var machine = reached.machine()
        let action = Kind(machine.stopRequested())
        switch reached {
        case .stopped, .failed:
            #expect(action == .none && machine.state == reached.state, "a stopped connector stays as it ended")
        default:
            #expect(action == .finish && machine.state == .stopped, "nothing new starts after a stop request")
        }
    }

    @Test(arguments: Reached.allCases) func waited(in reached: Reached) {
        var machine = reached.machine()
        let action = Kind(machine.waited())
        switch reached {
        case .waitingToPrepare:
            #expect(action == .prepare && machine.state == .preparing)
        case .waitingToStream:
            #expect(action == .startSession && machine.state == .streaming(streamed: false))
        default:
            #expect(action == .none && machine.state == reached.state)
        }
    }

    @Test(arguments: Reached.allCases) func transientPostgresFailure(in reached: Reached) {
        for error in [Self.lost, Self.refused] {
            var machine = reached.machine()
            let action = Kind(machine.failed(error))
            switch reached {
            case .preparing:
                #expect(action == .wait(recreateProducer: false) && machine.state == .waiting(then: .prepare),
                        "PostgreSQL unreachable at start is waited out like later")
            case .connecting, .streamed:
                #expect(action == .wait(recreateProducer: false) && machine.state == .waiting(then: .startSession))
            default:
                #expect(action == .none && machine.state == reached.state)
            }
        }
    }

    @Test(arguments: Reached.allCases) func slotInUse(in reached: Reached) {
        var machine = reached.machine()
        let action = machine.failed(Self.slotBusy)
        switch reached {
        case .connecting, .streamed:
            guard case .wait(let delay, .slotInUse, false) = action else {
                Issue.record("expected a short wait for the busy slot, got \(action)")
                return
            }
            #expect(delay <= Machine.slotInUseMaxWait)
        case .preparing:
            #expect(Kind(action) == .wait(recreateProducer: false))
        default:
            #expect(Kind(action) == .none && machine.state == reached.state)
        }
    }

    @Test(arguments: Reached.allCases) func kafkaFatal(in reached: Reached) {
        var machine = reached.machine()
        let action = Kind(machine.failed(Self.kafkaFatal))
        switch reached {
        case .preparing, .connecting, .streamed:
            #expect(action == .wait(recreateProducer: true), "a fatal producer is replaced, and the slot replays")
        default:
            #expect(action == .none && machine.state == reached.state)
        }
    }

    @Test(arguments: Reached.allCases) func slotRecordUnavailable(in reached: Reached) {
        var machine = reached.machine()
        let action = Kind(machine.failed(SlotRecordUnavailable(description: "Kafka unreachable")))
        switch reached {
        case .preparing:
            #expect(action == .wait(recreateProducer: false) && machine.state == .waiting(then: .prepare))
        case .connecting, .streamed:
            #expect(action == .wait(recreateProducer: false) && machine.state == .waiting(then: .startSession),
                    "a missing slot whose record cannot be read is checked again, never created blindly")
        default:
            #expect(action == .none && machine.state == reached.state)
        }
    }

    @Test(arguments: Reached.allCases) func permanentFailure(in reached: Reached) {
        for error in [Self.setup as any Error, Self.permissionDenied, ConnectorError(.shutdownDeadline, "3 purged"),
                      ConnectorError(.invalidStream, "undecodable"), KafkaError(kind: .permanent, codeName: "MSG_SIZE_TOO_LARGE", message: "")] {
            var machine = reached.machine()
            let action = Kind(machine.failed(error))
            switch reached {
            case .preparing, .connecting, .streamed:
                #expect(action == .fail && machine.state == .failed, "\(error) is not retried")
            default:
                #expect(action == .none && machine.state == reached.state)
            }
        }
    }

    @Test(arguments: Reached.allCases) func sessionStarted(in reached: Reached) {
        var machine = reached.machine()
        machine.sessionStarted()
        #expect(machine.state == (reached == .connecting ? .streaming(streamed: true) : reached.state))
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
