import Foundation
import LibPQ
import Observability
import PGOutput
import RDKafka
import ServiceRuntime
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
/// confirmed to PostgreSQL is decided by ``AckTracker`` alone. Retriable failures (PostgreSQL unreachable, at start
/// or later; connection loss; a busy slot; a broker outage) are waited out; a delivery error stops the pipeline
/// without confirming past it. Which failure leads where is ``ConnectorStateMachine``'s decision; one
/// ``ReplicationSession`` at a time does the streaming.
public final class Connector: Sendable {
    /// Options that are not part of the connector file.
    public struct Options: Sendable {
        /// The fallback for the slot record when the role may not create or write `tailgate_connector_slot`, and
        /// where an older record is migrated from (see the README's "The slot record").
        public var stateDirectory: String
        /// How long graceful shutdown waits for Kafka to acknowledge in-flight records.
        public var shutdownTimeout: Duration
        /// How often the replication stream reports its position without being asked.
        public var statusInterval: Duration
        /// The longest wait between reconnection attempts (4 s by default: the connector resumes within about five
        /// seconds of an outage's end; waits are jittered between half and all of each step).
        public var maxBackoff: Duration
        /// How long the replication stream may hear nothing from the server before the connection counts as lost
        /// (a reply is asked for after half of it), like PostgreSQL's `wal_receiver_timeout`. Keep it below the
        /// server's `wal_sender_timeout` (60 s by default).
        public var receiveTimeout: Duration
        /// How long Kafka may be unreachable, or leave records unacknowledged, before `/healthz` answers 503.
        public var kafkaTimeout: Duration
        /// After an error retrying cannot fix, how long `/status` keeps answering `FAILED` (and `/healthz` 503)
        /// before ``Connector/run()`` throws; a stop request ends the wait. Zero: throw at once.
        public var failedStatusHold: Duration = .zero
        /// Under load, how long the reader waits for more frames after a small burst before handling them
        /// (see ``LibPQ/ReplicationStream/receive(maxFrames:timeout:coalescing:handle:batchDone:)``); zero reads each
        /// frame as it arrives. Benchmarks compare the two.
        @_spi(Benchmarks) public var readCoalescing: Duration = .microseconds(250)
        /// Benchmarks only: records are acknowledged at once and sent nowhere (decode, route and confirm only).
        @_spi(Benchmarks) public var discardRecords = false
        /// Benchmarks only: called on the delivery thread with each acknowledged record's commit-to-acknowledgement
        /// time in seconds (commit time from the transaction's Begin message).
        @_spi(Benchmarks) public var onAcknowledged: (@Sendable (Double) -> Void)?

        /// Creates options.
        public init(stateDirectory: String = ".tailgate-state", shutdownTimeout: Duration = .seconds(30),
                    statusInterval: Duration = .seconds(10), maxBackoff: Duration = .seconds(4),
                    receiveTimeout: Duration = .seconds(30), kafkaTimeout: Duration = .seconds(30)) {
            self.stateDirectory = stateDirectory
            self.shutdownTimeout = shutdownTimeout
            self.statusInterval = statusInterval
            self.maxBackoff = maxBackoff
            self.receiveTimeout = receiveTimeout
            self.kafkaTimeout = kafkaTimeout
        }
    }

    /// The configuration.
    public let configuration: ConnectorConfiguration
    /// Counters and gauges for `/metrics`.
    public let metrics: ConnectorMetrics
    let options: Options
    let logger: EventLogger
    let router: OutboxRouter
    let stop = StopSignal()
    /// Where the producer's delivery reports go: the pipeline of the session under way.
    let deliveries = DeliveryRouter()
    private let boundMetricsPort = Mutex<Int?>(nil)
    /// The number of the last session started; each session's delivery tokens are numbered after it.
    let sessionNumber = Atomic<UInt64>(0)
    /// Where the run loop is, for ``status``.
    let lifecycle = Mutex(Lifecycle())

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
    /// confirms what Kafka acknowledged and returns from ``run()``. A wait for Kafka or for a reconnection ends at
    /// once. Callable from any thread, any number of times.
    public func requestStop() {
        record(.stopping)
        stop.request()
    }

    var isStopping: Bool { stop.isRequested }

    /// Runs until ``requestStop()`` or a failure that retrying cannot fix.
    ///
    /// PostgreSQL being unreachable, at start or later, is waited out with backoff, as is a busy slot or a Kafka
    /// outage; `/healthz` answers 503 meanwhile.
    ///
    /// - Throws: ``ConnectorError`` (setup, lost slot, schema change, undeliverable row, permanent delivery error,
    ///   invalid stream, shutdown deadline), or ``ConfigurationError``/``KafkaError`` for a bad Kafka configuration.
    public func run() async throws {
        logger.info("starting", ("postgres", configuration.maskedConninfo), ("slot", configuration.slot),
                    ("publication", configuration.publication), ("table", configuration.table.description))
        let metricsServer = try configuration.metricsListen.map { listen in
            let metrics = self.metrics, kafkaTimeout = options.kafkaTimeout
            let server = try MetricsServer(listen: listen, metrics: { metrics.render() },
                                           healthy: { metrics.isHealthy(kafkaTimeout: kafkaTimeout) },
                                           status: { [weak self] in self?.status.json ?? "{}\n" })
            logger.info("metrics_listening", ("address", listen), ("port", "\(server.port)"))
            boundMetricsPort.withLock { $0 = server.port }
            return server
        }
        defer {
            metricsServer?.stop()
            boundMetricsPort.withLock { $0 = nil }
        }
        let stallWatcher = KafkaStallWatcher(timeout: options.kafkaTimeout, metrics: metrics, logger: logger).start()
        defer { stallWatcher.cancel() }
        var machine = ConnectorStateMachine(maxBackoff: options.maxBackoff)
        var setup: Setup?
        var producer: (any RecordSink)?
        var action = machine.start()
        while true {
            // Between steps: after a stop request nothing new starts.
            if action.startsStep, stop.isRequested { action = machine.stopRequested() }
            switch action {
            case .prepare:
                record(.running, phase: "preparing")
                do {
                    setup = try await prepare()
                    action = machine.prepared()
                } catch {
                    action = machine.failed(error)
                }
            case .startSession:
                record(.running, phase: "connecting")
                do {
                    guard let setup else { preconditionFailure("a session before the database was prepared") }
                    let sink = try producer ?? makeProducer()
                    producer = sink
                    action = try await runSession(setup: setup, producer: sink, machine: &machine)
                } catch {
                    metrics.setStreaming(false)
                    action = machine.failed(error)
                }
            case .wait(let delay, let cause, let recreateProducer):
                log(cause, retryIn: delay, preparing: setup == nil)
                recordWait(cause, delay: delay)
                if setup != nil { metrics.reconnected() }
                if recreateProducer {
                    await producer?.close(timeout: .zero)
                    producer = nil
                }
                await stop.sleep(for: delay)
                action = machine.waited()
            case .finish:
                await setup?.close()
                let left = await producer?.close(timeout: .seconds(1)) ?? 0
                logger.info("stopped", ("delivered", "\(metrics.deliveredTotal)"), ("purged", "\(left)"))
                return
            case .fail(let error):
                recordFailure(error)
                await producer?.close(timeout: .seconds(1))
                await setup?.close()
                if options.failedStatusHold > .zero {
                    logger.info("failed_status_held", ("seconds", "\(options.failedStatusHold.seconds)"), ("detail", "/status answers FAILED until then or a stop request"))
                    await stop.sleep(for: options.failedStatusHold)
                }
                throw error
            }
        }
    }

    private func log(_ cause: ConnectorStateMachine.Failure, retryIn delay: Duration, preparing: Bool) {
        switch cause {
        case .slotInUse:
            logger.warning("slot_in_use", ("slot", configuration.slot),
                           ("detail", "another process streams from the slot; waiting to take over"))
        case .postgresUnavailable(let error):
            logger.warning("postgres_unavailable", ("error", error.description), ("retry_in", "\(delay)"),
                           ("during", preparing ? "start" : "streaming"))
        case .slotRecordUnavailable(let error):
            logger.warning("slot_record_unavailable", ("error", error.description), ("retry_in", "\(delay)"))
        case .kafkaFatal(let error):
            logger.error("kafka_fatal", ("error", error.description), ("action", "recreating the producer; resuming from the slot"))
        case .permanent(let error):
            logger.error("retrying", ("error", "\(error)"), ("retry_in", "\(delay)"))
        }
    }

    private func makeProducer() throws -> any RecordSink {
        if options.discardRecords {
            return DiscardingSink(onDeliveries: { [deliveries] reports in deliveries.delivered(reports) })
        }
        var properties = configuration.kafka
        properties["client.id"] = properties["client.id"] ?? "tailgate-\(configuration.name)"
        // Broker states for /healthz and tailgate_kafka_reachable (librdkafka reports them only in statistics).
        properties["statistics.interval.ms"] = properties["statistics.interval.ms"] ?? "1000"
        // After an outage, try a broker again at least every second (librdkafka's default backs off to 10 s, which
        // delayed recovery from a healed network by up to that long).
        properties["reconnect.backoff.max.ms"] = properties["reconnect.backoff.max.ms"] ?? "1000"
        let logger = self.logger, metrics = self.metrics
        let producer = try KafkaProducer(configuration: ProducerConfiguration(properties: properties),
                                 log: { event in
                                     // Tailgate sets enable.gapless.guarantee on purpose; librdkafka calls it experimental.
                                     if event.facility == "CONFWARN", event.message.contains("enable.gapless.guarantee") { return }
                                     logger.log(event)
                                 },
                                 onReachabilityChange: { reachable in
                                     metrics.kafkaReachable(reachable)
                                     if reachable {
                                         logger.info("kafka_reachable", ("detail", "a broker is reachable again; waiting records are being sent"))
                                     } else {
                                         logger.warning("kafka_unreachable", ("detail", "no Kafka broker can be reached; records wait in the producer and nothing past them is confirmed"))
                                     }
                                 },
                                 onDeliveries: { [deliveries] reports in deliveries.delivered(reports) })
        producer.prepare(topics: configuration.knownTopics)
        return producer
    }
}
