import Observability
import RDKafka
import ServiceRuntime

/// Serves the consumer's rebalance callback (on the consumer's thread, inside a Kafka poll): records the
/// assignment in the ``PartitionFlow`` and asks the ``OffsetStore`` where each assigned partition starts.
///
/// The stored offsets are read from the database for up to ``patience``; if it stays unreachable, the partitions start
/// at Kafka's committed copy (``OffsetStore/startOffsets(for:stored:)`` decides).
final class RebalanceHandler {
    /// Which partitions are assigned, and whether each fetches; the loop reconciles it after every poll.
    var flow = PartitionFlow()
    /// Whether partitions were revoked or lost since the loop last asked (``takeRevocation()``).
    private var revokedSinceLastLook = false
    /// The next offset the database holds for each assigned partition as far as this member knows: what it loaded
    /// at the assignment, raised by each batch the loop commits. A database that holds less after a reconnect lost
    /// commits (see ``OffsetStore/rewinds(known:stored:)``).
    var knownOffsets: [TopicPartition: Int64] = [:]

    private let offsets: OffsetStore
    private let database: DatabaseLink
    private let stop: StopSignal
    private let patience: Duration
    private let initialBackoff: Duration
    private let logger: EventLogger

    init(offsets: OffsetStore, database: DatabaseLink, stop: StopSignal, patience: Duration, initialBackoff: Duration,
         logger: EventLogger) {
        self.offsets = offsets
        self.database = database
        self.stop = stop
        self.patience = patience
        self.initialBackoff = initialBackoff
        self.logger = logger
    }

    /// The rebalance callback.
    func handle(_ event: RebalanceEvent) -> [TopicPartition: StartOffset] {
        switch event {
        case .assigned(let partitions):
            flow.assign(partitions)
            let stored = loadStoredOffsets(partitions)
            let starts = offsets.startOffsets(for: partitions, stored: stored)
            for partition in partitions { knownOffsets[partition] = stored?[partition] }
            logger.log(.info, "partitions_assigned", [("partitions", partitions.map(\.description).joined(separator: ",")),
                                                 ("start", stored == nil ? "kafka_committed" : "database")])
            return starts
        case .revoked(let partitions, let lost):
            flow.revoke(partitions)
            for partition in partitions { knownOffsets[partition] = nil }
            revokedSinceLastLook = true
            logger.log(lost ? .warning : .info, lost ? "partitions_lost" : "partitions_revoked",
                 [("partitions", partitions.map(\.description).joined(separator: ","))])
            return [:]
        }
    }

    /// The partitions this member owns if some were revoked or lost since the last call, else `nil`.
    func takeRevocation() -> Set<TopicPartition>? {
        guard revokedSinceLastLook else { return nil }
        revokedSinceLastLook = false
        return flow.assigned
    }

    /// The database's stored offsets, or `nil` when it could not be read within ``patience`` (or a stop came).
    private func loadStoredOffsets(_ partitions: [TopicPartition]) -> [TopicPartition: Int64]? {
        let deadline = ContinuousClock.now + patience
        var backoff = Backoff(initial: initialBackoff, maximum: .seconds(2))
        var attempt = 0
        while true {
            do {
                return try database.withSession { try offsets.load($0, partitions) }
            } catch {
                attempt += 1
                let giveUp = ContinuousClock.now >= deadline
                logger.log(.warning, "offsets_unavailable", [("error", "\(error)"), ("attempt", "\(attempt)"),
                                                        ("fallback", giveUp ? "kafka_committed" : "retrying")])
                if giveUp || stop.wait(for: min(backoff.next(), deadline - .now)) { return nil }
            }
        }
    }
}
