import LibPQ
import Observability
import PGOutput
import RDKafka
import Synchronization

/// One replication session: connect, check the slot, stream, decode, route and publish with back-pressure, and on
/// a stop request drain and confirm what Kafka acknowledged.
///
/// The reading runs in a task of its own that a stop request cancels, which wakes a back-pressure wait at once;
/// the slot checks and heartbeats run beside it (``SlotWatcher``) and never hold it up. A session ends by
/// returning (it drained after a stop request) or by throwing (the connection broke, a delivery failed, the slot is
/// gone, the stream is invalid); ``ConnectorStateMachine`` decides what follows.
final class ReplicationSession: Sendable {
    private let connector: Connector
    private let setup: Connector.Setup
    private let producer: any RecordSink
    private let number: UInt64
    private let lastActivity = Mutex(ContinuousClock.now)

    init(connector: Connector, setup: Connector.Setup, producer: any RecordSink, number: UInt64) {
        self.connector = connector
        self.setup = setup
        self.producer = producer
        self.number = number
    }

    private var configuration: ConnectorConfiguration { connector.configuration }
    private var metrics: ConnectorMetrics { connector.metrics }
    private var logger: EventLogger { connector.logger }

    /// Runs the session; `onStreaming` is called once the stream is open.
    ///
    /// - Throws: Whatever ended the session; nothing past the last acknowledged transaction was confirmed.
    func run(onStreaming: () -> Void) async throws {
        let replication = try await ReplicationConnection.connect(configuration.conninfo)
        defer { Task { await replication.close() } }
        let startPosition = try await connector.checkSlot(replication, setup: setup)
        let options = connector.options
        let stream = try await replication.startReplication(
            slot: configuration.slot, start: startPosition,
            options: PGOutputOptions(protocolVersion: 1, publications: [configuration.publication], messages: true),
            statusInterval: options.statusInterval, receiveTimeout: options.receiveTimeout)
        let pipeline = Pipeline(stream: stream, startingAt: startPosition, session: number, metrics: metrics, logger: logger,
                                deadLetterTopic: configuration.deadLetterTopic, onAcknowledged: options.onAcknowledged)
        connector.attach(pipeline)
        defer { connector.detach(pipeline) }
        let connector = self.connector, setup = self.setup
        let watcher = SlotWatcher(
            heartbeatInterval: configuration.heartbeatIntervalSeconds > 0 ? .seconds(configuration.heartbeatIntervalSeconds) : nil,
            heartbeatTarget: { setup.writer }, metrics: metrics, logger: logger,
            lastActivity: { [self] in lastActivity.withLock { $0 } },
            checkSlot: { try await connector.watchSlot(setup) },
            onSlotLost: { pipeline.fail($0) }).start()
        defer { watcher.cancel() }
        metrics.setStreaming(true)
        onStreaming()
        logger.info("streaming", ("slot", configuration.slot), ("from", startPosition.description))

        let reader = Task { try await self.read(stream, pipeline: pipeline) }
        let stopKey = connector.stop.onStop { reader.cancel() }
        defer { connector.stop.remove(stopKey) }
        do {
            try await reader.value
        } catch is CancellationError where connector.stop.isRequested {
            // A stop request interrupted a wait: drain below.
        } catch {
            metrics.setStreaming(false)
            // Give Kafka the records already sent, so that what it acknowledged is confirmed before the next session.
            if pipeline.failure == nil {
                _ = await producer.flush(timeout: options.shutdownTimeout)
            }
            // Even after a failure: the stream may have confirmed up to here, and checkSlot compares the slot with it.
            connector.remember(pipeline.confirmable)
            await stream.close()
            throw error
        }
        try await drain(stream, pipeline: pipeline)
    }

    /// Graceful stop: waits for in-flight records up to the shutdown timeout, confirms what was acknowledged.
    private func drain(_ stream: ReplicationStream, pipeline: Pipeline) async throws {
        metrics.setStreaming(false)
        let left = await producer.flush(timeout: connector.options.shutdownTimeout)
        if left > 0 {
            producer.purge()
            _ = await producer.flush(timeout: .seconds(1))
        }
        // Closing sends a last status update with what was acknowledged (purged records never are).
        await stream.close()
        if left > 0 {
            throw ConnectorError(.shutdownDeadline, "\(left) record(s) were not acknowledged within the shutdown timeout and were purged; nothing past the last acknowledged record was confirmed, so they will be sent again at the next start")
        }
        if let failure = pipeline.failure { throw failure }
        connector.remember(pipeline.confirmable)
        logger.info("confirmed", ("lsn", pipeline.confirmable.description))
    }

    /// Reads, decodes, routes and publishes until cancelled (a stop request) or a failure.
    private func read(_ stream: ReplicationStream, pipeline: Pipeline) async throws {
        var decoder = PGOutputDecoder()
        var transaction: OutboxRouter.TransactionContext?
        var commitTime = PostgresTimestamp(rawValue: 0)
        while !Task.isCancelled {
            if let failure = pipeline.failure { throw failure }
            let frames = try await stream.next(maxFrames: 1024, timeout: .milliseconds(100))
            var published = false
            for frame in frames {
                switch frame {
                case .primaryKeepalive(let keepalive):
                    pipeline.keepalive(keepalive.serverWALEnd)
                case .xLogData(let data):
                    metrics.serverWALEnd(data.serverWALEnd.rawValue)
                    let message: PGOutputMessage
                    do {
                        message = try decoder.decode(data.data)
                    } catch {
                        throw ConnectorError(.invalidStream, "the pgoutput message at LSN \(data.walStart) cannot be decoded: \(error). Nothing from its transaction on was confirmed. This is a Tailgate bug or an unsupported server version: report it with the LSN and the PostgreSQL version; restarting replays the same message")
                    }
                    switch message {
                    case .begin(let begin):
                        try pipeline.begin(at: data.walStart)
                        transaction = OutboxRouter.TransactionContext(commitLSN: begin.finalLSN, xid: begin.xid, commitTime: begin.commitTime)
                        commitTime = begin.commitTime
                    case .relation(let relation) where setup.isOutbox(relation):
                        try connector.router.validate(relation)
                    case .insert(let insert):
                        guard let relation = decoder.relations[insert.relationID] else {
                            throw ConnectorError(.invalidStream, "an Insert at LSN \(data.walStart) names relation \(insert.relationID), which no Relation message described; the connector stopped rather than skip a row. Nothing from its transaction on was confirmed; restart to replay from the slot, and report it with the LSN if it happens again")
                        }
                        guard setup.isOutbox(relation) else { continue }
                        guard let context = transaction else {
                            throw ConnectorError(.invalidStream, "an outbox row at LSN \(data.walStart) arrived outside a transaction (no Begin before it); nothing past the last acknowledged transaction was confirmed")
                        }
                        let row: Row
                        do {
                            row = try decoder.row(relationID: insert.relationID, tuple: insert.newTuple, messageName: "Insert")
                        } catch {
                            throw ConnectorError(.invalidStream, "the outbox row at LSN \(data.walStart) cannot be decoded: \(error). Nothing from its transaction on was confirmed")
                        }
                        try await publish(connector.router.route(row, in: context), context: context, commitTime: commitTime,
                                          at: data.walStart, pipeline: pipeline)
                        published = true
                    case .commit(let commit):
                        try pipeline.commit(endLSN: commit.endLSN)
                        transaction = nil
                    default:
                        break
                    }
                }
            }
            if published { lastActivity.withLock { $0 = .now } }
        }
    }

    private func publish(_ routing: OutboxRouter.Routing, context: OutboxRouter.TransactionContext, commitTime: PostgresTimestamp,
                         at position: LSN, pipeline: Pipeline) async throws {
        let record: KafkaRecord
        switch routing {
        case .publish(let routed):
            record = routed
        case .reject(let reason, let eventID, let deadLetter):
            guard let deadLetter else {
                throw ConnectorError(.undeliverableRow, "outbox row event_id=\(eventID ?? "NULL") in the transaction committed at LSN \(context.commitLSN) cannot become a record: \(reason). Nothing from it on was confirmed. Fix or delete the row's cause and restart, or set \"deadLetterTopic\"")
            }
            logger.warning("dead_letter", ("event_id", eventID ?? "NULL"), ("lsn", context.commitLSN.description), ("reason", reason))
            record = deadLetter
        }
        let limit = configuration.maxInFlightRecords
        if pipeline.inFlightRecords >= limit { try await pipeline.waitForRoom(below: limit) }
        let token = try pipeline.recordProduced(commitTime: commitTime, at: position)
        do {
            do {
                try producer.trySend(record, token: token) // the common case: no suspension per record
            } catch where error.kind == .queueFull {
                try await producer.send(record, token: token)
            }
        } catch where error.kind == .cancelled {
            // Stopped while waiting for room: the record was never sent, so its transaction is never confirmed.
            throw CancellationError()
        } catch {
            pipeline.fail(error)
            throw error.isFatal ? error : ConnectorError(.deliveryFailed, "Kafka refused the record for event_id=\(record.headers.first?.stringValue ?? "?"): \(error)")
        }
    }
}
