import Dispatch
import LibPQ
import Synchronization

/// The consumer's own thread as a task executor: an async handler runs on it, so the libpq calls it makes on the
/// batch's ``Session`` stay on the one thread that owns the connection, never on the cooperative pool.
///
/// ``run(_:)`` starts the handler as a task that prefers this executor and then, on the consumer's thread, runs the
/// task's jobs as they are enqueued (its first part, and each continuation after an `await` elsewhere) until it
/// finishes. The thread is blocked meanwhile, as it is for a synchronous handler, which is what keeps the batch's
/// transaction to one event at a time.
///
/// `@unchecked Sendable`: the job queue is behind a `Mutex`; the jobs run only on the thread that called `run`.
final class ConsumerThreadExecutor: TaskExecutor, @unchecked Sendable {
    private let jobs = Mutex<[UnownedJob]>([])
    private let ready = DispatchSemaphore(value: 0)

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        jobs.withLock { $0.append(job) }
        ready.signal()
    }

    /// Runs `handler(event, session)` to its end on the calling thread (the consumer's), running whatever it awaits
    /// elsewhere in between.
    ///
    /// - Throws: What the handler throws.
    func run(_ handler: @escaping OutboxConsumer.Handler, _ event: OutboxEvent, _ session: Session) throws {
        let lent = LentSession(session: session)
        let outcome = Mutex<Result<Void, any Error>?>(nil)
        Task(executorPreference: self) {
            let result: Result<Void, any Error>
            do {
                try await handler(event, lent.session)
                result = .success(())
            } catch {
                result = .failure(error)
            }
            outcome.withLock { $0 = result }
            self.ready.signal()
        }
        while true {
            ready.wait()
            while let job = jobs.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) {
                job.runSynchronously(on: asUnownedTaskExecutor())
            }
            if let result = outcome.withLock({ $0 }) { return try result.get() }
        }
    }
}

/// The batch's session, lent to the handler's task.
///
/// `@unchecked Sendable`: the session never leaves the consumer's thread: the task prefers
/// ``ConsumerThreadExecutor``, whose jobs run only on the thread that lent it, while that thread waits for the task.
private struct LentSession: @unchecked Sendable {
    let session: Session
}
