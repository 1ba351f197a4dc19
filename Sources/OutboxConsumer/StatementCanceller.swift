import Dispatch
import LibPQ
import ServiceRuntime
import Synchronization

/// Cancels the consumer's statement in flight when a stop is requested, so that a stop never waits for a statement
/// blocked on a lock (which only a server-side timeout, if one is set, would end).
///
/// ``BatchApplier`` runs each transaction of its own (a batch, a release) inside ``whileRunning(_:connection:_:)``;
/// ``stopRequested()`` is registered with the consumer's ``StopSignal``. The cancelled statement fails with SQLSTATE
/// `57014`, the transaction rolls back, and ``BatchApplier`` reports ``StopInterrupted``: nothing of the batch is
/// applied and its offsets are not stored, so the next start applies it from the stored offsets, once.
///
/// A cancel request reaches only a statement the server is running; one that arrives between two statements is
/// ignored. So the request is sent again every second until the transaction has ended.
final class StatementCanceller: Sendable {
    /// The cancel request of the connection last lent to a transaction, and whether a transaction runs on it.
    private struct State {
        /// ``DatabaseLink/connectionsOpened`` when `request` was made: a new connection needs a new request.
        var connection = 0
        var request: CancelRequest?
        var running = false
    }

    private let state = Mutex(State())
    private let stop: StopSignal
    /// How soon a cancel request is sent again while the transaction has not ended.
    private let resendAfter: Duration

    /// - Parameters:
    ///   - stop: The consumer's stop signal, checked before a transaction starts.
    ///   - resendAfter: How soon a cancel request is sent again while the transaction has not ended.
    init(stop: StopSignal, resendAfter: Duration = .seconds(1)) {
        self.stop = stop
        self.resendAfter = resendAfter
    }

    /// Runs `body`, a transaction on `session`, so that a stop cancels its statement in flight.
    ///
    /// - Parameter connection: Which connection `session` is on (``DatabaseLink/connectionsOpened``).
    /// - Throws: ``StopInterrupted`` without running `body` when a stop was already requested; whatever `body` throws.
    func whileRunning<T>(_ session: Session, connection: Int, _ body: () throws -> T) throws -> T {
        let stale = state.withLock { $0.request == nil || $0.connection != connection }
        // A new connection's request is made here, on the connection's thread, where libpq allows it.
        let request = stale ? session.cancelRequest() : nil
        state.withLock { state in
            if stale {
                state.request = request
                state.connection = connection
            }
            state.running = true
        }
        defer { state.withLock { $0.running = false } }
        // A stop requested before `running` was set found nothing to cancel: it is seen here instead.
        if stop.isRequested { throw StopInterrupted() }
        return try body()
    }

    /// Sends the cancel request for the transaction running, if one is, and again every ``resendAfter`` until it
    /// has ended. Returns at once: the request is sent from another thread (sending connects to the server, which
    /// may be slow to answer or away).
    func stopRequested() {
        guard let request = state.withLock({ $0.running ? $0.request : nil }) else { return }
        DispatchQueue.global().async { [self] in
            try? request.send()
            DispatchQueue.global().asyncAfter(deadline: .now() + DispatchTimeInterval(resendAfter)) { [self] in stopRequested() }
        }
    }
}
