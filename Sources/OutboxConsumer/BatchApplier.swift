import Foundation
import LibPQ
import Observability
import RDKafka
import ServiceRuntime

/// Applies one batch of records in one transaction: records the event ids in the inbox, runs the handler for each
/// new event, stores the next offsets, commits. Which way (``ConsumerStateMachine/Method``) is
/// ``ConsumerStateMachine``'s decision, and what becomes of each event (skipped, parked, retried, dead-lettered, or
/// the batch rolled back) ``EventPolicy``'s; this type performs them.
///
/// A failure that describes the database (or anything else outside the event, see ``FailureClassifier``) rolls the
/// whole batch back and throws ``BatchRollback``; the loop retries the batch after a backoff. A handler failure is
/// retried in a savepoint, and only when retrying cannot succeed is the event treated as poison.
///
/// A statement handler's batch is first sent in one pipeline (``ConsumerStateMachine/Method/onePipeline``): its
/// statements for every record are produced first, then BEGIN, the inbox insert (which fails on a duplicate), the
/// offsets, a guard that fails on a parked key, the statements and COMMIT travel together, one round trip whatever
/// the batch's size. Any failure there rolls it back and the batch is applied again claim first, as below.
///
/// Claim first, a batch costs the consumer two round trips of its own whatever its size: BEGIN, the inbox claim, the
/// offsets and the parked keys go in one pipeline (prepared statements, so the server plans them once per
/// connection), the handlers run in that transaction, then COMMIT. Statements a handler defers
/// (``Session/executeDeferred(_:_:)``) travel with COMMIT; when one fails, the batch is applied again with
/// savepoints, where each event's deferred statements are sent inside its own savepoint. Savepoints cost two round
/// trips per event, so a batch first runs without them. Only when a handler fails is that attempt rolled back and the
/// batch applied again at once with a savepoint per event, where the failing event can be retried and set aside
/// alone (its handler then runs up to ``ConsumerConfiguration/handlerAttempts`` more times).
struct BatchApplier {
    /// What a committed batch did.
    struct Outcome: Sendable {
        /// Each partition's next offset, as stored.
        var nextOffsets: [TopicPartition: Int64]
        /// The batch's counters.
        var counts: ConsumerMetrics.Snapshot
        /// The event type and source commit time of each event applied (for the freshness histogram).
        var applied: [(eventType: String, commitTime: Date)] = []
    }

    let configuration: ConsumerConfiguration
    let inbox: Inbox
    let offsets: OffsetStore
    let parked: ParkedStore
    let handler: OutboxConsumer.Handler
    /// The handler as the consumer was given it, when it only produces statements (`handler` then wraps it): the
    /// one pipeline needs it.
    let statementHandler: OutboxConsumer.StatementHandler?
    /// Runs the handler on the consumer's thread, awaiting whatever it awaits.
    let executor = ConsumerThreadExecutor()
    let deadLetters: DeadLetterPublisher
    let stop: StopSignal
    /// Cancels the statement in flight of a batch or a release when a stop is requested.
    let cancellation: StatementCanceller
    let logger: EventLogger
    /// What becomes of each event (pure: ``EventPolicy``).
    let policy: EventPolicy

    /// How an attempt at a batch ended, when it did not throw.
    enum Attempt {
        /// The batch committed.
        case committed(Outcome)
        /// A handler failed in the attempt without savepoints: it was rolled back, to be applied again with a
        /// savepoint per event (``ConsumerStateMachine`` decides). `roundTrips` is what the attempt cost.
        case handlerFailed(roundTrips: Int)
        /// The one pipeline did not commit, or could not be tried (a record the policy does not apply as it is):
        /// nothing of it remains, and the batch is to be applied again claim first. `roundTrips` is what the attempt
        /// cost; `cause` what failed, for the log.
        case onePipelineFailed(roundTrips: Int, cause: String)
    }

    /// Applies `records` (all of them on partitions this member owns) in one transaction, by `method`.
    ///
    /// ``ConsumerStateMachine/Method/onePipeline`` sends everything in one round trip (a statement handler's only);
    /// ``ConsumerStateMachine/Method/claimFirst`` runs every handler straight in the transaction (two round trips for
    /// the consumer's own statements, whatever the batch's size); with ``ConsumerStateMachine/Method/savepoints``
    /// each event runs in its own savepoint, where a failing one is retried, then parked or dead-lettered alone.
    ///
    /// - Throws: ``BatchRollback`` when the batch was rolled back and must be retried; ``StopInterrupted`` when a
    ///   stop came first or cut the batch short (a retry delay, or a statement its cancel request aborted): the batch
    ///   was rolled back, and is applied from the stored offsets on the next start.
    func apply(_ records: [ConsumerRecord], method: ConsumerStateMachine.Method, database: DatabaseLink) throws -> Attempt {
        try stoppable {
            try Self.asRollback {
                try database.withSession { session in
                    try cancellation.whileRunning(session, connection: database.connectionsOpened) {
                        switch method {
                        case .onePipeline:
                            guard let statementHandler else {
                                preconditionFailure("ConsumerStateMachine starts with onePipeline only for a statement handler")
                            }
                            return try applyInOnePipeline(records, session, statementHandler)
                        case .claimFirst: return try applyInTransaction(records, session, savepoints: false)
                        case .savepoints: return try applyInTransaction(records, session, savepoints: true)
                        }
                    }
                }
            }
        }
    }

    /// The batch's records with their event ids (`hasID` false when the id is the record's coordinates).
    static func identified(_ records: [ConsumerRecord]) -> [(record: ConsumerRecord, id: String, hasID: Bool)] {
        records.map { record in
            if let id = record.outboxEventID { return (record, id, true) }
            return (record, "\(record.topic)/\(record.partition)/\(record.offset)", false)
        }
    }

    private func applyInTransaction(_ records: [ConsumerRecord], _ session: Session, savepoints: Bool) throws -> Attempt {
        var counts = ConsumerMetrics.Snapshot()
        let roundTripsBefore = session.roundTrips
        var handlerRoundTrips = 0
        // Everything but the handlers' statements: the consumer's own cost of exactly-once.
        func ownRoundTrips() -> Int { session.roundTrips - roundTripsBefore - handlerRoundTrips }
        var applied: [(eventType: String, commitTime: Date)] = []
        func rolledBackForSavepoints() -> Attempt {
            session.discardDeferred()
            _ = try? session.query("ROLLBACK")
            return .handlerFailed(roundTrips: ownRoundTrips())
        }
        session.discardDeferred()
        do {
            let identified = Self.identified(records)
            let parking = policy.parksKeys
            let next = OffsetStore.nextOffsets(after: records)
            // One round trip opens the batch: BEGIN, the inbox claim, the offsets (they follow from the records alone
            // and commit or roll back with the rest, so they need not wait for the handlers) and the parked keys.
            // The handlers then run in the same transaction and see the claim; COMMIT is the second round trip.
            var opening = [PipelineStatement("BEGIN"),
                           inbox.claim(identified.map { ($0.id, $0.record.topic, $0.record.partition, $0.record.offset) })]
            if let store = offsets.store(next) { opening.append(store) }
            if parking { opening.append(parked.parkedKeys(Set(records.map(\.topicPartition)))) }
            let opened = try session.pipeline(opening)
            let fresh = Inbox.claimed(opened[1])
            var parkedKeys = parking ? ParkedStore.parkedKeys(opened[opened.count - 1]) : []
            var seen = Set<String>()
            // Dead letters go out once every event of the batch has run: a later event that rolls the batch back
            // (the database gone, say) then costs no duplicate in the dead-letter topic.
            var poison: [(record: ConsumerRecord, id: String, reason: String)] = []
            for (record, id, hasID) in identified {
                func key() -> ParkedStore.Key { ParkedStore.key(of: record, eventID: id) }
                switch policy.received(isNew: fresh.contains(id) && seen.insert(id).inserted, hasEventID: hasID,
                                       keyParked: parkedKeys.contains(key())) {
                case .skipDuplicate:
                    counts.duplicatesSkipped += 1
                    continue
                case .deadLetter(let reason):
                    poison.append((record, id, reason))
                    continue
                case .parkBehindItsKey:
                    let key = key()
                    try parked.park(session, record, eventID: id, key: key, error: nil)
                    try inbox.markParked(session, id: id, error: nil)
                    counts.parked += 1
                    logger.log(.info, "parked_behind", [("event_id", id), ("topic", record.topic), ("partition", "\(record.partition)"),
                                                   ("offset", "\(record.offset)"), ("key", key.key)])
                    continue
                case .runHandler:
                    break
                }
                switch try applyEvent(record, id: id, session: session, pass: savepoints ? .savepoints : .fast, counts: &counts,
                                      applied: &applied, handlerRoundTrips: &handlerRoundTrips) {
                case nil:
                    break
                case .applyWithSavepoints?:
                    return rolledBackForSavepoints()
                case .deadLetter(let reason)?:
                    poison.append((record, id, reason))
                case .parkItsKey(let reason)?:
                    let key = key()
                    try parked.park(session, record, eventID: id, key: key, error: reason)
                    try inbox.markParked(session, id: id, error: reason)
                    parkedKeys.insert(key)
                    counts.parked += 1
                    logger.log(.warning, "key_parked", [("event_id", id), ("topic", record.topic), ("partition", "\(record.partition)"),
                                                   ("offset", "\(record.offset)"), ("key", key.key), ("error", String(reason.prefix(200)))])
                case .stopRelease?, .retryHandler?, .rollBackBatch?:
                    preconditionFailure("EventPolicy answers these only in a release, or applyEvent performs them")
                }
            }
            // A dead letter cannot be taken back: the handlers' deferred statements must have succeeded before one
            // goes out, or a failure among them would send it again when the batch is applied with savepoints.
            if !poison.isEmpty { try session.flushDeferred() }
            for entry in poison {
                try deadLetter(entry.record, reason: entry.reason, id: entry.id, session: session)
                counts.deadLettered += 1
            }
            try session.query("COMMIT")
            counts.roundTrips = ownRoundTrips()
            counts.batches = 1
            return .committed(Outcome(nextOffsets: next, counts: counts, applied: applied))
        } catch let failure as PostgresError where failure.isDeferred && !savepoints {
            // A handler's deferred statement failed where a later statement sent it (COMMIT, a later event's query):
            // which event it belongs to is found by applying the batch again with a savepoint per event, where each
            // event's deferred statements are sent inside its own savepoint.
            switch policy.handlerFailed(FailureClassifier.classify(failure), failures: 1, in: .fast, reason: "\(failure)") {
            case .rollBackBatch(let reason):
                session.discardDeferred()
                _ = try? session.query("ROLLBACK")
                throw BatchRollback(reason: reason, cause: failure)
            case .applyWithSavepoints:
                return rolledBackForSavepoints()
            case .retryHandler, .parkItsKey, .deadLetter, .stopRelease:
                preconditionFailure("EventPolicy answers a failure in the fast pass with rollBackBatch or applyWithSavepoints")
            }
        } catch {
            session.discardDeferred()
            _ = try? session.query("ROLLBACK")
            throw error
        }
    }

    /// Runs the handler for one event until it succeeds or the ``EventPolicy`` answers its failure with anything but
    /// another attempt.
    ///
    /// In the ``EventPolicy/Pass/fast`` pass the handler runs once, straight in the transaction; in the others it
    /// runs in a savepoint of its own, and again after the retry delay while the policy says
    /// ``EventPolicy/AfterFailure/retryHandler``.
    ///
    /// - Returns: `nil` when the handler succeeded; otherwise the policy's answer to its last failure:
    ///   ``EventPolicy/AfterFailure/applyWithSavepoints`` (fast pass), ``EventPolicy/AfterFailure/parkItsKey(reason:)``
    ///   or ``EventPolicy/AfterFailure/deadLetter(reason:)`` (with savepoints), ``EventPolicy/AfterFailure/stopRelease(reason:)``
    ///   (release).
    /// - Throws: ``BatchRollback`` when the policy answers ``EventPolicy/AfterFailure/rollBackBatch(reason:)``;
    ///   ``StopInterrupted`` when a stop cut a retry delay short.
    private func applyEvent(_ record: ConsumerRecord, id: String, session: Session, pass: EventPolicy.Pass,
                            counts: inout ConsumerMetrics.Snapshot,
                            applied: inout [(eventType: String, commitTime: Date)], handlerRoundTrips: inout Int) throws -> EventPolicy.AfterFailure? {
        let event = Self.event(of: record, id: id)
        func runHandler(_ session: Session) throws {
            let before = session.roundTrips
            defer { handlerRoundTrips += session.roundTrips - before }
            try executor.run(handler, event, session)
        }
        var failures = 0
        var backoff = Backoff(initial: configuration.retryBackoff, maximum: configuration.maxBackoff)
        while true {
            do {
                if pass == .fast {
                    try runHandler(session)
                } else {
                    try session.savepoint("tailgate_event") { try runHandler($0) }
                }
                counts.applied += 1
                if let committed = event.commitTime { applied.append((event.type ?? "", committed)) }
                return nil
            } catch {
                let verdict = FailureClassifier.classify(error)
                failures += 1
                let next = policy.handlerFailed(verdict, failures: failures, in: pass, reason: "\(error)")
                switch next {
                case .rollBackBatch(let reason):
                    throw BatchRollback(reason: reason, cause: error)
                case .applyWithSavepoints:
                    return next
                case .retryHandler, .parkItsKey, .deadLetter, .stopRelease:
                    counts.handlerFailures += 1
                    logger.log(.warning, "handler_failed", [("event_id", id), ("attempt", "\(failures)"), ("poison", "\(verdict == .poison)"),
                                                       ("error", "\(error)")])
                    guard next == .retryHandler else { return next }
                    if stop.wait(for: backoff.next()) { throw StopInterrupted() }
                }
            }
        }
    }

    /// The event a handler sees for `record`.
    static func event(of record: ConsumerRecord, id: String) -> OutboxEvent {
        OutboxEvent(
            id: id, type: record.header("event_type")?.stringValue, key: record.key.map { String(decoding: $0, as: UTF8.self) },
            payload: record.value ?? [], headers: record.headers, topic: record.topic, partition: record.partition,
            offset: record.offset, timestamp: record.timestampMilliseconds.map { Date(timeIntervalSince1970: Double($0) / 1000) })
    }

    /// Applies the parked events of `key` in order, in one transaction, until one fails again (it then heads the key,
    /// with the new error). A crash or a rollback changes nothing: the request stays and is carried out later.
    ///
    /// - Returns: How many events were applied, and the error that stopped the release early, if one did.
    /// - Throws: ``BatchRollback`` when the database (or a handler's ``HandlerFailure/Kind/retryLater``) rolled it back;
    ///   ``StopInterrupted`` when a stop came first or cut it short (rolled back, the request stays).
    func release(_ key: ParkedStore.Key, database: DatabaseLink) throws -> (released: Int, stoppedBy: String?) {
        try stoppable {
            try Self.asRollback {
                try database.withSession { session in
                    try cancellation.whileRunning(session, connection: database.connectionsOpened) {
                        try releaseInTransaction(key, session)
                    }
                }
            }
        }
    }

    private func releaseInTransaction(_ key: ParkedStore.Key, _ session: Session) throws -> (released: Int, stoppedBy: String?) {
        try session.query("BEGIN")
        do {
            var released = 0
            var stoppedBy: String?
            var counts = ConsumerMetrics.Snapshot()
            events: for (record, id) in try parked.events(session, of: key) {
                var releasedNow: [(eventType: String, commitTime: Date)] = [] // parked long ago: not freshness
                var handlerRoundTrips = 0
                switch try applyEvent(record, id: id, session: session, pass: .release, counts: &counts,
                                      applied: &releasedNow, handlerRoundTrips: &handlerRoundTrips) {
                case nil:
                    try parked.remove(session, key, offset: record.offset)
                    try inbox.markReleased(session, id: id)
                    released += 1
                case .stopRelease(let reason)?:
                    try parked.stopRelease(session, key, at: record.offset, error: reason)
                    try inbox.markParked(session, id: id, error: reason)
                    stoppedBy = reason
                    break events
                case .applyWithSavepoints?, .parkItsKey?, .deadLetter?, .retryHandler?, .rollBackBatch?:
                    preconditionFailure("EventPolicy answers a failure in a release with stopRelease, or applyEvent performs it")
                }
            }
            try session.query("COMMIT")
            return (released, stoppedBy)
        } catch {
            session.discardDeferred()
            _ = try? session.query("ROLLBACK")
            throw error
        }
    }

    /// Sends the record to the dead-letter topic, waits for Kafka's acknowledgement, then marks it in the inbox.
    private func deadLetter(_ record: ConsumerRecord, reason: String, id: String, session: Session) throws {
        let headers = record.headers + [
            KafkaHeader(name: "tailgate_error", string: String(reason.prefix(1000))),
            KafkaHeader(name: "tailgate_consumer_group", string: configuration.groupID),
            KafkaHeader(name: "tailgate_original_topic", string: record.topic),
            KafkaHeader(name: "tailgate_original_partition", string: String(record.partition)),
            KafkaHeader(name: "tailgate_original_offset", string: String(record.offset)),
        ]
        try deadLetters.publishAndWait(KafkaRecord(topic: configuration.deadLetterTopic, key: record.key, value: record.value, headers: headers))
        try inbox.markDeadLettered(session, id: id, error: reason)
        logger.log(.warning, "dead_lettered", [("event_id", id), ("topic", record.topic), ("partition", "\(record.partition)"),
                                          ("offset", "\(record.offset)"), ("reason", String(reason.prefix(200)))])
    }
}

/// A batch was rolled back and must be retried after a backoff; `reason` says what an operator should look at.
struct BatchRollback: Error, CustomStringConvertible {
    var reason: String
    var cause: any Error
    var description: String { "\(reason) (\(cause))" }
}

/// A stop request cut a wait short inside a batch; the batch was rolled back.
struct StopInterrupted: Error {}

extension BatchApplier {
    /// Runs `body`; an error after a stop was requested becomes ``StopInterrupted``: the stop's cancel request (see
    /// ``StatementCanceller``) aborted the transaction, which rolled back, and the loop finishes instead of retrying.
    func stoppable<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch _ where stop.isRequested {
            throw StopInterrupted()
        }
    }

    /// Runs `body`; a stop or a rollback passes as it is, any other error becomes a ``BatchRollback`` with the reason
    /// an operator needs.
    static func asRollback<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let stopped as StopInterrupted {
            throw stopped
        } catch let rollback as BatchRollback {
            throw rollback
        } catch {
            throw BatchRollback(reason: FailureClassifier.batchReason(error), cause: error)
        }
    }
}
