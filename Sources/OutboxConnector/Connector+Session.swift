import LibPQ
import Synchronization

extension Connector {
    /// The `startSession` step: connects for replication, checks the slot, runs one ``ReplicationSession`` and
    /// feeds what it reports to `machine`; returns the action that follows the session's end.
    ///
    /// The slot watcher (slot checks, heartbeats) runs beside the stream from the moment it opens until the session
    /// ends; a slot it finds invalidated fails the session's pipeline.
    ///
    /// - Throws: What failed before the session streamed (the connection, the slot check); the caller reports it to
    ///   `machine` like a session's failure.
    func runSession(setup: Setup, producer: any RecordSink,
                    machine: inout ConnectorStateMachine) async throws -> ConnectorStateMachine.Action {
        let replication = try await ReplicationConnection.connect(configuration.conninfo)
        defer { Task { await replication.close() } }
        let start = try await checkSlot(replication, setup: setup)
        let environment = ReplicationSession.Environment(configuration: configuration, options: options, router: router,
                                                         metrics: metrics, logger: logger, stop: stop, deliveries: deliveries)
        let session = ReplicationSession(environment: environment, replication: replication, startingAt: start,
                                         isOutbox: { setup.isOutbox($0) }, producer: producer,
                                         number: sessionNumber.add(1, ordering: .relaxed).newValue)
        async let ended: Void = session.run()
        var watcher: Task<Void, Never>?
        for await event in session.events {
            switch event {
            case .streaming(_, let pipeline):
                machine.sessionStarted()
                record(.running, phase: "streaming")
                watcher = watchSlot(setup, pipeline: pipeline, lastActivity: { session.lastPublished })
            case .confirmed(let position):
                setup.sessions.state.withLock { $0.confirmedPosition = max($0.confirmedPosition, position) }
            }
        }
        watcher?.cancel()
        do {
            try await ended
            return machine.sessionEnded()
        } catch {
            metrics.setStreaming(false)
            return machine.failed(error)
        }
    }

    /// Starts the ``SlotWatcher`` beside a streaming session: cancel the task to stop it.
    private func watchSlot(_ setup: Setup, pipeline: Pipeline,
                           lastActivity: @escaping @Sendable () -> ContinuousClock.Instant) -> Task<Void, Never> {
        SlotWatcher(
            heartbeatInterval: configuration.heartbeatIntervalSeconds > 0 ? .seconds(configuration.heartbeatIntervalSeconds) : nil,
            heartbeatTarget: { setup.writer }, metrics: metrics, logger: logger, lastActivity: lastActivity,
            checkSlot: { [self] in try await watchSlot(setup) },
            onSlotLost: { pipeline.fail($0) }).start()
    }
}
