import LibPQ
import Observability
import ServiceRuntime

/// Beside a replication session: checks the slot every ``checkInterval`` and emits a
/// heartbeat when the outbox has been quiet for the heartbeat interval (``Connector/watchSlot(_:)`` is the check).
///
/// It never stands in the stream's way: it runs in a task of its own, every query has a deadline, and a failed
/// check is logged, not waited on. Only a verdict ends the session: a slot invalidated (`wal_status = lost`) fails
/// the session through `onSlotLost`.
struct SlotWatcher: Sendable {
    /// How often the slot's state is read.
    static let checkInterval = Duration.seconds(10)
    /// How long one check or heartbeat may take.
    static let queryDeadline = Duration.seconds(5)

    let heartbeatInterval: Duration?
    /// Where a heartbeat is written now (the primary, while decoding on a standby).
    let heartbeatTarget: @Sendable () -> DatabaseLink
    let metrics: ConnectorMetrics
    let logger: EventLogger
    /// When the session last published a record.
    let lastActivity: @Sendable () -> ContinuousClock.Instant
    /// Reads the slot's state and exports it; throws ``ConnectorError`` `slotLost` for an invalidated slot.
    let checkSlot: @Sendable () async throws -> Void
    let onSlotLost: @Sendable (ConnectorError) -> Void

    /// Starts watching; cancel the task to stop.
    func start() -> Task<Void, Never> {
        Task { await watch() }
    }

    private func watch() async {
        var nextCheck = ContinuousClock.now
        var lastHeartbeat = ContinuousClock.now
        while !Task.isCancelled {
            let now = ContinuousClock.now
            if now >= nextCheck {
                if await check() { return }
                nextCheck = .now + Self.checkInterval
            }
            var wakeAt = nextCheck
            if let heartbeatInterval {
                let due = max(lastActivity(), lastHeartbeat) + heartbeatInterval
                if ContinuousClock.now >= due {
                    await heartbeat()
                    lastHeartbeat = .now
                } else {
                    wakeAt = min(wakeAt, due)
                }
            }
            // A timer, not a poll: the next check or heartbeat is due then.
            try? await Task.sleep(until: max(wakeAt, .now + .milliseconds(10)), clock: .continuous)
        }
    }

    /// Runs the slot check; returns `true` when the slot was invalidated.
    private func check() async -> Bool {
        do {
            try await checkSlot()
            return false
        } catch let error as ConnectorError {
            onSlotLost(error)
            return true
        } catch {
            logger.warning("slot_check_failed", ("error", "\(error)"))
            return false
        }
    }

    private func heartbeat() async {
        do {
            try await heartbeatTarget().query(deadline: Self.queryDeadline, "SELECT pg_logical_emit_message(false, 'tailgate.heartbeat', now()::text)")
            metrics.heartbeat()
        } catch {
            logger.warning("heartbeat_failed", ("error", "\(error)"))
        }
    }
}
