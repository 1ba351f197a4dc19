import Dispatch
import Synchronization

/// An operation that did not finish within its deadline.
struct DeadlineExceeded: Error, CustomStringConvertible {
    /// What was waited for, and how long.
    var what: String
    var limit: Duration
    var description: String { "\(what) did not finish within \(limit)" }
}

/// Runs `body` and returns its result, or throws ``DeadlineExceeded`` once `limit` has passed, whichever comes first.
///
/// Unlike a task group, this does not wait for `body` to notice cancellation: a blocking libpq call on a dead
/// network returns only when TCP gives up, and the caller must not wait that long. `body` is cancelled and left to
/// finish in the background; whatever it holds (an abandoned connection) is released when it does.
func withDeadline<T: Sendable>(_ limit: Duration, _ what: String,
                               _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    let outcome = ResumeOnce<T>()
    return try await withCheckedThrowingContinuation { continuation in
        outcome.arm(continuation)
        let work = Task {
            do {
                outcome.resume(.success(try await body()))
            } catch {
                outcome.resume(.failure(error))
            }
        }
        let nanoseconds = limit.components.seconds * 1_000_000_000 + limit.components.attoseconds / 1_000_000_000
        DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(Int(clamping: nanoseconds))) {
            if outcome.resume(.failure(DeadlineExceeded(what: what, limit: limit))) { work.cancel() }
        }
    }
}

/// A throwing continuation resumed exactly once, by whichever outcome comes first.
private final class ResumeOnce<T: Sendable>: Sendable {
    private let state = Mutex<(continuation: CheckedContinuation<T, any Error>?, early: Result<T, any Error>?, done: Bool)>(
        (nil, nil, false))

    func arm(_ continuation: CheckedContinuation<T, any Error>) {
        let early = state.withLock { state -> Result<T, any Error>? in
            guard let early = state.early else {
                state.continuation = continuation
                return nil
            }
            return early
        }
        if let early { continuation.resume(with: early) }
    }

    /// Resumes with `result` unless an earlier outcome did; returns whether this one won.
    @discardableResult
    func resume(_ result: Result<T, any Error>) -> Bool {
        let continuation = state.withLock { state -> CheckedContinuation<T, any Error>?? in
            guard !state.done else { return .none }
            state.done = true
            guard let continuation = state.continuation else {
                state.early = result
                return .some(nil)
            }
            state.continuation = nil
            return .some(continuation)
        }
        switch continuation {
        case .none: return false
        case .some(let continuation):
            continuation?.resume(with: result)
            return true
        }
    }
}
