import Foundation
import LibPQ
import Observability
import RDKafka
import ServiceRuntime

/// The consumer's thread: polls Kafka, hands batches to the ``BatchApplier``, retries rolled-back batches with
/// backoff while keeping the group membership, keeps every assigned partition fetching unless it is deliberately
/// waiting (``PartitionFlow``), and reports stalls.
///
/// Every wait here is an event: a Kafka poll (woken early by a stop through ``KafkaConsumer/wakeup()``), or a
/// backoff delay on the ``StopSignal``.
final class ConsumerLoop {
    /// How long an idle poll waits for records before housekeeping runs (lag, stalls, inbox sweep).
    static let tick: Duration = .milliseconds(500)
    /// How long an assignment waits for the database's stored offsets before starting at Kafka's committed copy.
    static let offsetPatience: Duration = .seconds(10)

    private let consumer: OutboxConsumer
    private let configuration: ConsumerConfiguration
    private let handler: OutboxConsumer.Handler
    private let stop: StopSignal
    private let database: DatabaseLink
    private let logger: EventLogger
    /// The database connection (``DatabaseLink/connectionsOpened``) on which the stored offsets were last compared
    /// with what this member knows; the first one, which the assignments read, needs no comparison.
    private var offsetsCheckedOn = 1

    init(consumer: OutboxConsumer, handler: @escaping OutboxConsumer.Handler) {
        self.consumer = consumer
        self.configuration = consumer.configuration
        self.handler = handler
        self.stop = consumer.stopSignal
        self.logger = consumer.logger
        self.database = DatabaseLink(conninfo: consumer.configuration.postgres,
                                     schema: consumer.inbox.createStatements(offsets: consumer.offsets, parked: consumer.parked),
                                     onLost: { [consumer] error in
                                         consumer.logger.log(.warning, "database_connection_lost", [
                                             ("error", "\(error)"), ("then", "the next use reconnects; the batch in progress, if any, is retried"),
                                         ])
                                     })
    }

    /// Runs until a stop request. Throws only what retrying cannot fix (bad Kafka settings, a fatal consumer error).
    func run() throws {
        // Kafka settings are checked before waiting for anything, so a typo fails at once.
        let deadLetters = try DeadLetterPublisher(kafka: configuration.kafka, clientID: "\(configuration.groupID)-dead-letters",
                                                  log: { [logger = consumer.logger] in logger.log($0) })
        defer {
            let done = DispatchSemaphore(value: 0)
            Task { await deadLetters.close(); done.signal() }
            done.wait()
        }
        let rebalance = RebalanceHandler(offsets: consumer.offsets, database: database, stop: stop, patience: Self.offsetPatience,
                                         initialBackoff: configuration.retryBackoff, logger: logger)
        var properties = ConsumerConfiguration.kafkaDefaults.merging(configuration.kafka) { $1 }
        properties["group.id"] = configuration.groupID
        // Offsets live in the service's database; Kafka's copy is only a mirror.
        properties["enable.auto.commit"] = "false"
        properties["enable.auto.offset.store"] = "false"
        let kafka = try KafkaConsumer(properties: properties, log: { [logger = consumer.logger] in logger.log($0) },
                                      rebalance: { rebalance.handle($0) })
        let wakeOnStop = stop.onStop { kafka.wakeup() }
        defer {
            stop.remove(wakeOnStop) // waits for a wakeup in progress: the consumer is closed next
            try? kafka.closeBlocking()
            database.close()
            logger.log(.info, "stopped")
        }
        // Joining the group before the database answers would only start every partition at Kafka's copy.
        guard waitForDatabase() else { return }
        try kafka.subscribe(configuration.topics)
        logger.log(.info, "started", [("topics", configuration.topics.joined(separator: ","))])
        try consume(kafka, rebalance: rebalance, applier: BatchApplier(
            configuration: configuration, inbox: consumer.inbox, offsets: consumer.offsets, parked: consumer.parked, handler: handler,
            deadLetters: deadLetters, stop: stop, logger: logger))
    }

    /// Connects (and creates the consumer's tables), retrying with backoff; `false` when a stop came first.
    private func waitForDatabase() -> Bool {
        var backoff = Backoff(initial: configuration.retryBackoff, maximum: configuration.maxBackoff)
        while !stop.isRequested {
            do {
                try database.open()
                return true
            } catch {
                let delay = backoff.next()
                logger.log(.warning, "postgres_unavailable", [("error", "\(error)"), ("reason", FailureClassifier.batchReason(error)),
                                                         ("retry_in", "\(delay)")])
                if stop.wait(for: delay) { return false }
            }
        }
        return false
    }

    private func consume(_ kafka: KafkaConsumer, rebalance: RebalanceHandler, applier: BatchApplier) throws {
        var pending: [ConsumerRecord] = []
        var backoff = Backoff(initial: configuration.retryBackoff, maximum: configuration.maxBackoff)
        var retryAt: ContinuousClock.Instant?
        var stall = StallDetector(threshold: configuration.stallThreshold, now: .now)
        var lastSweep = ContinuousClock.now
        var lastHousekeeping = ContinuousClock.now
        var progressed = false
        var lastFailure: String?
        var kafkaUnreachableReported = false
        var lastParkedCheck = ContinuousClock.now - .seconds(60)
        var lastParkedLog = ContinuousClock.now
        var mirror = MirrorSchedule(interval: .seconds(1), now: .now)
        defer { mirrorOffsets(kafka, &mirror, stopping: true) }

        while !stop.isRequested {
            // The only waits: for records when idle, for the retry time when a batch is being retried. Both are
            // Kafka polls, so the group keeps this member and rebalances are served meanwhile.
            let now = ContinuousClock.now
            if pending.isEmpty {
                pending = try kafka.poll(maxRecords: configuration.maxBatchSize, timeout: Self.tick)
            } else if let due = retryAt, now < due {
                pending += try kafka.poll(maxRecords: configuration.maxBatchSize, timeout: min(due - now, Self.tick))
            }
            if rebalance.revokedSinceLastLook {
                // Records of partitions that went to another member are not this member's to apply. Records of a
                // partition assigned to it again stay: the same poll may have returned records fetched from its new
                // start, and dropping those would skip them. Older ones are applied again at worst (the inbox skips
                // them), and the stored offset never moves backwards.
                rebalance.revokedSinceLastLook = false
                let owned = rebalance.flow.assigned
                pending.removeAll { !owned.contains($0.topicPartition) }
            }
            if pending.isEmpty, rebalance.flow.isWaiting {
                // A revocation took every record of the batch being retried: nothing is waiting any more.
                rebalance.flow.stopWaiting()
                retryAt = nil
                logger.log(.info, "retry_abandoned", [("reason", "its partitions were revoked")])
            }
            reconcile(kafka, &rebalance.flow)

            if mirror.isDue(now: .now) { mirrorOffsets(kafka, &mirror, stopping: false) }
            if ContinuousClock.now - lastHousekeeping >= Self.tick {
                lastHousekeeping = .now
                let lag = recordLag(kafka, rebalance.flow.partitions)
                let waiting = !pending.isEmpty || lag > 0
                switch stall.observe(now: .now, waiting: waiting, progressed: progressed) {
                case .stalled(let waited):
                    logger.log(.error, "stalled", [("waited", "\(waited)"), ("waiting_records", "\(pending.count)"), ("lag", "\(lag)"),
                                              ("paused_partitions", "\(rebalance.flow.pausedCount)"), ("last_error", lastFailure ?? "none")])
                case .recovered(let lasted):
                    logger.log(.info, "stall_ended", [("lasted", "\(lasted)")])
                case nil: break
                }
                progressed = false
                if pending.isEmpty, database.isConnected, database.connectionsOpened != offsetsCheckedOn,
                   let rewound = try? rewindWhereTheDatabaseLostCommits(kafka, rebalance) {
                    mirror.rewound(rewound.storedNext)
                }
                let unreachable = kafka.unreachableFor ?? .zero
                if unreachable >= configuration.stallThreshold, !kafkaUnreachableReported {
                    kafkaUnreachableReported = true
                    logger.log(.error, "kafka_unreachable", [("for", "\(unreachable)"), ("bootstrap", configuration.kafka["bootstrap.servers"] ?? "")])
                } else if unreachable == .zero, kafkaUnreachableReported {
                    kafkaUnreachableReported = false
                    logger.log(.info, "kafka_reachable")
                }
                let waited = stall.waited(now: .now)
                consumer.metrics.update {
                    $0.stalled = stall.isStalled
                    $0.secondsWithoutProgress = waited.seconds
                    $0.waitingRecords = pending.count
                    $0.assignedPartitions = rebalance.flow.partitions.count
                    $0.pausedPartitions = rebalance.flow.pausedCount
                    $0.kafkaUnreachableSeconds = unreachable.seconds
                }
                // Between two batches, whatever the traffic: a release waiting for an idle poll never ran on a
                // partition with a trickle of records. The pending batch (if any) comes after the released events,
                // so the key's order holds; a batch being retried is not overtaken.
                if configuration.poisonPolicy == .parkKey, !rebalance.flow.isWaiting {
                    releaseRequestedKeys(applier, partitions: rebalance.flow.assigned)
                    if ContinuousClock.now - lastParkedCheck >= .seconds(5) {
                        lastParkedCheck = .now
                        refreshParkedSummary(logging: ContinuousClock.now - lastParkedLog >= .seconds(60) ? { lastParkedLog = .now } : nil)
                    }
                }
                if pending.isEmpty, ContinuousClock.now - lastSweep >= configuration.retentionInterval {
                    sweepInbox()
                    lastSweep = .now
                }
            }
            guard !stop.isRequested, !pending.isEmpty else { continue }
            if let due = retryAt, ContinuousClock.now < due { continue }

            do {
                if !database.isConnected || database.connectionsOpened != offsetsCheckedOn {
                    // Before a batch commits on a new connection: a database that lost commits must not have the
                    // batch store offsets past the records those commits applied.
                    let rewound = try BatchApplier.asRollback { try rewindWhereTheDatabaseLostCommits(kafka, rebalance) }
                    mirror.rewound(rewound.storedNext)
                    if !rewound.partitions.isEmpty {
                        pending.removeAll { rewound.partitions.contains($0.topicPartition) }
                        if pending.isEmpty {
                            // Every waiting record was of a rewound partition: they are fetched again from there.
                            retryAt = nil
                            if rebalance.flow.isWaiting { rebalance.flow.stopWaiting() }
                            reconcile(kafka, &rebalance.flow)
                            continue
                        }
                    }
                }
                let outcome = try applier.apply(pending, database: database)
                pending = []
                retryAt = nil
                backoff.reset()
                progressed = true
                lastFailure = nil
                consumer.metrics.update { metrics in
                    metrics.applied += outcome.counts.applied
                    metrics.duplicatesSkipped += outcome.counts.duplicatesSkipped
                    metrics.deadLettered += outcome.counts.deadLettered
                    metrics.handlerFailures += outcome.counts.handlerFailures
                    metrics.batches += outcome.counts.batches
                    metrics.parked += outcome.counts.parked
                    metrics.roundTrips += outcome.counts.roundTrips
                    metrics.consecutiveBatchRetries = 0
                    metrics.lastRetryReason = nil
                    let committed = Date()
                    for event in outcome.applied {
                        metrics.commitToApplied[event.eventType, default: PrometheusHistogram(upperBounds: ConsumerMetrics.commitToAppliedBounds)]
                            .observe(max(0, committed.timeIntervalSince(event.commitTime)))
                    }
                }
                if rebalance.flow.isWaiting {
                    rebalance.flow.stopWaiting()
                    logger.log(.info, "resumed", [("partitions", "\(rebalance.flow.partitions.count)")])
                }
                reconcile(kafka, &rebalance.flow)
                rebalance.knownOffsets.merge(outcome.nextOffsets.filter { rebalance.flow.assigned.contains($0.key) }) { max($0, $1) }
                // The mirror for lag dashboards and the assignment fallback; the database's copy is the one that counts.
                mirror.committed(outcome.nextOffsets)
            } catch let rollback as BatchRollback {
                let delay = backoff.next()
                retryAt = .now + delay
                lastFailure = rollback.reason
                consumer.metrics.update {
                    $0.batchRetries += 1
                    $0.consecutiveBatchRetries += 1
                    $0.lastRetryReason = rollback.reason
                }
                logger.log(.error, "batch_rolled_back", [("reason", rollback.reason), ("error", "\(rollback.cause)"),
                                                    ("records", "\(pending.count)"), ("retry_in", "\(delay)")])
                rebalance.flow.startWaiting()
                reconcile(kafka, &rebalance.flow)
            } catch is StopInterrupted {
                break
            }
        }
    }

    /// Compares the stored offsets with what this member knows the database held, on a connection that replaced the
    /// one last compared on (connecting if none is open). Where the database lost commits (a failover to a standby
    /// that had not received them, a crash under `synchronous_commit=off`), the partition is sought back to what the
    /// database holds, so the batches those commits applied are applied again (see
    /// ``OffsetStore/rewinds(known:stored:)``).
    ///
    /// - Returns: The partitions sought back, and the stored next offset of each that went back to one (not of a
    ///   partition that went back to the default start).
    /// - Throws: ``PostgresError`` when the offsets could not be read, ``KafkaError`` when a seek failed; the
    ///   comparison is then made again on the next try.
    private func rewindWhereTheDatabaseLostCommits(_ kafka: KafkaConsumer, _ rebalance: RebalanceHandler) throws
        -> (partitions: Set<TopicPartition>, storedNext: [TopicPartition: Int64]) {
        let partitions = rebalance.flow.partitions
        let stored = try database.withSession { try consumer.offsets.load($0, partitions) }
        let connection = database.connectionsOpened
        let rewinds = consumer.offsets.rewinds(known: rebalance.knownOffsets.filter { partitions.contains($0.key) }, stored: stored)
        if !rewinds.isEmpty {
            try kafka.seek(rewinds)
            var lost: [String] = []
            for partition in rewinds.keys.sorted() {
                lost.append("\(partition):\(stored[partition].map(String.init) ?? "none")<\(rebalance.knownOffsets[partition] ?? 0)")
                rebalance.knownOffsets[partition] = stored[partition]
            }
            logger.log(.warning, "offsets_rewound", [
                ("partitions", lost.joined(separator: ",")),
                ("reason", "the database holds older offsets than this consumer committed: it lost commits (a failover to a standby "
                    + "that had not received them, or a crash under synchronous_commit=off); those events are applied again"),
            ])
        }
        offsetsCheckedOn = connection
        return (Set(rewinds.keys), stored.filter { rewinds.keys.contains($0.key) })
    }

    /// Carries out the release requests for parked keys of `partitions` (only the partition's owner applies them).
    private func releaseRequestedKeys(_ applier: BatchApplier, partitions: Set<TopicPartition>) {
        guard !partitions.isEmpty, !stop.isRequested else { return }
        let keys: [ParkedStore.Key]
        do {
            keys = try database.withSession { try consumer.parked.releaseRequests($0, partitions) }
        } catch {
            logger.log(.warning, "release_check_failed", [("error", "\(error)")])
            return
        }
        for key in keys where !stop.isRequested {
            logger.log(.info, "release_started", [("topic", key.topic), ("partition", "\(key.partition)"), ("key", key.key)])
            do {
                let (released, stoppedBy) = try applier.release(key, database: database)
                consumer.metrics.update { $0.released += released; $0.applied += released }
                if let stoppedBy {
                    logger.log(.warning, "release_stopped", [("topic", key.topic), ("partition", "\(key.partition)"), ("key", key.key),
                                                        ("released", "\(released)"), ("error", String(stoppedBy.prefix(200)))])
                } else {
                    logger.log(.info, "key_released", [("topic", key.topic), ("partition", "\(key.partition)"), ("key", key.key),
                                                  ("released", "\(released)")])
                }
            } catch let rollback as BatchRollback {
                logger.log(.warning, "release_rolled_back", [("key", key.key), ("reason", rollback.reason), ("error", "\(rollback.cause)")])
                return
            } catch {
                return // a stop cut it short; rolled back, the request stays
            }
        }
        if !keys.isEmpty { refreshParkedSummary(logging: nil) }
    }

    /// Reads how many keys are parked (and the oldest's age) into the metrics; `logging` logs it too.
    private func refreshParkedSummary(logging: (() -> Void)?) {
        guard let summary = try? database.withSession({ try consumer.parked.summary($0) }) else { return }
        consumer.metrics.update {
            $0.parkedKeys = summary.keys
            $0.parkedEvents = summary.events
            $0.oldestParkedSeconds = summary.oldestSeconds
        }
        if let logging, summary.keys > 0 {
            logging()
            logger.log(.warning, "parked_keys", [("keys", "\(summary.keys)"), ("events", "\(summary.events)"),
                                            ("oldest_age", "\(Int(summary.oldestSeconds))s"), ("table", configuration.parkedTable)])
        }
    }

    /// Mirrors the committed offsets to Kafka once a durability barrier has passed (see ``MirrorSchedule``).
    private func mirrorOffsets(_ kafka: KafkaConsumer, _ mirror: inout MirrorSchedule, stopping: Bool) {
        guard mirror.isDue(now: .now, stopping: stopping) else { return }
        do {
            try database.withSession { try consumer.offsets.durabilityBarrier($0) }
        } catch {
            return // the database is away: the mirror waits, it is never ahead
        }
        try? kafka.commitWithoutWaiting(mirror.barrierPassed(now: .now))
    }

    /// Tells librdkafka what ``PartitionFlow`` decided.
    private func reconcile(_ kafka: KafkaConsumer, _ flow: inout PartitionFlow) {
        let actions = flow.reconcile()
        guard !actions.isEmpty else { return }
        do {
            if !actions.pause.isEmpty {
                try kafka.pause(actions.pause)
                logger.log(.info, "partitions_paused", [("partitions", actions.pause.map(\.description).joined(separator: ","))])
            }
            if !actions.resume.isEmpty {
                try kafka.resume(actions.resume)
                logger.log(.info, "partitions_resumed", [("partitions", actions.resume.map(\.description).joined(separator: ","))])
            }
        } catch {
            flow.failed(actions)
            logger.log(.warning, "pause_or_resume_failed", [("error", "\(error)")])
        }
    }

    private func sweepInbox() {
        let seconds = configuration.inboxRetention.components.seconds
        var deleted = 0
        do {
            while !stop.isRequested {
                let count = try database.withSession { try consumer.inbox.sweep($0, olderThanSeconds: seconds) }
                deleted += count
                if count == 0 { break }
            }
            if deleted > 0 { logger.log(.info, "inbox_swept", [("deleted", "\(deleted)")]) }
        } catch {
            logger.log(.warning, "inbox_sweep_failed", [("error", "\(error)")])
        }
    }

    /// Updates the lag metrics; returns the total.
    private func recordLag(_ kafka: KafkaConsumer, _ partitions: [TopicPartition]) -> Int64 {
        var lag: [String: Int64] = [:]
        for partition in partitions {
            if let value = kafka.lag(partition) { lag[partition.description] = value }
        }
        consumer.metrics.update { $0.lag = lag }
        return lag.values.reduce(0, +)
    }
}
