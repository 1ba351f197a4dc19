import LibPQ
import Observability
import PGOutput
import RDKafka
import ServiceRuntime
import Synchronization

/// One replication session: stream from a checked slot, decode, route and publish with back-pressure, and on a
/// stop request drain and confirm what Kafka acknowledged.
///
/// The session reports what happens to it as ``Event``s on ``events`` and by how ``run()`` ends; it never calls
/// into the ``Connector``, which alone feeds ``ConnectorStateMachine``. The reading runs in a task of its own that a
/// stop request cancels, which wakes a back-pressure wait at once. A session ends by returning (it drained after a
/// stop request) or by throwing (the connection broke, a delivery failed, the slot is gone, the stream is invalid).
final class ReplicationSession: Sendable {
    /// What a session reports while it runs.
    enum Event: Sendable {
        /// The stream is open from `position`; `pipeline` holds its records until Kafka acknowledges them.
        case streaming(from: LSN, pipeline: Pipeline)
        /// The session confirmed `position` to PostgreSQL: everything before it was acknowledged by Kafka. Reported
        /// once, as the session ends, however it ends (the next slot check compares the slot with it).
        case confirmed(LSN)
    }

    /// What the session streams with; lent by the connector, which owns each piece.
    struct Environment: Sendable {
        let configuration: ConnectorConfiguration
        let options: Connector.Options
        let router: OutboxRouter
        let metrics: ConnectorMetrics
        let logger: EventLogger
        /// Cancels the reading when a stop is requested.
        let stop: StopSignal
        /// Where the producer's delivery reports go: this session's pipeline while it runs.
        let deliveries: DeliveryRouter
    }

    /// The events, in order; the stream finishes when ``run()`` returns or throws.
    let events: AsyncStream<Event>
    private let reporter: AsyncStream<Event>.Continuation
    private let environment: Environment
    private let replication: ReplicationConnection
    private let startPosition: LSN
    private let isOutbox: @Sendable (Relation) -> Bool
    private let producer: any RecordSink
    private let number: UInt64
    private let lastPublishedAt = Mutex(ContinuousClock.now)

    /// Creates a session on `replication`, whose slot was checked; nothing streams until ``run()``.
    ///
    /// - Parameters:
    ///   - startPosition: Where the slot check said to start.
    ///   - isOutbox: Whether a relation is the outbox table.
    ///   - number: This session's number in the process: its delivery tokens never match an earlier session's.
    init(environment: Environment, replication: ReplicationConnection, startingAt startPosition: LSN,
         isOutbox: @escaping @Sendable (Relation) -> Bool, producer: any RecordSink, number: UInt64) {
        (events, reporter) = AsyncStream.makeStream(of: Event.self)
        self.environment = environment
        self.replication = replication
        self.startPosition = startPosition
        self.isOutbox = isOutbox
        self.producer = producer
        self.number = number
    }

    private var configuration: ConnectorConfiguration { environment.configuration }
    private var metrics: ConnectorMetrics { environment.metrics }
    private var logger: EventLogger { environment.logger }

    /// When the session last published a record (its start, before the first).
    var lastPublished: ContinuousClock.Instant { lastPublishedAt.withLock { $0 } }

    /// Runs the session, reporting on ``events``.
    ///
    /// - Throws: Whatever ended the session; nothing past the last acknowledged transaction was confirmed.
    func run() async throws {
        defer { reporter.finish() }
        let options = environment.options
        let stream = try await replication.startReplication(
            slot: configuration.slot, start: startPosition,
            options: PGOutputOptions(protocolVersion: 1, publications: [configuration.publication], messages: true),
            statusInterval: options.statusInterval, receiveTimeout: options.receiveTimeout)
        let pipeline = Pipeline(stream: stream, startingAt: startPosition, session: number, metrics: metrics, logger: logger,
                                deadLetterTopic: configuration.deadLetterTopic, onAcknowledged: options.onAcknowledged)
        // Attached here, before any record is sent, so that no delivery report can miss the pipeline.
        environment.deliveries.attach(pipeline)
        defer { environment.deliveries.detach(pipeline) }
        metrics.setStreaming(true)
        reporter.yield(.streaming(from: startPosition, pipeline: pipeline))
        logger.info("streaming", ("slot", configuration.slot), ("from", startPosition.description))

        let reader = Task { try await self.read(stream, pipeline: pipeline) }
        let stopKey = environment.stop.onStop { reader.cancel() }
        defer { environment.stop.remove(stopKey) }
        do {
            try await reader.value
        } catch is CancellationError where environment.stop.isRequested {
            // A stop request interrupted a wait: drain below.
        } catch {
            metrics.setStreaming(false)
            // Give Kafka the records already sent, so that what it acknowledged is confirmed before the next session.
            if pipeline.failure == nil {
                _ = await producer.flush(timeout: options.shutdownTimeout)
            }
            // Even after a failure: the stream may have confirmed up to here, and the next slot check compares the
            // slot with it.
            reporter.yield(.confirmed(pipeline.confirmable))
            await stream.close()
            throw error
        }
        try await drain(stream, pipeline: pipeline)
    }

    /// Graceful stop: waits for in-flight records up to the shutdown timeout, confirms what was acknowledged.
    private func drain(_ stream: ReplicationStream, pipeline: Pipeline) async throws {
        metrics.setStreaming(false)
        let left = await producer.flush(timeout: environment.options.shutdownTimeout)
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
        reporter.yield(.confirmed(pipeline.confirmable))
        logger.info("confirmed", ("lsn", pipeline.confirmable.description))
    }

    /// What the reading keeps from one frame to the next. The stream's thread uses it while it hands frames over
    /// (``ReplicationStream/receive(maxFrames:timeout:coalescing:handle:batchDone:)``), the reading task between two such calls.
    private struct ReadState {
        var decoder = PGOutputDecoder()
        var transaction: OutboxRouter.TransactionContext?
        /// Whether a record was published since the last batch's gauges.
        var published = false
        /// The highest server WAL end of the batch (the gauge moves once per batch of frames, not per message).
        var serverWALEnd = LSN.invalid
        /// A record the producer could not take without waiting: the reading task waits, then sends it, before the
        /// stream's next frame is handled.
        var waiting: Waiting?
    }

    /// Why a record waits, and what it needs to be sent afterwards.
    private enum Waiting {
        /// `maxInFlightRecords` are in flight: wait for room, then register and send it.
        case forRoom(KafkaRecord, position: LSN)
        /// librdkafka's queue is full: it was registered as `token`; send it when the queue has room.
        case forQueue(KafkaRecord, token: UInt64)
    }

    /// ``ReadState`` behind a lock, to be lent to the stream's thread.
    private final class Reader: Sendable {
        let state = Mutex(ReadState())
    }

    /// Reads, decodes, routes and publishes until cancelled (a stop request) or a failure.
    ///
    /// The frames are handled on the stream's own thread as they arrive (one thread reads, decodes and produces: no
    /// hand-over per batch); the reading task only takes over to wait: for room below `maxInFlightRecords`, for
    /// room in librdkafka's queue, or to notice a stop or a failure.
    private func read(_ stream: ReplicationStream, pipeline: Pipeline) async throws {
        let reader = Reader()
        let stop = environment.stop
        while !Task.isCancelled {
            if let failure = pipeline.failure { throw failure }
            try await stream.receive(maxFrames: 4096, timeout: .milliseconds(100), coalescing: environment.options.readCoalescing, handle: { frame in
                try reader.state.withLock { state throws in try self.handle(frame, &state, pipeline: pipeline) }
            }, batchDone: {
                reader.state.withLock { state in self.batchDone(&state, pipeline: pipeline) }
                return !stop.isRequested && pipeline.failure == nil
            })
            let waiting = reader.state.withLock { state in
                defer { state.waiting = nil }
                return state.waiting
            }
            if let waiting { try await send(waiting, pipeline: pipeline) }
        }
    }

    /// The gauges, once per batch of frames.
    private func batchDone(_ state: inout ReadState, pipeline: Pipeline) {
        if state.serverWALEnd != .invalid {
            metrics.serverWALEnd(state.serverWALEnd.rawValue)
            state.serverWALEnd = .invalid
        }
        if state.published {
            state.published = false
            pipeline.publishedBatch()
            lastPublishedAt.withLock { $0 = .now }
        }
    }

    /// Handles one frame on the stream's thread; `false` when a record waits (``ReadState/waiting``) and the
    /// reading task must take over before the next frame.
    private func handle(_ frame: ReplicationFrame, _ state: inout ReadState, pipeline: Pipeline) throws -> Bool {
        switch frame {
        case .primaryKeepalive(let keepalive):
            pipeline.keepalive(keepalive.serverWALEnd)
        case .xLogData(let data):
            state.serverWALEnd = max(state.serverWALEnd, data.serverWALEnd)
            let message: PGOutputMessage
            do {
                message = try state.decoder.decode(data.data)
            } catch {
                throw ConnectorError(.invalidStream, "the pgoutput message at LSN \(data.walStart) cannot be decoded: \(error). Nothing from its transaction on was confirmed. This is a Tailgate bug or an unsupported server version: report it with the LSN and the PostgreSQL version; restarting replays the same message")
            }
            switch message {
            case .begin(let begin):
                try pipeline.begin(at: data.walStart, commitTime: begin.commitTime)
                state.transaction = OutboxRouter.TransactionContext(commitLSN: begin.finalLSN, xid: begin.xid, commitTime: begin.commitTime)
            case .relation(let relation) where isOutbox(relation):
                try environment.router.validate(relation)
            case .insert(let insert):
                guard let relation = state.decoder.relations[insert.relationID] else {
                    throw ConnectorError(.invalidStream, "an Insert at LSN \(data.walStart) names relation \(insert.relationID), which no Relation message described; the connector stopped rather than skip a row. Nothing from its transaction on was confirmed; restart to replay from the slot, and report it with the LSN if it happens again")
                }
                guard isOutbox(relation) else { return true }
                guard let context = state.transaction else {
                    throw ConnectorError(.invalidStream, "an outbox row at LSN \(data.walStart) arrived outside a transaction (no Begin before it); nothing past the last acknowledged transaction was confirmed")
                }
                let row: Row
                do {
                    row = try state.decoder.row(relationID: insert.relationID, tuple: insert.newTuple, messageName: "Insert")
                } catch {
                    throw ConnectorError(.invalidStream, "the outbox row at LSN \(data.walStart) cannot be decoded: \(error). Nothing from its transaction on was confirmed")
                }
                state.published = true
                let record = try record(for: environment.router.route(row, in: context), context: context)
                return try offer(record, at: data.walStart, pipeline: pipeline, &state)
            case .commit(let commit):
                try pipeline.commit(endLSN: commit.endLSN)
                state.transaction = nil
            default:
                break
            }
        }
        return true
    }

    /// The record a routed row becomes: itself, or its dead letter.
    ///
    /// - Throws: ``ConnectorError`` `undeliverableRow` for a row that cannot become a record and has no dead-letter
    ///   topic to go to.
    private func record(for routing: OutboxRouter.Routing, context: OutboxRouter.TransactionContext) throws -> KafkaRecord {
        switch routing {
        case .publish(let routed):
            return routed
        case .reject(let reason, let eventID, let deadLetter):
            guard let deadLetter else {
                throw ConnectorError(.undeliverableRow, "outbox row event_id=\(eventID ?? "NULL") in the transaction committed at LSN \(context.commitLSN) cannot become a record: \(reason). Nothing from it on was confirmed. Fix or delete the row's cause and restart, or set \"deadLetterTopic\"")
            }
            logger.warning("dead_letter", ("event_id", eventID ?? "NULL"), ("lsn", context.commitLSN.description), ("reason", reason))
            return deadLetter
        }
    }

    /// Hands `record` to the producer without waiting (the common case: no suspension per record); `false` when it
    /// has to wait, kept in `state.waiting` for ``send(_:pipeline:)``.
    private func offer(_ record: KafkaRecord, at position: LSN, pipeline: Pipeline, _ state: inout ReadState) throws -> Bool {
        guard pipeline.inFlightRecords < configuration.maxInFlightRecords else {
            state.waiting = .forRoom(record, position: position)
            return false
        }
        let token = try pipeline.recordProduced(at: position)
        do {
            try producer.trySend(record, token: token)
            return true
        } catch where error.kind == .queueFull {
            state.waiting = .forQueue(record, token: token)
            return false
        } catch {
            throw deliveryFailure(error, record, pipeline: pipeline)
        }
    }

    /// Waits for what `waiting` needs, then sends its record.
    private func send(_ waiting: Waiting, pipeline: Pipeline) async throws {
        let (record, token): (KafkaRecord, UInt64)
        switch waiting {
        case .forRoom(let waitingRecord, let position):
            try await pipeline.waitForRoom(below: configuration.maxInFlightRecords)
            (record, token) = (waitingRecord, try pipeline.recordProduced(at: position))
        case .forQueue(let waitingRecord, let waitingToken):
            (record, token) = (waitingRecord, waitingToken)
        }
        do {
            try await producer.send(record, token: token)
        } catch where error.kind == .cancelled {
            // Stopped while waiting for room: the record was never sent, so its transaction is never confirmed.
            throw CancellationError()
        } catch {
            throw deliveryFailure(error, record, pipeline: pipeline)
        }
    }

    /// Fails the pipeline with a refused record's error; returns what the session throws.
    private func deliveryFailure(_ error: KafkaError, _ record: KafkaRecord, pipeline: Pipeline) -> any Error {
        pipeline.fail(error)
        return error.isFatal ? error : ConnectorError(.deliveryFailed, "Kafka refused the record for event_id=\(record.headers.first?.stringValue ?? "?"): \(error)")
    }
}
