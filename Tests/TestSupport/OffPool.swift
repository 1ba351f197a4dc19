import Dispatch

/// Runs blocking work (a child process, a librdkafka call that waits for its threads) on a dispatch queue of its
/// own and resumes with its result, so that it never holds one of the concurrency pool's few threads.
public func offPool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        // A serial queue of its own gets its own thread, outside the width-limited global pool.
        DispatchQueue(label: "tailgate.test.off-pool").async { continuation.resume(with: Result { try work() }) }
    }
}
