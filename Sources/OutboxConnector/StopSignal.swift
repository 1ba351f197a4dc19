import Dispatch
import Synchronization

/// A one-way stop request that wakes whatever waits on it: handlers run once, at the request (or at once when
/// registered after it).
///
/// Waits in the connector are events, not polls: a backoff ends early when a stop is requested, and a replication
/// session cancels its reading task, which wakes a back-pressure wait.
final class StopSignal: Sendable {
    private struct State {
        var requested = false
        var handlers: [UInt64: @Sendable () -> Void] = [:]
        var nextHandler: UInt64 = 0
    }

    private let state = Mutex(State())

    /// Whether a stop was requested.
    var isRequested: Bool { state.withLock { $0.requested } }

    /// Requests the stop and runs every registered handler; later calls do nothing.
    func request() {
        let handlers = state.withLock { state -> [@Sendable () -> Void] in
            guard !state.requested else { return [] }
            state.requested = true
            defer { state.handlers = [:] }
            return Array(state.handlers.values)
        }
        for handler in handlers { handler() }
    }

    /// Runs `handler` when a stop is requested (at once if one was); returns a key for ``remove(_:)``.
    @discardableResult
    func onStop(_ handler: @escaping @Sendable () -> Void) -> UInt64? {
        let key = state.withLock { state -> UInt64? in
            guard !state.requested else { return nil }
            state.nextHandler += 1
            state.handlers[state.nextHandler] = handler
            return state.nextHandler
        }
        if key == nil { handler() }
        return key
    }

    /// Forgets a handler that is no longer needed.
    func remove(_ key: UInt64?) {
        guard let key else { return }
        state.withLock { _ = $0.handlers.removeValue(forKey: key) }
    }

    /// Waits `duration`, or less if a stop is requested meanwhile.
    func sleep(for duration: Duration) async {
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
}
