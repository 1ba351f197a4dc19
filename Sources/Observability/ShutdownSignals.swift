import Dispatch
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
/// then never see the signal.
///
/// This helper takes `@Sendable` handlers, which are never main-actor isolated, and forms the dispatch handler
/// itself, in nonisolated code, on a serial queue of its own: it works created from `main.swift`, an actor, a
/// detached task or a global queue, whether or not the main queue runs. Handlers run on that queue, once per
/// signal received.
///
/// The signals are ignored (`SIG_IGN`) while handled, so their default action (terminate) cannot race the
/// handler; ``cancel()`` (or releasing the last reference) restores the default action once no other
/// `ShutdownSignals` handles that signal. Keep the value alive as long as the signals should be handled.
public final class ShutdownSignals: Sendable {
    private struct State {
        var sources: [SignalSource] = []
        var handlers: [@Sendable (ShutdownSignal) -> Void] = []
        var received: [ShutdownSignal] = []
        var cancelled = false
    }

    private let signals: [ShutdownSignal]
    private let state = Mutex(State())

    /// Starts handling `signals`; signals received before a handler is registered are remembered.
    ///
    /// - Parameter signals: The signals to handle (default SIGTERM and SIGINT).
    public init(_ signals: [ShutdownSignal] = [.terminate, .interrupt]) {
        self.signals = signals
        let queue = DispatchQueue(label: "tailgate.shutdown-signals")
        let sources = signals.map { signal in
            Self.register(signal)
            return SignalSource(signal, queue: queue) { [weak self] signal in self?.received(signal) }
        }
        state.withLock { $0.sources = sources }
    }

    /// Starts handling `signals`, calling `handler` for each one received.
    ///
    /// - Parameters:
    ///   - signals: The signals to handle (default SIGTERM and SIGINT).
    ///   - handler: Called on the helper's own serial queue, once per signal received.
    public convenience init(_ signals: [ShutdownSignal] = [.terminate, .interrupt], handler: @escaping @Sendable (ShutdownSignal) -> Void) {
        self.init(signals)
        onSignal(handler)
    }

    /// Adds a handler, called for every signal received from now on; if a signal was received already, it is
    /// called at once (on the calling thread) with the first one.
    public func onSignal(_ handler: @escaping @Sendable (ShutdownSignal) -> Void) {
        let earlier = state.withLock { state in
            state.handlers.append(handler)
            return state.received.first
        }
        if let earlier { handler(earlier) }
    }

    /// The first signal received, if any.
    public var firstReceived: ShutdownSignal? { state.withLock { $0.received.first } }

    /// The signals as an `AsyncStream`, handled from the moment this returns (not from the first iteration).
    ///
    /// The stream ends when the iterating task is cancelled; then the signals get their default action back.
    ///
    /// - Parameter signals: The signals to handle (default SIGTERM and SIGINT).
    public static func stream(_ signals: [ShutdownSignal] = [.terminate, .interrupt]) -> AsyncStream<ShutdownSignal> {
        let (stream, continuation) = AsyncStream.makeStream(of: ShutdownSignal.self)
        let handler = ShutdownSignals(signals) { continuation.yield($0) }
        continuation.onTermination = { _ in handler.cancel() }
        return stream
    }

    private func received(_ signal: ShutdownSignal) {
        let handlers = state.withLock { state in
            if state.cancelled { return [] as [@Sendable (ShutdownSignal) -> Void] }
            state.received.append(signal)
            return state.handlers
        }
        for handler in handlers { handler(signal) }
    }

    /// Stops handling the signals and drops the handlers; each signal gets its default action back unless another
    /// `ShutdownSignals` still handles it. Calling it again does nothing.
    public func cancel() {
        let sources = state.withLock { state in
            if state.cancelled { return [] as [SignalSource] }
            state.cancelled = true
            state.handlers = []
            defer { state.sources = [] }
            return state.sources
        }
        guard !sources.isEmpty else { return }
        for source in sources { source.cancel() }
        for signal in signals { Self.unregister(signal) }
    }

    deinit {
        cancel()
    }

    /// How many live `ShutdownSignals` handle each signal number.
    private static let registrations = Mutex<[Int32: Int]>([:])

    private static func register(_ signal: ShutdownSignal) {
        registrations.withLock { counts in
            counts[signal.number, default: 0] += 1
            // Ignored first: a signal that arrives before the dispatch source is armed is then dropped instead of
            // terminating the process (the dispatch source sees signals whatever their disposition).
            _ = Glibc.signal(signal.number, SIG_IGN)
        }
    }

    private static func unregister(_ signal: ShutdownSignal) {
        registrations.withLock { counts in
            counts[signal.number, default: 1] -= 1
            if counts[signal.number] == 0 {
                counts[signal.number] = nil
                _ = Glibc.signal(signal.number, SIG_DFL)
            }
        }
    }
}

/// One dispatch signal source.
private final class SignalSource: @unchecked Sendable {
    // @unchecked Sendable: `source` is set once in `init`; DispatchSource's resume/cancel are thread-safe.
    private let source: any DispatchSourceSignal

    /// Forms the event handler here, in nonisolated code, so that it inherits no actor isolation whatever the
    /// caller's is.
    init(_ signal: ShutdownSignal, queue: DispatchQueue, handler: @escaping @Sendable (ShutdownSignal) -> Void) {
        source = DispatchSource.makeSignalSource(signal: signal.number, queue: queue)
        source.setEventHandler { handler(signal) }
        source.resume()
    }

    func cancel() {
        source.cancel()
    }
}
