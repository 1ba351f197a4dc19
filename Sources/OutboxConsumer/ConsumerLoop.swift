import Foundation
import LibPQ
import Observability
import RDKafka
import ServiceRuntime

/// The consumer's thread: the executor of the ``ConsumerStateMachine``'s actions. It polls Kafka, hands batches to
/// the ``BatchApplier``, waits out a rolled-back batch's backoff while keeping the group membership, keeps every
/// assigned partition fetching unless it is deliberately waiting (``PartitionFlow``), releases parked keys, and reports
/// stalls; what happens to the batch in hand (applied, with savepoints, retried, dropped, released before) is the
/// machine's decision, and what happens to each of its events ``EventPolicy``'s, both tested without a database or a
/// broker.
///
/// Every wait here is an event: a Kafka poll (woken early by a stop through ``KafkaConsumer/wakeup()``), a backoff
/// delay on the ``StopSignal``, or a statement of a batch (cancelled by a stop through ``StatementCanceller``).
final class ConsumerLoop {
    /// How long an idle poll waits for records before housekeeping runs (lag, stalls, inbox sweep).
    static let tick: Duration = .milliseconds(500)
    /// How long an assignment waits for the database's stored offsets before starting at Kafka's committed copy.
    static let offsetPatience: Duration = .seconds(10)

    private let consumer: OutboxConsumer
    private let configuration: ConsumerConfiguration
    private let handler: OutboxConsumer.Handler
    /// The handler the consumer was given, when it only produces statements: batches then try one pipeline first.
    private let statementHandler: OutboxConsumer.StatementHandler?
    private let stop: StopSignal
    private let database: DatabaseLink
    private let logger: EventLogger
    /// The database connection (``DatabaseLink/connectionsOpened``) on which the stored offsets were last compared
    /// with what this member knows; the first one, which the assignments read, needs no comparison.
    private var offsetsCheckedOn = 1

    /// A loop applying events with `handler`.
    convenience init(consumer: OutboxConsumer, handler: @escaping OutboxConsumer.Handler) {
        self.init(consumer: consumer, handler: handler, statementHandler: nil)
    }

    /// A loop applying events with the statements `handler` produces (see ``OutboxConsumer/runStatements(_:)``).
    convenience init(consumer: OutboxConsumer, statements handler: @escaping OutboxConsumer.StatementHandler) {
        self.init(consumer: consumer, handler: EventStatements.sessionHandler(handler), statementHandler: handler)
    }

    private init(consumer: OutboxConsumer, handler: @escaping OutboxConsumer.Handler, statementHandler: OutboxConsumer.StatementHandler?) {
        self.consumer = consumer
        self.configuration = consumer.configuration
        self.handler = handler
        self.statementHandler = statementHandler
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
        // A stop does not wait for a statement blocked on a lock: it is cancelled, and its batch rolled back.
        let cancellation = StatementCanceller(stop: stop)
        let cancelOnStop = stop.onStop { cancellation.stopRequested() }
        defer {
            stop.remove(cancelOnStop)
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
            statementHandler: statementHandler,
            deadLetters: deadLetters, stop: stop, cancellation: cancellation, logger: logger, policy: EventPolicy(configuration: configuration)))
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

    /// What the loop keeps between housekeeping ticks (lag, stalls, the Kafka mirror, parked keys, the inbox sweep).
    private struct Housekeeping {
        var last = ContinuousClock.now
        var stall: StallDetector
        var progressed = false
        var lastFailure: String?
        var kafkaUnreachableReported = false
        var lastSweep = ContinuousClock.now
        var lastParkedCheck = ContinuousClock.now - .seconds(60)
        var lastParkedLog = ContinuousClock.now
        var mirror = MirrorSchedule(interval: .seconds(1), now: .now)
    }

    /// Performs the ``ConsumerStateMachine``'s actions until it says to finish: the executor, with no decision of
    /// its own about the batch in hand.
    private func consume(_ kafka: KafkaConsumer, rebalance: RebalanceHandler, applier: BatchApplier) throws {
        var machine = ConsumerStateMachine(statementHandler: statementHandler != nil, initialBackoff: configuration.retryBackoff,
                                           maxBackoff: configuration.maxBackoff)
        var house = Housekeeping(stall: StallDetector(threshold: configuration.stallThreshold, now: .now))
        defer { mirrorOffsets(kafka, &house.mirror, stopping: true) }
        var next = ConsumerStateMachine.Action.poll
        var retryAt: ContinuousClock.Instant?

        while true {
            if stop.isRequested, next != .finish { next = machine.stop() }
            if housekeepingIsDue(&house) {
                housekeeping(kafka, rebalance, &machine, &house)
                // Parked keys are released at a batch boundary: before the next poll or the next batch.
                switch next {
                case .poll, .apply:
                    if case .releaseParkedKeys = machine.housekeeping(releasesDue: configuration.poisonPolicy == .parkKey) {
                        next = .releaseParkedKeys
                    }
                default:
                    break
                }
            }
            switch next {
            case .poll:
                // The only waits: for records when idle, for the retry time when a batch is being retried. Both are
                // Kafka polls, so the group keeps this member and rebalances are served meanwhile.
                let timeout = retryAt.map { min(max($0 - .now, .zero), Self.tick) } ?? Self.tick
                let records = try kafka.poll(maxRecords: configuration.maxBatchSize, timeout: timeout)
                next = machine.recordsPolled(records, revokedLeaving: rebalance.takeRevocation())
                reconcile(kafka, &rebalance.flow)
                if next == .none, let due = retryAt {
                    // Still waiting for the rolled-back batch's retry time.
                    next = ContinuousClock.now >= due ? machine.backoffElapsed() : .poll
                }
            case .apply(let records, let method):
                retryAt = nil
                if !database.isConnected || database.connectionsOpened != offsetsCheckedOn {
                    // Before a batch commits on a new connection: a database that lost commits must not have the
                    // batch store offsets past the records those commits applied.
                    do {
                        let rewound = try BatchApplier.asRollback { try rewindWhereTheDatabaseLostCommits(kafka, rebalance) }
                        house.mirror.rewound(rewound.storedNext)
                        if !rewound.partitions.isEmpty {
                            next = machine.databaseReconnected(rewound: rewound.partitions)
                            continue
                        }
                    } catch let rollback as BatchRollback {
                        next = batchRolledBack(rollback, &machine, &house)
                        continue
                    }
                }
                do {
                    switch try applier.apply(records, method: method, database: database) {
                    case .committed(let outcome):
                        committed(outcome, rebalance, &house)
                        next = machine.batchCommitted()
                    case .handlerFailed(let roundTrips):
                        consumer.metrics.update { $0.roundTrips += roundTrips }
                        next = machine.batchFailed(.handlerFailed)
                    case .onePipelineFailed(let roundTrips, let cause):
                        consumer.metrics.update {
                            $0.roundTrips += roundTrips
                            $0.onePipelineFallbacks += 1
                        }
                        logger.log(.debug, "one_pipeline_fell_back", [("records", "\(records.count)"), ("cause", "\(cause)")])
                        next = machine.batchFailed(.onePipelineFailed)
                    }
                } catch let rollback as BatchRollback {
                    next = batchRolledBack(rollback, &machine, &house)
                } catch is StopInterrupted {
                    next = machine.stop()
                }
            case .retryAfter(let delay, _, _):
                retryAt = .now + delay
                rebalance.flow.startWaiting()
                reconcile(kafka, &rebalance.flow)
                next = .poll
            case .resumeAndPoll:
                if rebalance.flow.isWaiting {
                    rebalance.flow.stopWaiting()
                    logger.log(.info, "resumed", [("partitions", "\(rebalance.flow.partitions.count)")])
                }
                reconcile(kafka, &rebalance.flow)
                next = .poll
            case .abandonRetry(let reason):
                retryAt = nil
                if rebalance.flow.isWaiting { rebalance.flow.stopWaiting() }
                logger.log(.info, "retry_abandoned", [("reason", reason)])
                reconcile(kafka, &rebalance.flow)
                next = .poll
            case .releaseParkedKeys:
                releaseRequestedKeys(applier, partitions: rebalance.flow.assigned, &house)
                next = machine.releasesDone()
            case .finish:
                return
            case .none:
                // Every action the loop performs reports an event the machine expects in the state it left; .none
                // here would be a transition the machine's tests show cannot happen.
                assertionFailure("the consumer state machine answered none in state \(machine.state)")
                next = .poll
            }
        }
    }

    /// Logs and counts a rolled-back batch; returns the machine's answer.
    private func batchRolledBack(_ rollback: BatchRollback, _ machine: inout ConsumerStateMachine,
                                 _ house: inout Housekeeping) -> ConsumerStateMachine.Action {
        let records = machine.pending.count
        let action = machine.batchFailed(.rolledBack(reason: rollback.reason))
        house.lastFailure = rollback.reason
        consumer.metrics.update {
            $0.batchRetries += 1
            $0.consecutiveBatchRetries += 1
            $0.lastRetryReason = rollback.reason
        }
        if case .retryAfter(let delay, _, _) = action {
            logger.log(.error, "batch_rolled_back", [("reason", rollback.reason), ("error", "\(rollback.cause)"),
                                                     ("records", "\(records)"), ("retry_in", "\(delay)")])
        }
        return action
    }

    /// Records a committed batch in the metrics, the known offsets and the Kafka mirror.
    private func committed(_ outcome: BatchApplier.Outcome, _ rebalance: RebalanceHandler, _ house: inout Housekeeping) {
        house.progressed = true
        house.lastFailure = nil
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
        rebalance.knownOffsets.merge(outcome.nextOffsets.filter { rebalance.flow.assigned.contains($0.key) }) { max($0, $1) }
        // The mirror for lag dashboards and the assignment fallback; the database's copy is the one that counts.
        house.mirror.committed(outcome.nextOffsets)
    }

    /// Whether a housekeeping tick is due (one per ``tick``); starts it if so.
    private func housekeepingIsDue(_ house: inout Housekeeping) -> Bool {
        guard ContinuousClock.now - house.last >= Self.tick else { return false }
        house.last = .now
        return true
    }

    /// Lag, stalls, the Kafka mirror, the idle offsets check and the inbox sweep.
    private func housekeeping(_ kafka: KafkaConsumer, _ rebalance: RebalanceHandler, _ machine: inout ConsumerStateMachine,
                              _ house: inout Housekeeping) {
        if house.mirror.isDue(now: .now) { mirrorOffsets(kafka, &house.mirror, stopping: false) }
        let pending = machine.pending.count
        let lag = recordLag(kafka, rebalance.flow.partitions)
        switch house.stall.observe(now: .now, waiting: pending > 0 || lag > 0, progressed: house.progressed) {
        case .stalled(let waited):
            logger.log(.error, "stalled", [("waited", "\(waited)"), ("waiting_records", "\(pending)"), ("lag", "\(lag)"),
                                           ("paused_partitions", "\(rebalance.flow.pausedCount)"), ("last_error", house.lastFailure ?? "none")])
        case .recovered(let lasted):
            logger.log(.info, "stall_ended", [("lasted", "\(lasted)")])
        case nil: break
        }
        house.progressed = false
        if pending == 0, database.isConnected, database.connectionsOpened != offsetsCheckedOn,
           let rewound = try? rewindWhereTheDatabaseLostCommits(kafka, rebalance) {
            house.mirror.rewound(rewound.storedNext)
            _ = machine.databaseReconnected(rewound: rewound.partitions)
        }
        let unreachable = kafka.unreachableFor ?? .zero
        if unreachable >= configuration.stallThreshold, !house.kafkaUnreachableReported {
            house.kafkaUnreachableReported = true
            logger.log(.error, "kafka_unreachable", [("for", "\(unreachable)"), ("bootstrap", configuration.kafka["bootstrap.servers"] ?? "")])
        } else if unreachable == .zero, house.kafkaUnreachableReported {
            house.kafkaUnreachableReported = false
            logger.log(.info, "kafka_reachable")
        }
        let waited = house.stall.waited(now: .now)
        consumer.metrics.update {
            $0.stalled = house.stall.isStalled
            $0.secondsWithoutProgress = waited.seconds
            $0.waitingRecords = pending
            $0.assignedPartitions = rebalance.flow.partitions.count
            $0.pausedPartitions = rebalance.flow.pausedCount
            $0.kafkaUnreachableSeconds = unreachable.seconds
        }
        if pending == 0, ContinuousClock.now - house.lastSweep >= configuration.retentionInterval {
            sweepInbox()
            house.lastSweep = .now
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

    /// Carries out the release requests for parked keys of `partitions` (only the partition's owner applies them),
    /// and refreshes the parked keys' summary every 5 s (logging it every minute while keys are parked).
    private func releaseRequestedKeys(_ applier: BatchApplier, partitions: Set<TopicPartition>, _ house: inout Housekeeping) {
        if ContinuousClock.now - house.lastParkedCheck >= .seconds(5) {
            house.lastParkedCheck = .now
            let logNow = ContinuousClock.now - house.lastParkedLog >= .seconds(60)
            if refreshParkedSummary(logging: logNow), logNow { house.lastParkedLog = .now }
        }
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
        if !keys.isEmpty { refreshParkedSummary(logging: false) }
    }

    /// Reads how many keys are parked (and the oldest's age) into the metrics; with `logging`, logs it too when keys
    /// are parked. Returns whether it logged.
    @discardableResult
    private func refreshParkedSummary(logging: Bool) -> Bool {
        guard let summary = try? database.withSession({ try consumer.parked.summary($0) }) else { return false }
        consumer.metrics.update {
            $0.parkedKeys = summary.keys
            $0.parkedEvents = summary.events
            $0.oldestParkedSeconds = summary.oldestSeconds
        }
        guard logging, summary.keys > 0 else { return false }
        logger.log(.warning, "parked_keys", [("keys", "\(summary.keys)"), ("events", "\(summary.events)"),
                                             ("oldest_age", "\(Int(summary.oldestSeconds))s"), ("table", configuration.parkedTable)])
        return true
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
