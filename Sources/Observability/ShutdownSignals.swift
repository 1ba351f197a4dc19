import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Turns SIGTERM and SIGINT into a callback or an `AsyncStream`, safely under Swift 6 from any context.
///
/// ```swift
/// let signals = ShutdownSignals()                  // first thing: a signal from now on is not lost
/// let consumer = try OutboxConsumer(configuration: configuration)
/// signals.onSignal { signal in consumer.stop() }   // runs at once if a signal came in meanwhile
/// try await consumer.run { event, db in … }
/// ```
/// or `ShutdownSignals { signal in connector.requestStop() }`, or `for await signal in ShutdownSignals.stream()`.
///
/// Why a helper: the obvious code, `DispatchSource.makeSignalSource(signal: SIGTERM, queue: .global())` with
/// `setEventHandler { consumer.stop() }` written in `main.swift` or any `@MainActor` code, crashes on the first
/// signal (`SIGILL`, "Block was expected to execute on queue [com.apple.main-thread]"). The handler parameter is
/// not `@Sendable`, so Swift 6 infers the closure to be isolated to the main actor, like the code around it, and
/// checks that isolation when the closure runs — on a global queue the check fails. With `queue: .main` it works
/// only while the main queue is serviced (`dispatchMain()` or an async `main`), and a blocked main thread would
/// then never see the signal. A dispatch source is also armed asynchronously: a signal right after `resume()`
/// is lost.
///
/// This helper takes `@Sendable` handlers, which are never main-actor isolated, and catches the signals with
/// `sigaction` from the moment it returns; the handlers run on a thread of its own, once per signal received. It
/// works created from `main.swift`, an actor, a detached task or a global queue, whether or not the main queue
/// runs. Do not also handle the same signals with a dispatch source in the same process: libdispatch would take
/// them over.
///
/// ``cancel()`` (or releasing the last reference) gives each signal back its earlier action (usually: terminate)
/// once no other `ShutdownSignals` handles it. Keep the value alive as long as the signals should be handled.
public final class ShutdownSignals: Sendable {
    private let inbox: Inbox
    private let registration: Int

    /// Starts handling `signals`; signals received before a handler is registered are remembered.
    ///
    /// - Parameter signals: The signals to handle (default SIGTERM and SIGINT).
    public init(_ signals: [ShutdownSignal] = [.terminate, .interrupt]) {
        let inbox = Inbox(signals)
        self.inbox = inbox
        registration = SignalRelay.add(signals.map(\.number)) { inbox.received($0) }
    }

    /// Starts handling `signals`, calling `handler` for each one received.
    ///
    /// - Parameters:
    ///   - signals: The signals to handle (default SIGTERM and SIGINT).
    ///   - handler: Called on the helper's own thread, once per signal received.
    public convenience init(_ signals: [ShutdownSignal] = [.terminate, .interrupt], handler: @escaping @Sendable (ShutdownSignal) -> Void) {
        self.init(signals)
        onSignal(handler)
    }

    /// Adds a handler, called for every signal received from now on; if a signal was received already, it is
    /// called at once (on the calling thread) with the first one.
    public func onSignal(_ handler: @escaping @Sendable (ShutdownSignal) -> Void) {
        inbox.onSignal(handler)
    }

    /// The first signal received, if any.
    public var firstReceived: ShutdownSignal? { inbox.firstReceived }

    /// The signals as an `AsyncStream`, handled from the moment this returns (not from the first iteration).
    ///
    /// The stream ends when the iterating task is cancelled; then the signals get their earlier action back.
    ///
    /// - Parameter signals: The signals to handle (default SIGTERM and SIGINT).
    public static func stream(_ signals: [ShutdownSignal] = [.terminate, .interrupt]) -> AsyncStream<ShutdownSignal> {
        let (stream, continuation) = AsyncStream.makeStream(of: ShutdownSignal.self)
        let handler = ShutdownSignals(signals) { continuation.yield($0) }
        continuation.onTermination = { _ in handler.cancel() }
        return stream
    }

    /// Stops handling the signals and drops the handlers; each signal gets its earlier action back unless another
    /// `ShutdownSignals` still handles it. Calling it again does nothing.
    public func cancel() {
        if inbox.cancel() { SignalRelay.remove(registration) }
    }

    deinit {
        cancel()
    }
}

/// What one ``ShutdownSignals`` received, and its handlers.
private final class Inbox: Sendable {
    private struct State {
        var handlers: [@Sendable (ShutdownSignal) -> Void] = []
        var received: [ShutdownSignal] = []
        var cancelled = false
    }

    private let signals: [ShutdownSignal]
    private let state = Mutex(State())

    init(_ signals: [ShutdownSignal]) {
        self.signals = signals
    }

    var firstReceived: ShutdownSignal? { state.withLock { $0.received.first } }

    func onSignal(_ handler: @escaping @Sendable (ShutdownSignal) -> Void) {
        let earlier = state.withLock { state -> ShutdownSignal? in
            guard !state.cancelled else { return nil }
            state.handlers.append(handler)
            return state.received.first
        }
        if let earlier { handler(earlier) }
    }

    func received(_ number: Int32) {
        guard let signal = signals.first(where: { $0.number == number }) else { return }
        let handlers = state.withLock { state -> [@Sendable (ShutdownSignal) -> Void] in
            guard !state.cancelled else { return [] }
            state.received.append(signal)
            return state.handlers
        }
        for handler in handlers { handler(signal) }
    }

    /// Marks it cancelled; true the first time.
    func cancel() -> Bool {
        state.withLock { state in
            defer { state.cancelled = true; state.handlers = [] }
            return !state.cancelled
        }
    }
}
