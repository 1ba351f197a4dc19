import Foundation
import LibPQ
import RDKafka

extension OutboxConsumer {
    /// State confined to the consumer's thread (the rebalance callback runs there too).
    final class LoopState {
        var database: Connection?
        var assigned: Set<TopicPartition> = []
        var paused = false
    }

    /// The consumer thread's body.
    func loop(_ handler: @escaping Handler) throws {
        let state = LoopState()
        state.database = connectUntilAvailable()
        guard let database = state.database else { return } // stopped while waiting
        try withRetries("create the inbox and offsets tables") {
            try database.withSessionBlocking { session in
                try session.query("BEGIN")
                for statement in inbox.createStatements(offsets: offsets) { try session.query(statement) }
                try session.query("COMMIT")
            }
        }
        let deadLetters = try DeadLetterPublisher(kafka: configuration.kafka, clientID: "\(configuration.groupID)-dead-letters")
        var properties = configuration.kafka
        properties["group.id"] = configuration.groupID
        // Offsets live in the service's database; Kafka's copy is only a mirror.
        properties["enable.auto.commit"] = "false"
        properties["enable.auto.offset.store"] = "false"
        let consumer = try KafkaConsumer(properties: properties, log: { [self] event in
            if event.level <= .warning { emit("warning", "kafka_log", [("facility", event.facility), ("message", event.message)]) }
        }, rebalance: { [self] event in rebalance(event, state: state) })
        try consumer.subscribe(configuration.topics)
        emit("info", "started", [("topics", configuration.topics.joined(separator: ","))])

        var pending: [ConsumerRecord] = []
        var backoff = configuration.retryBackoff
        var lastSweep = ContinuousClock.now
        defer {
            try? consumer.closeBlocking()
            state.database?.closeBlocking()
            let done = DispatchSemaphore(value: 0)
            Task { await deadLetters.close(); done.signal() }
            done.wait()
            emit("info", "stopped")
        }
        while !isStopping {
            if pending.isEmpty {
                pending = try consumer.poll(maxRecords: configuration.maxBatchSize, timeout: .milliseconds(100))
                if pending.isEmpty {
                    if ContinuousClock.now - lastSweep >= configuration.retentionInterval {
                        sweepInbox(state)
                        lastSweep = .now
                    }
                    recordLag(consumer, state)
                    continue
                }
            }
            // Partitions revoked or lost since the batch was polled belong to another member now.
            pending.removeAll { !state.assigned.contains($0.topicPartition) }
            guard !pending.isEmpty else { continue }
            do {
                guard let database = state.database else { throw PostgresError(code: .closed, message: "no connection") }
                let next = try applyBatch(pending, database: database, handler: handler, deadLetters: deadLetters)
                pending = []
                backoff = configuration.retryBackoff
                if state.paused {
                    try? consumer.resume(Array(state.assigned))
                    state.paused = false
                    emit("info", "resumed")
                }
                try? consumer.commitWithoutWaiting(next)
            } catch let error as PostgresError where error.isTransient || error.code == .closed {
                metrics.update { $0.batchRetries += 1 }
                emit("warning", "batch_rolled_back", [("error", error.description), ("retry_in", "\(backoff)")])
                if !state.paused {
                    try? consumer.pause(Array(state.assigned))
                    state.paused = true
                }
                if error.code == .connectionLost || error.code == .closed || error.code == .connectionFailed {
                    state.database?.closeBlocking()
                    state.database = try? Connection.connectBlocking(configuration.postgres)
                }
                // Keep polling while paused, so the group keeps this member and rebalances are served.
                pending += try consumer.poll(maxRecords: configuration.maxBatchSize, timeout: backoff)
                backoff = min(backoff * 2, configuration.maxBackoff)
            } catch let error as KafkaError where !error.isFatal {
                // A dead-letter record that was not acknowledged: roll back and retry the batch.
                metrics.update { $0.batchRetries += 1 }
                emit("warning", "batch_rolled_back", [("error", error.description), ("retry_in", "\(backoff)")])
                Self.sleep(backoff)
                backoff = min(backoff * 2, configuration.maxBackoff)
            }
        }
    }

    /// Applies one batch in one transaction; returns each partition's next offset.
    func applyBatch(_ records: [ConsumerRecord], database: Connection, handler: Handler,
                    deadLetters: DeadLetterPublisher) throws -> [TopicPartition: Int64] {
        try database.withSessionBlocking { session in
            try session.query("BEGIN")
            do {
                var counts = ConsumerMetrics.Snapshot()
                let identified = records.map { record -> (record: ConsumerRecord, id: String, hasID: Bool) in
                    if let id = record.header("event_id")?.stringValue, !id.isEmpty { return (record, id, true) }
                    return (record, "\(record.topic)/\(record.partition)/\(record.offset)", false)
                }
                let fresh = try inbox.claim(session, identified.map { ($0.id, $0.record.topic, $0.record.partition, $0.record.offset) })
                var seen = Set<String>()
                for (record, id, hasID) in identified {
                    guard fresh.contains(id), seen.insert(id).inserted else {
                        counts.duplicatesSkipped += 1
                        continue
                    }
                    if !hasID && configuration.missingEventID == .deadLetter {
                        try deadLetter(record, reason: "the record has no event_id header", id: id, session: session, deadLetters: deadLetters)
                        counts.deadLettered += 1
                        continue
                    }
                    let event = OutboxEvent(
                        id: id, type: record.header("event_type")?.stringValue, key: record.key.map { String(decoding: $0, as: UTF8.self) },
                        payload: record.value ?? [], headers: record.headers, topic: record.topic, partition: record.partition,
                        offset: record.offset, timestamp: record.timestampMilliseconds.map { Date(timeIntervalSince1970: Double($0) / 1000) })
                    var attempt = 0
                    while true {
                        do {
                            try session.savepoint("tailgate_event") { try handler(event, $0) }
                            counts.applied += 1
                            break
                        } catch let error as PostgresError where error.isTransient || error.code == .closed {
                            throw error // the database, not the event: retry the whole batch
                        } catch {
                            attempt += 1
                            counts.handlerFailures += 1
                            emit("warning", "handler_failed", [("event_id", id), ("attempt", "\(attempt)"), ("error", "\(error)")])
                            if attempt >= configuration.handlerAttempts {
                                try deadLetter(record, reason: "\(error)", id: id, session: session, deadLetters: deadLetters)
                                counts.deadLettered += 1
                                break
                            }
                            let wait = min(configuration.retryBackoff * (1 << min(attempt - 1, 10)), configuration.maxBackoff)
                            Self.sleep(wait)
                        }
                    }
                }
                var next: [TopicPartition: Int64] = [:]
                for record in records { next[record.topicPartition] = max(next[record.topicPartition] ?? 0, record.offset + 1) }
                try offsets.store(session, next)
                try session.query("COMMIT")
                metrics.update { metrics in
                    metrics.applied += counts.applied
                    metrics.duplicatesSkipped += counts.duplicatesSkipped
                    metrics.deadLettered += counts.deadLettered
                    metrics.handlerFailures += counts.handlerFailures
                    metrics.batches += 1
                }
                return next
            } catch {
                _ = try? session.query("ROLLBACK")
                throw error
            }
        }
    }

    /// Sends the record to the dead-letter topic, waits for Kafka's acknowledgement, then marks it in the inbox.
    private func deadLetter(_ record: ConsumerRecord, reason: String, id: String, session: Session, deadLetters: DeadLetterPublisher) throws {
        let headers = record.headers + [
            KafkaHeader(name: "tailgate_error", string: String(reason.prefix(1000))),
            KafkaHeader(name: "tailgate_consumer_group", string: configuration.groupID),
            KafkaHeader(name: "tailgate_original_topic", string: record.topic),
            KafkaHeader(name: "tailgate_original_partition", string: String(record.partition)),
            KafkaHeader(name: "tailgate_original_offset", string: String(record.offset)),
        ]
        try deadLetters.publishAndWait(KafkaRecord(topic: configuration.deadLetterTopic, key: record.key, value: record.value, headers: headers))
        try inbox.markDeadLettered(session, id: id, error: reason)
        emit("warning", "dead_lettered", [("event_id", id), ("topic", record.topic), ("partition", "\(record.partition)"),
                                          ("offset", "\(record.offset)"), ("reason", String(reason.prefix(200)))])
    }

    /// The rebalance callback: every assigned partition starts at its stored offset.
    func rebalance(_ event: RebalanceEvent, state: LoopState) -> [TopicPartition: StartOffset] {
        switch event {
        case .assigned(let partitions):
            state.assigned.formUnion(partitions)
            var stored: [TopicPartition: Int64]?
            for attempt in 0..<20 where stored == nil && !isStopping {
                do {
                    if state.database == nil { state.database = try Connection.connectBlocking(configuration.postgres) }
                    stored = try state.database?.withSessionBlocking { try offsets.load($0, partitions) }
                } catch {
                    emit("warning", "offsets_unavailable", [("error", "\(error)"), ("attempt", "\(attempt + 1)")])
                    state.database?.closeBlocking()
                    state.database = nil
                    Thread.sleep(forTimeInterval: 0.5)
                }
            }
            emit("info", "partitions_assigned", [("partitions", partitions.map(\.description).joined(separator: ","))])
            guard let stored else {
                // The database stayed unreachable: resume from Kafka's mirror. It is never ahead of the database, so
                // at worst events are read again, and the inbox skips them.
                return Dictionary(uniqueKeysWithValues: partitions.map { ($0, StartOffset.committed) })
            }
            return Dictionary(uniqueKeysWithValues: partitions.map { ($0, stored[$0].map { StartOffset.offset($0) } ?? configuration.startOffset) })
        case .revoked(let partitions, let lost):
            state.assigned.subtract(partitions)
            emit(lost ? "warning" : "info", lost ? "partitions_lost" : "partitions_revoked",
                 [("partitions", partitions.map(\.description).joined(separator: ","))])
            return [:]
        }
    }

    private func connectUntilAvailable() -> Connection? {
        var backoff = configuration.retryBackoff
        while !isStopping {
            do {
                return try Connection.connectBlocking(configuration.postgres)
            } catch {
                emit("warning", "postgres_unavailable", [("error", error.description), ("retry_in", "\(backoff)")])
                Self.sleep(backoff)
                backoff = min(backoff * 2, configuration.maxBackoff)
            }
        }
        return nil
    }

    private func withRetries(_ what: String, _ body: () throws -> Void) throws {
        var backoff = configuration.retryBackoff
        while true {
            do {
                return try body()
            } catch let error as PostgresError where error.isTransient {
                emit("warning", "retrying", [("what", what), ("error", error.description)])
                Self.sleep(backoff)
                backoff = min(backoff * 2, configuration.maxBackoff)
            }
        }
    }

    private func sweepInbox(_ state: LoopState) {
        guard let database = state.database else { return }
        let seconds = configuration.inboxRetention.components.seconds
        var deleted = 0
        do {
            while true {
                let count = try database.withSessionBlocking { try inbox.sweep($0, olderThanSeconds: seconds) }
                deleted += count
                if count == 0 || isStopping { break }
            }
            if deleted > 0 { emit("info", "inbox_swept", [("deleted", "\(deleted)")]) }
        } catch {
            emit("warning", "inbox_sweep_failed", [("error", "\(error)")])
        }
    }

    /// Blocks the consumer's own thread (never a task) for `duration`.
    static func sleep(_ duration: Duration) {
        Thread.sleep(forTimeInterval: Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18)
    }

    private func recordLag(_ consumer: KafkaConsumer, _ state: LoopState) {
        var lag: [String: Int64] = [:]
        for partition in state.assigned {
            if let value = consumer.lag(partition) { lag[partition.description] = value }
        }
        metrics.update { $0.lag = lag }
    }
}
