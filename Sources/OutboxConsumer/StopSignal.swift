import Dispatch
import Synchronization

/// A stop request (``OutboxConsumer/stop()`` or task cancellation) as an event that wakes every wait of the
/// consumer's thread: a backoff delay returns early, and a Kafka poll in progress returns at once.
final class StopSignal: Sendable {
    private let requested = Atomic<Bool>(false)
    // Only the consumer's thread waits on it; one signal per request wakes it (a later wait sees the flag).
    private let wakeup = DispatchSemaphore(value: 0)
    // Wakes a blocking Kafka poll; held under the lock so that it is never called after its consumer was closed.
    private let interrupt = Mutex<(@Sendable () -> Void)?>(nil)

    /// Whether a stop was requested.
    var isRequested: Bool { requested.load(ordering: .acquiring) }

    /// Requests the stop and wakes whatever the consumer's thread is waiting for. Safe from any thread, any number of
    /// times.
    func request() {
        guard !requested.exchange(true, ordering: .acquiringAndReleasing) else { return }
        wakeup.signal()
        interrupt.withLock { $0?() }
    }

    /// Installs (or, with `nil`, removes) what interrupts a blocking wait outside this type, such as a Kafka poll.
    /// Removing it waits for a call in progress, so the interrupted object can be closed right after.
    func setInterrupt(_ body: (@Sendable () -> Void)?) {
        interrupt.withLock { $0 = body }
        if body != nil, isRequested { body?() }
    }

    /// Waits `duration` unless a stop is requested first; returns whether one was.
    ///
    /// This is the consumer's only sleep: a backoff delay, cut short by the stop.
    func wait(for duration: Duration) -> Bool {
        if isRequested { return true }
        let nanoseconds = max(0, duration.components.seconds) * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000
        _ = wakeup.wait(timeout: .now() + .nanoseconds(Int(min(nanoseconds, Int64(Int.max)))))
        return isRequested
    }
}
