import Dispatch
import Synchronization

/// A one-way stop request that wakes whatever waits on it, for the connector and the consumer alike.
///
/// Waits are events, not polls: a backoff ends early when a stop is requested (``sleep(for:)`` in async code,
/// ``wait(for:)`` on the consumer's own thread), and handlers registered with ``onStop(_:)`` run once at the
/// request (a replication session cancels its reader, the consumer wakes its Kafka poll).
package final class StopSignal: Sendable {
    private struct State {
        var requested = false
        var handlers: [UInt64: @Sendable () -> Void] = [:]
        var nextHandler: UInt64 = 0
    }

    private let state = Mutex(State())
    /// Held while the handlers run, and by ``remove(_:)``: once `remove` returns, its handler is not running and
    /// never will, so whatever it touches (a Kafka consumer it wakes) can be closed.
    private let running = Mutex<Void>(())
    /// Wakes the one thread that blocks in ``wait(for:)``; one signal per request (a later wait sees the flag).
    private let wakeup = DispatchSemaphore(value: 0)

    /// Creates a signal nobody has requested yet.
    package init() {}

    /// Whether a stop was requested.
    package var isRequested: Bool { state.withLock { $0.requested } }

    /// Requests the stop and runs every registered handler; later calls do nothing. Safe from any thread.
    package func request() {
        let first = running.withLock { _ -> Bool in
            let handlers = state.withLock { state -> [@Sendable () -> Void]? in
                guard !state.requested else { return nil }
                state.requested = true
                defer { state.handlers = [:] }
                return Array(state.handlers.values)
            }
            for handler in handlers ?? [] { handler() }
            return handlers != nil
        }
        if first { wakeup.signal() }
    }

    /// Runs `handler` when a stop is requested (at once if one was); returns a key for ``remove(_:)``.
    ///
    /// A handler must not call ``remove(_:)`` or ``request()``: it runs while they wait.
    @discardableResult
    package func onStop(_ handler: @escaping @Sendable () -> Void) -> UInt64? {
        let key = state.withLock { state -> UInt64? in
            guard !state.requested else { return nil }
            state.nextHandler += 1
            state.handlers[state.nextHandler] = handler
            return state.nextHandler
        }
        if key == nil { handler() }
        return key
    }

    /// Forgets a handler that is no longer needed; waits for it if it is running.
    package func remove(_ key: UInt64?) {
        guard let key else { return }
        running.withLock { _ in state.withLock { _ = $0.handlers.removeValue(forKey: key) } }
    }

    /// Waits `duration`, or less if a stop is requested meanwhile.
    package func sleep(for duration: Duration) async {
        let waiter = ResumeOnce<Void>()
        try? await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            waiter.arm(continuation)
            let key = onStop { waiter.resume(.success(())) }
            DispatchQueue.global().asyncAfter(deadline: .now() + DispatchTimeInterval(duration)) {
                waiter.resume(.success(()))
                self.remove(key)
            }
        }
    }

    /// Blocks the calling thread for `duration` unless a stop is requested first; returns whether one was.
    ///
    /// For the one thread that owns a blocking loop (the consumer's): only one thread may wait at a time.
    package func wait(for duration: Duration) -> Bool {
        if isRequested { return true }
        _ = wakeup.wait(timeout: .now() + DispatchTimeInterval(duration))
        return isRequested
    }
}
