import LibPQ
import RDKafka
import ServiceRuntime

/// The connector's lifecycle: after each event, what the connector does next. Pure: no I/O, no clock, no logging.
///
/// ``Connector`` owns one, feeds it every event (the database checked, a session started or ended, a failure, a
/// stop request, a backoff elapsed) and performs the ``Action`` it returns. Every decision about failures lives
/// here: which errors are waited out (and how long), which need a new producer, which stop the connector.
///
/// ```
/// preparing ──prepared──▶ streaming ──failed(transient)──▶ waiting(then: session) ──waited──▶ streaming …
///     └──failed(transient)──▶ waiting(then: prepare) ──waited──▶ preparing …
/// streaming ──sessionEnded──▶ stopped          any step ──failed(permanent)──▶ failed
/// preparing, streaming, waiting ──stopRequested──▶ stopped
/// ```
///
/// Events arrive between steps: a stop request reaches a running session through the ``StopSignal`` (the session
/// drains and ends), and the machine hears of it once the step is over, so nothing new starts.
///
/// The connector reports only what the last action asks for (``Action/reports``), and a stop request before it
/// starts a step (``Action/startsStep``). Any other event in a state is impossible: ``accepts(_:in:)`` says which,
/// the machine stops the process with a precondition failure rather than guess, and a test walks every path from
/// ``start()`` to show that no path reaches one.
struct ConnectorStateMachine {
    /// Where the connector is.
    enum State: Hashable, Sendable {
        /// Checking the database (table, publication, privileges) before the first session.
        case preparing
        /// A replication session is connecting or streaming; `streamed` once it has streamed.
        case streaming(streamed: Bool)
        /// Backing off; `then` is what follows.
        case waiting(then: Step)
        /// Stopped cleanly.
        case stopped
        /// Stopped by an error retrying cannot fix.
        case failed
    }

    /// A step the connector takes after a backoff.
    enum Step: Hashable, Sendable {
        case prepare
        case startSession
    }

    /// What kind of failure an error is, which decides what happens next.
    enum Failure: Sendable {
        /// PostgreSQL cannot be reached or the connection broke: reconnect with backoff.
        case postgresUnavailable(PostgresError)
        /// Another process streams from the slot: try again soon, it frees within moments of its holder's end.
        case slotInUse(PostgresError)
        /// The producer raised a fatal error: replace it and resume from the slot.
        case kafkaFatal(KafkaError)
        /// The slot is missing and its record could not be read (Kafka unreachable): wait and check again, never
        /// create the slot without knowing.
        case slotRecordUnavailable(SlotRecordUnavailable)
        /// Retrying cannot help: stop with this error.
        case permanent(any Error)
    }

    /// What the connector does next.
    enum Action: Sendable {
        /// Check the database, then report ``prepared()`` or ``failed(_:)``.
        case prepare
        /// Open a replication session; report ``sessionStarted()`` once it streams, then ``sessionEnded()`` or
        /// ``failed(_:)``.
        case startSession
        /// Wait `delay` (a stop request cuts it short), then report ``waited()``; with `recreateProducer`, close
        /// the producer first and make a new one after. `cause` is what to log.
        case wait(Duration, cause: Failure, recreateProducer: Bool)
        /// Release everything and return.
        case finish
        /// Release everything and throw `error`.
        case fail(any Error)

        /// Whether the action starts a step, before which the connector reports a stop request if one came.
        var startsStep: Bool {
            switch self {
            case .prepare, .startSession, .wait: true
            case .finish, .fail: false
            }
        }

        /// The events the connector reports after performing the action, one of which comes next (the session
        /// reports ``Event/sessionStarted`` before it ends, if it streams).
        var reports: Set<Event> {
            switch self {
            case .prepare: [.prepared, .failed]
            case .startSession: [.sessionStarted, .sessionEnded, .failed]
            case .wait: [.waited]
            case .finish, .fail: []
            }
        }
    }

    /// What the connector reports, without payloads: one case per event method.
    enum Event: CaseIterable, Hashable, Sendable {
        case prepared, sessionStarted, sessionEnded, failed, waited, stopRequested
    }

    /// Whether `event` can arrive in `state`; every other pair is a programming error.
    static func accepts(_ event: Event, in state: State) -> Bool {
        switch (state, event) {
        case (.preparing, .prepared), (.preparing, .failed), (.preparing, .stopRequested):
            true
        case (.streaming(streamed: false), .sessionStarted), (.streaming(streamed: false), .stopRequested):
            true
        case (.streaming, .sessionEnded), (.streaming, .failed):
            true
        case (.waiting, .waited), (.waiting, .stopRequested):
            true
        default:
            // A stopped or failed machine hears nothing more: the connector returned. A session starts once.
            false
        }
    }

    /// Stops the process if `event` cannot arrive in the current state: the connector's loop broke the protocol.
    private func expect(_ event: Event) {
        precondition(Self.accepts(event, in: state),
                     "ConnectorStateMachine: \(event) cannot arrive in state \(state); the connector reported an event the last action did not ask for")
    }

    private(set) var state: State = .preparing
    /// The waits after failures (the shared ``Backoff``: capped, jittered).
    private(set) var backoff: Backoff
    /// Where each wait's jitter comes from: a random number in production, a fixed one in a test, so that the
    /// machine stays deterministic.
    private let jitter: @Sendable () -> Double

    /// Creates the machine; call ``start()`` for the first action.
    ///
    /// - Parameters:
    ///   - initialBackoff: The first wait after a failure, and the wait after a session that streamed.
    ///   - maxBackoff: The longest wait; waits double up to it over consecutive failed attempts.
    ///   - jitter: A number in `0...1` per wait (see ``Backoff/next(jitter:)``).
    init(initialBackoff: Duration = .milliseconds(250), maxBackoff: Duration = Backoff.defaultMaximum,
         jitter: @escaping @Sendable () -> Double = { Double.random(in: 0...1) }) {
        self.backoff = Backoff(initial: initialBackoff, maximum: maxBackoff)
        self.jitter = jitter
    }

    /// The busy-slot wait is capped: the slot frees within moments of its holder's death (a terminated walsender,
    /// another connector stopping), and waiting longer only delays the takeover.
    static let slotInUseMaxWait = Duration.seconds(1)

    /// Classifies an error. The one place that decides which failures the connector waits out, from the
    /// ``DatabaseCondition`` table it shares with the consumer: a condition that clears by itself is waited out.
    static func classify(_ error: any Error) -> Failure {
        switch error {
        case let error as PostgresError where DatabaseCondition(error) == .objectInUse:
            return .slotInUse(error)
        case let error as PostgresError where DatabaseCondition(error)?.clearsByItself == true:
            return .postgresUnavailable(error)
        case let error as KafkaError where error.isFatal:
            return .kafkaFatal(error)
        case let error as SlotRecordUnavailable:
            return .slotRecordUnavailable(error)
        default:
            return .permanent(error)
        }
    }

    /// The connector starts.
    mutating func start() -> Action {
        state = .preparing
        return .prepare
    }

    /// The database checks passed.
    mutating func prepared() -> Action {
        expect(.prepared)
        state = .streaming(streamed: false)
        return .startSession
    }

    /// The session opened its stream: the backoff starts over after it ends.
    mutating func sessionStarted() {
        expect(.sessionStarted)
        state = .streaming(streamed: true)
        backoff.reset()
    }

    /// A session ended without an error: it drained after a stop request.
    mutating func sessionEnded() -> Action {
        expect(.sessionEnded)
        // A session only ends cleanly when asked to stop.
        state = .stopped
        return .finish
    }

    /// A step failed with `error`.
    mutating func failed(_ error: any Error) -> Action {
        expect(.failed)
        let failure = Self.classify(error)
        if case .permanent(let error) = failure {
            state = .failed
            return .fail(error)
        }
        return wait(then: state == .preparing ? .prepare : .startSession, failure: failure)
    }

    /// A backoff elapsed (or was cut short by a stop request).
    mutating func waited() -> Action {
        expect(.waited)
        if state == .waiting(then: .prepare) {
            state = .preparing
            return .prepare
        }
        state = .streaming(streamed: false)
        return .startSession
    }

    /// A stop was requested (SIGTERM, ``Connector/requestStop()``), and the step under way is over: a session
    /// drained, a wait was cut short. Whatever was to come next does not start.
    mutating func stopRequested() -> Action {
        expect(.stopRequested)
        state = .stopped
        return .finish
    }

    private mutating func wait(then step: Step, failure: Failure) -> Action {
        if case .streaming(streamed: true) = state { backoff.reset() }
        state = .waiting(then: step)
        var recreateProducer = false
        var delay = backoff.next(jitter: jitter())
        switch failure {
        case .slotInUse:
            delay = min(delay, Self.slotInUseMaxWait)
        case .kafkaFatal:
            recreateProducer = true
        case .postgresUnavailable, .slotRecordUnavailable, .permanent:
            break
        }
        return .wait(delay, cause: failure, recreateProducer: recreateProducer)
    }
}
