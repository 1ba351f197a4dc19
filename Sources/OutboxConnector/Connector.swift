import Foundation
import LibPQ
import Observability
import PGOutput
import RDKafka
import Synchronization

/// The outbox pipeline: WAL in through logical replication, keyed Kafka records out, WAL confirmed only behind
/// Kafka's acknowledgements.
///
/// ```swift
/// let connector = Connector(configuration: try ConnectorConfiguration.load(path: "connectors/commerce-outbox.json"))
/// try await connector.run()          // until requestStop() or a fatal error
/// ```
///
/// Guarantees: every inserted outbox row is published at least once, in commit order per key; the position
/// confirmed to PostgreSQL is decided by ``AckTracker`` alone. Retriable failures (connection loss, a busy slot,
/// a broker outage) are waited out; a delivery error stops the pipeline without confirming past it.
public final class Connector: Sendable {
    /// Options that are not part of the connector file.
    public struct Options: Sendable {
        /// Where the connector remembers which slots it has used (see the README's "Slot lifecycle").
        public var stateDirectory: String
        /// How long graceful shutdown waits for Kafka to acknowledge in-flight records.
        public var shutdownTimeout: Duration
        /// How often the replication stream reports its position without being asked.
        public var statusInterval: Duration
        /// The longest wait between reconnection attempts.
        public var maxBackoff: Duration
        /// Benchmarks only: records are acknowledged at once and sent nowhere (decode, route and confirm only).
        @_spi(Benchmarks) public var discardRecords = false
        /// Benchmarks only: called on the delivery thread with each acknowledged record's commit-to-acknowledgement
        /// time in seconds (commit time from the transaction's Begin message).
        @_spi(Benchmarks) public var onAcknowledged: (@Sendable (Double) -> Void)?

        /// Creates options.
        public init(stateDirectory: String = ".tailgate-state", shutdownTimeout: Duration = .seconds(30),
                    statusInterval: Duration = .seconds(10), maxBackoff: Duration = .seconds(30)) {
            self.stateDirectory = stateDirectory
            self.shutdownTimeout = shutdownTimeout
            self.statusInterval = statusInterval
            self.maxBackoff = maxBackoff
        }
    }

    /// The configuration.
    public let configuration: ConnectorConfiguration
    /// Counters and gauges for `/metrics`.
    public let metrics: ConnectorMetrics
    let options: Options
    let logger: EventLogger
    let router: OutboxRouter
    private let stopRequested = Atomic<Bool>(false)
    private let pipeline = Mutex<Pipeline?>(nil)
    /// The newest position Kafka's acknowledgements released in an earlier session of this process.
    private let acknowledgedPosition = Mutex<LSN>(.invalid)

    var pipelineConfirmable: LSN? { acknowledgedPosition.withLock { $0 } }
    private let boundMetricsPort = Mutex<Int?>(nil)
    private let sessions = Atomic<UInt64>(0)

    /// The port `/metrics` listens on while running (useful with `metrics.listen` port 0).
    public var metricsPort: Int? { boundMetricsPort.withLock { $0 } }

    /// Creates a connector; nothing connects until ``run()``.
    public init(configuration: ConnectorConfiguration, options: Options = Options(), logger: EventLogger = EventLogger()) {
        self.configuration = configuration
        self.options = options
        let logger = logger.with(("connector", configuration.name))
        let metrics = ConnectorMetrics(connector: configuration.name)
        self.logger = logger
        self.metrics = metrics
        let maxBytes = Int(configuration.kafka["message.max.bytes"] ?? "") ?? 1_000_000
        self.router = OutboxRouter(configuration: configuration, maxRecordBytes: maxBytes) { eventID, rejection in
            logger.warning("trace_context_dropped", ("event_id", eventID ?? "NULL"), ("header", rejection.header), ("reason", rejection.reason))
            metrics.traceContextDropped()
        }
    }

    /// Asks the connector to stop: it stops reading, waits for in-flight records (up to the shutdown timeout),
    /// confirms what Kafka acknowledged and returns from ``run()``.
    public func requestStop() {
        stopRequested.store(true, ordering: .releasing)
    }

    var isStopping: Bool { stopRequested.load(ordering: .acquiring) }

    /// Runs until ``requestStop()`` or a failure that retrying cannot fix.
    ///
    /// - Throws: ``ConnectorError`` (setup, lost slot, schema change, undeliverable row, permanent delivery error,
    ///   shutdown deadline), or ``ConfigurationError``/``KafkaError`` for a bad Kafka configuration.
    public func run() async throws {
        logger.info("starting", ("postgres", configuration.maskedConninfo), ("slot", configuration.slot),
                    ("publication", configuration.publication), ("table", configuration.table.description))
        let setup = try await prepare()
        let metricsServer = try configuration.metricsListen.map { listen in
            let metrics = self.metrics
            let server = try MetricsServer(listen: listen, metrics: { metrics.render() }, healthy: { metrics.isStreaming })
            logger.info("metrics_listening", ("address", listen), ("port", "\(server.port)"))
            boundMetricsPort.withLock { $0 = server.port }
            return server
        }
        defer {
            metricsServer?.stop()
            boundMetricsPort.withLock { $0 = nil }
        }
        let initialBackoff = Duration.milliseconds(250)
        var backoff = initialBackoff
        var streamed = false
        var producer = try makeProducer()
        while !isStopping {
            do {
                streamed = false
                try await stream(setup: setup, producer: producer, streamed: &streamed)
                backoff = initialBackoff
            } catch let error as PostgresError where error.isTransient {
                metrics.setStreaming(false)
                // The backoff grows over consecutive failed attempts only: after a session that streamed, the
                // next attempt waits the shortest time again (else every later reconnect waited longer).
                if streamed { backoff = initialBackoff }
                if error.sqlState == "55006" {
                    logger.warning("slot_in_use", ("slot", configuration.slot),
                                   ("detail", "another process streams from the slot; waiting to take over"))
                } else {
                    logger.warning("postgres_unavailable", ("error", error.description), ("retry_in", "\(backoff)"))
                }
                metrics.reconnected()
                // A busy slot is polled at least every second: it frees within moments of its holder's death
                // (a terminated walsender, a standby taking over), and waiting longer only delays the takeover.
                let slotBusy = error.sqlState == "55006"
                try? await Task.sleep(for: slotBusy ? min(backoff, .seconds(1)) : backoff)
                backoff = min(backoff * 2, options.maxBackoff)
            } catch let error as KafkaError where error.isFatal {
                metrics.setStreaming(false)
                logger.error("kafka_fatal", ("error", error.description), ("action", "recreating the producer; resuming from the slot"))
                if streamed { backoff = initialBackoff }
                await producer.close(timeout: .zero)
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, options.maxBackoff)
                producer = try makeProducer()
            } catch {
                metrics.setStreaming(false)
                await producer.close(timeout: .seconds(1))
                await setup.admin.close()
                throw error
            }
        }
        await setup.admin.close()
        let left = await producer.close(timeout: .seconds(1))
        logger.info("stopped", ("delivered", "\(metrics.deliveredTotal)"), ("purged", "\(left)"))
    }

    private func makeProducer() throws -> any RecordSink {
        if options.discardRecords {
            return DiscardingSink(onDelivery: { [weak self] report in self?.delivered(report) })
        }
        var properties = configuration.kafka
        properties["client.id"] = properties["client.id"] ?? "tailgate-\(configuration.name)"
        let logger = self.logger
        let producer = try KafkaProducer(configuration: ProducerConfiguration(properties: properties),
                                 log: { event in
                                     // Tailgate sets enable.gapless.guarantee on purpose; librdkafka calls it experimental.
                                     if event.facility == "CONFWARN", event.message.contains("enable.gapless.guarantee") { return }
                                     // syslog levels: 0-3 are errors, 4 warnings, 5 notices; info and debug are dropped.
                                     guard event.level.rawValue <= KafkaLogEvent.Level.notice.rawValue else { return }
                                     logger.log(event.level.rawValue <= KafkaLogEvent.Level.error.rawValue ? .error : .warning, "kafka_log",
                                                [("facility", event.facility), ("message", event.message)])
                                 },
                                 onDelivery: { [weak self] report in self?.delivered(report) })
        producer.prepare(topics: configuration.knownTopics)
        return producer
    }

    /// Called on the producer's poll thread for each record.
    private func delivered(_ report: DeliveryReport) {
        pipeline.withLock { $0 }?.delivered(report)
    }

    // MARK: One replication session

    /// One replication session; sets `streamed` once the stream is open.
    private func stream(setup: Setup, producer: any RecordSink, streamed: inout Bool) async throws {
        let replication = try await ReplicationConnection.connect(configuration.conninfo)
        defer { Task { await replication.close() } }
        let startPosition = try await checkSlot(replication, setup: setup)
        let stream = try await replication.startReplication(
            slot: configuration.slot, start: startPosition,
            options: PGOutputOptions(protocolVersion: 1, publications: [configuration.publication], messages: true),
            statusInterval: options.statusInterval)
        let current = Pipeline(stream: stream, startingAt: startPosition, session: sessions.add(1, ordering: .relaxed).newValue,
                               metrics: metrics, logger: logger, deadLetterTopic: configuration.deadLetterTopic,
                               onAcknowledged: options.onAcknowledged)
        pipeline.withLock { $0 = current }
        defer { pipeline.withLock { $0 = nil } }
        try await watchSlot(setup)
        metrics.setStreaming(true)
        streamed = true
        logger.info("streaming", ("slot", configuration.slot), ("from", startPosition.description))

        var decoder = PGOutputDecoder()
        var transaction: OutboxRouter.TransactionContext?
        var commitTime = PostgresTimestamp(rawValue: 0)
        var lastActivity = ContinuousClock.now
        var lastSlotCheck = ContinuousClock.now
        do {
            while !isStopping {
                if let failure = current.failure { throw failure }
                if ContinuousClock.now - lastSlotCheck >= .seconds(10) {
                    try await watchSlot(setup)
                    lastSlotCheck = .now
                }
                let frames = try await stream.next(maxFrames: 1024, timeout: .milliseconds(100))
                if frames.isEmpty {
                    if transaction == nil, configuration.heartbeatIntervalSeconds > 0,
                       ContinuousClock.now - lastActivity >= .seconds(configuration.heartbeatIntervalSeconds) {
                        await emitHeartbeat(setup)
                        lastActivity = .now
                    }
                    continue
                }
                for frame in frames {
                    switch frame {
                    case .primaryKeepalive(let keepalive):
                        current.keepalive(keepalive.serverWALEnd)
                    case .xLogData(let data):
                        metrics.serverWALEnd(data.serverWALEnd.rawValue)
                        let message: PGOutputMessage
                        do {
                            message = try decoder.decode(data.data)
                        } catch {
                            throw PostgresError(code: .connectionLost, message: "undecodable pgoutput message at \(data.walStart): \(error)")
                        }
                        switch message {
                        case .begin(let begin):
                            current.begin()
                            transaction = OutboxRouter.TransactionContext(commitLSN: begin.finalLSN, xid: begin.xid)
                            commitTime = begin.commitTime
                        case .relation(let relation) where setup.isOutbox(relation):
                            try router.validate(relation)
                        case .insert(let insert):
                            guard let relation = decoder.relations[insert.relationID], setup.isOutbox(relation),
                                  let context = transaction else { continue }
                            let row = try decoder.row(relationID: insert.relationID, tuple: insert.newTuple, messageName: "Insert")
                            try await publish(router.route(row, in: context), context: context, commitTime: commitTime,
                                              pipeline: current, producer: producer)
                            lastActivity = .now
                        case .commit(let commit):
                            current.commit(endLSN: commit.endLSN)
                            transaction = nil
                        default:
                            break
                        }
                    }
                }
            }
        } catch {
            metrics.setStreaming(false)
            // Give Kafka the records already sent, so what it acknowledged is confirmed before the next session.
            if current.failure == nil {
                _ = await producer.flush(timeout: options.shutdownTimeout)
            }
            // Even after a failure: the stream may have confirmed up to here, and checkSlot compares the slot with it.
            remember(current.confirmable)
            await stream.close()
            throw error
        }
        // Graceful stop: wait for in-flight records, confirm what was acknowledged.
        metrics.setStreaming(false)
        let left = await producer.flush(timeout: options.shutdownTimeout)
        if left > 0 {
            producer.purge()
            _ = await producer.flush(timeout: .seconds(1))
        }
        // Closing sends a last status update with what was acknowledged (purged records never are).
        await stream.close()
        if left > 0 {
            throw ConnectorError(.shutdownDeadline, "\(left) record(s) were not acknowledged within the shutdown timeout and were purged; nothing past the last acknowledged record was confirmed, so they will be sent again at the next start")
        }
        if let failure = current.failure { throw failure }
        remember(current.confirmable)
        logger.info("confirmed", ("lsn", current.confirmable.description))
    }

    private func remember(_ position: LSN) {
        acknowledgedPosition.withLock { $0 = max($0, position) }
    }

    private func publish(_ routing: OutboxRouter.Routing, context: OutboxRouter.TransactionContext, commitTime: PostgresTimestamp,
                         pipeline: Pipeline, producer: any RecordSink) async throws {
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
        while pipeline.inFlightRecords >= configuration.maxInFlightRecords {
            if let failure = pipeline.failure { throw failure }
            try await Task.sleep(for: .milliseconds(1))
        }
        let token = pipeline.recordProduced(commitTime: commitTime)
        do {
            do {
                try producer.trySend(record, token: token) // the common case: no suspension per record
            } catch where error.kind == .queueFull {
                try await producer.send(record, token: token)
            }
        } catch {
            pipeline.fail(error)
            throw error.isFatal ? error : ConnectorError(.deliveryFailed, "Kafka refused the record for event_id=\(record.headers.first?.stringValue ?? "?"): \(error)")
        }
    }

    private func emitHeartbeat(_ setup: Setup) async {
        do {
            try await setup.admin.query("SELECT pg_logical_emit_message(false, 'tailgate.heartbeat', now()::text)")
            metrics.heartbeat()
        } catch {
            logger.warning("heartbeat_failed", ("error", error.description))
        }
    }
}
