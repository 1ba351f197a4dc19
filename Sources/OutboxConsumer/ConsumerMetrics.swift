import Observability

/// What an ``OutboxConsumer`` has done, for the service to expose.
public final class ConsumerMetrics: Sendable {
    /// A snapshot of the counters.
    public struct Snapshot: Sendable, Hashable {
        /// Events whose handler ran and committed.
        public var applied = 0
        /// Records skipped because their event was already in the inbox.
        public var duplicatesSkipped = 0
        /// Events sent to the dead-letter topic.
        public var deadLettered = 0
        /// Committed batches.
        public var batches = 0
        /// Batches rolled back and retried (database unreachable or read-only, a missing table, a lock timeout, …).
        public var batchRetries = 0
        /// Rollbacks since the last committed batch (0 when healthy).
        public var consecutiveBatchRetries = 0
        /// Why the last batch was rolled back, while retries go on; `nil` once a batch commits.
        public var lastRetryReason: String?
        /// Whether records have waited longer than ``ConsumerConfiguration/stallThreshold`` without progress.
        public var stalled = false
        /// How long records have waited without progress (0 when nothing waits or batches commit).
        public var secondsWithoutProgress = 0.0
        /// Records polled and waiting to be applied (a batch being retried).
        public var waitingRecords = 0
        /// Partitions assigned to this member.
        public var assignedPartitions = 0
        /// Assigned partitions paused while a batch waits for its retry.
        public var pausedPartitions = 0
        /// How long no Kafka broker has been reachable, in seconds (0 while one is).
        public var kafkaUnreachableSeconds = 0.0
        /// Round trips (waits for the database) the consumer itself made for its committed batches and the attempts
        /// they replaced: one for a batch sent in one pipeline (``OutboxConsumer/runStatements(_:)``); otherwise one
        /// for BEGIN + inbox claim + offsets + parked keys (a pipeline), one for COMMIT, two per savepoint after a
        /// handler failure; not the handler's own. Divided by ``batches``, the cost of exactly-once per batch.
        public var roundTrips = 0
        /// Batches of a statement handler whose one pipeline did not commit (an event already applied, a parked key, a
        /// failing handler or statement) and that were applied again the careful way, claim first.
        public var onePipelineFallbacks = 0
        /// Events parked (poison, or behind a parked key of theirs) by this instance.
        public var parked = 0
        /// Parked events applied by releases.
        public var released = 0
        /// Keys of this group parked in the database now (refreshed every few seconds).
        public var parkedKeys = 0
        /// Events of this group parked in the database now.
        public var parkedEvents = 0
        /// How long the oldest parked key has waited, in seconds.
        public var oldestParkedSeconds = 0.0
        /// Handler attempts that threw.
        public var handlerFailures = 0
        /// Records not yet consumed, per partition (from cached watermarks).
        public var lag: [String: Int64] = [:]
        /// Per event type: from the source transaction's commit to this batch's commit (`tailgate_commit_time`),
        /// the end-to-end freshness, not only Kafka lag.
        public var commitToApplied: [String: PrometheusHistogram] = [:]
    }

    /// Upper bounds (seconds) of the commit-to-applied histogram: milliseconds in a healthy pipeline, minutes in a
    /// backlog.
    public static let commitToAppliedBounds: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300]

    private let registry = MetricsRegistry(Snapshot())

    /// Creates empty metrics.
    public init() {}

    /// The current counters.
    public var snapshot: Snapshot { registry.snapshot }

    /// Changes the counters in one step.
    func update(_ change: (inout Snapshot) -> Void) {
        registry.update(change)
    }

    /// The counters in Prometheus text format, labelled with the consumer group.
    public func render(group: String) -> String {
        let s = snapshot
        let labels = [("group", group)]
        var text = PrometheusText()
        text.counter("tailgate_consumer_events_applied_total", help: "Events whose handler ran and committed.", labels: labels, s.applied)
        text.counter("tailgate_consumer_duplicates_skipped_total", help: "Records skipped because their event was already in the inbox.",
                     labels: labels, s.duplicatesSkipped)
        text.counter("tailgate_consumer_dead_lettered_total", help: "Events sent to the dead-letter topic.", labels: labels, s.deadLettered)
        text.counter("tailgate_consumer_batches_total", help: "Committed batches.", labels: labels, s.batches)
        text.counter("tailgate_consumer_batch_retries_total",
                     help: "Batches rolled back and retried (database unreachable or read-only, a missing table, a lock timeout, ...).",
                     labels: labels, s.batchRetries)
        text.gauge("tailgate_consumer_stalled", help: "1 while records have waited longer than the stall threshold without progress.",
                   labels: labels, s.stalled ? 1 : 0)
        text.gauge("tailgate_consumer_seconds_without_progress", help: "How long records have waited without a committed batch (0 when none wait).",
                   labels: labels, s.secondsWithoutProgress)
        text.gauge("tailgate_consumer_waiting_records", help: "Records polled and waiting to be applied (a batch being retried).",
                   labels: labels, s.waitingRecords)
        text.gauge("tailgate_consumer_kafka_unreachable_seconds", help: "How long no Kafka broker has been reachable (0 while one is).",
                   labels: labels, s.kafkaUnreachableSeconds)
        text.counter("tailgate_consumer_round_trips_total", help: "Round trips to the database the consumer itself made for its batches (not the handler's).",
                     labels: labels, s.roundTrips)
        text.counter("tailgate_consumer_one_pipeline_fallbacks_total",
                     help: "Batches of a statement handler applied again claim first because their one pipeline did not commit.",
                     labels: labels, s.onePipelineFallbacks)
        text.counter("tailgate_consumer_parked_total", help: "Events parked (poison, or behind a parked key of theirs).", labels: labels, s.parked)
        text.counter("tailgate_consumer_released_total", help: "Parked events applied by releases.", labels: labels, s.released)
        text.gauge("tailgate_consumer_parked_keys", help: "Keys parked in the database, waiting for a release.", labels: labels, s.parkedKeys)
        text.gauge("tailgate_consumer_parked_events", help: "Events parked in the database.", labels: labels, s.parkedEvents)
        text.gauge("tailgate_consumer_oldest_parked_seconds", help: "How long the oldest parked key has waited.", labels: labels, s.oldestParkedSeconds)
        text.gauge("tailgate_consumer_assigned_partitions", help: "Partitions assigned to this member.", labels: labels, s.assignedPartitions)
        text.gauge("tailgate_consumer_paused_partitions", help: "Assigned partitions paused while a batch waits for its retry.",
                   labels: labels, s.pausedPartitions)
        text.family("tailgate_consumer_commit_to_applied_seconds", .histogram,
                    help: "From the source transaction's commit to the consumer's commit of the event, per event type.")
        for (type, histogram) in s.commitToApplied.sorted(by: { $0.key < $1.key }) {
            text.histogramSeries("tailgate_consumer_commit_to_applied_seconds", labels: labels + [("event_type", type)], histogram)
        }
        text.family("tailgate_consumer_lag", .gauge, help: "Records not yet consumed, per partition (from cached watermarks).")
        for (partition, lag) in s.lag.sorted(by: { $0.key < $1.key }) {
            text.sample("tailgate_consumer_lag", labels: labels + [("partition", partition)], lag)
        }
        return text.output
    }
}
