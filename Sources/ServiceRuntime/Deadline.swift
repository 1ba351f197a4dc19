import Dispatch
import Synchronization

/// An operation that did not finish within its deadline.
package struct DeadlineExceeded: Error, CustomStringConvertible {
    /// What was waited for.
    package var what: String
    /// How long it was waited for.
    package var limit: Duration
    /// What did not finish, within how long.
    package var description: String { "\(what) did not finish within \(limit)" }
}

/// Runs `body` and returns its result, or throws ``DeadlineExceeded`` once `limit` has passed, whichever comes first.
///
/// Unlike a task group, this does not wait for `body` to notice cancellation: a blocking libpq call on a dead
/// network returns only when TCP gives up, and the caller must not wait that long. `body` is cancelled and left to
/// finish in the background; whatever it holds (an abandoned connection) is released when it does.
package func withDeadline<T: Sendable>(_ limit: Duration, _ what: String,
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
        DispatchQueue.global().asyncAfter(deadline: .now() + DispatchTimeInterval(limit)) {
            if outcome.resume(.failure(DeadlineExceeded(what: what, limit: limit))) { work.cancel() }
        }
    }
}
