import Synchronization

/// Where a component keeps its metrics: one value holding every counter and gauge, changed under a lock and read
/// as a whole, which the component renders with ``PrometheusText``.
///
/// The connector's and the consumer's metrics are both built on it, so that they read the same way: a `Snapshot`
/// value (a service may export it in its own metrics system), `render(...)` for `/metrics`, and internal writers
/// that change the snapshot in one step under the lock (a counter and the gauge that goes with it never disagree).
package final class MetricsRegistry<Snapshot: Sendable>: Sendable {
    private let state: Mutex<Snapshot>

    /// Creates a registry holding `initial`.
    package init(_ initial: Snapshot) {
        state = Mutex(initial)
    }

    /// Every counter and gauge, as they are now.
    package var snapshot: Snapshot { state.withLock { $0 } }

    /// Changes the snapshot in one step.
    package func update(_ change: (inout Snapshot) -> Void) {
        state.withLock { change(&$0) }
    }
}
