import ConsumerSchema
import Dispatch
import Foundation
import LibPQ
import Observability
import RDKafka
import ServiceRuntime
import Synchronization

/// Applies each outbox event exactly once to the service's own PostgreSQL database.
///
/// ```swift
/// let consumer = try OutboxConsumer(configuration: .init(
///     groupID: "product-metrics",
///     topics: ["catalog-events", "order-events"],
///     kafka: ["bootstrap.servers": "localhost:9092"],
///     postgres: "host=localhost dbname=backoffice"))
/// try await consumer.run { event, db in   // db: the batch's transaction
///     try db.execute("UPDATE product_metrics SET like_count = like_count + 1 WHERE product_id = $1", [event.key])
/// }
/// ```
///
/// Per batch of polled records, one transaction records the event ids in the inbox (a duplicate is skipped), runs
/// the handler for each new event on that same connection, and stores each partition's next offset; only then are
/// the offsets mirrored to Kafka (for lag dashboards). Every partition assignment starts at the stored offsets.
/// Redelivery, crashes and rebalances therefore change the database exactly once. A handler that only produces
/// statements (``runStatements(_:)``) lets a batch travel in one round trip while none of its events is a duplicate
/// or parked.
///
/// Everything runs on one thread of the consumer's own: Kafka polling, rebalance callbacks (which therefore only
/// happen between batches), the transaction and the handler.
///
/// Outages are waited out, never thrown: when the database is unreachable, read-only, missing a table the handler
/// needs, out of connections or holding a lock too long, the batch rolls back and is retried with backoff (logged as
/// `batch_rolled_back`, counted in ``ConsumerMetrics/Snapshot/batchRetries``) while the consumer stays in its group;
/// such events are never dead-lettered. Records waiting without progress for longer than
/// ``ConsumerConfiguration/stallThreshold`` are logged (`stalled`) and shown in ``ConsumerMetrics``.
public final class OutboxConsumer: Sendable {
    /// Applies one event inside the batch's transaction.
    ///
    /// The handler may `await` (a call to another service, an actor): it runs as a task on the consumer's own thread,
    /// so its statements on the batch's `Session` stay on the connection's thread, and the transaction waits for it.
    /// Await what it starts: an unstructured `Task` it leaves running inherits that thread as its executor and
    /// makes progress only while a handler runs.
    ///
    /// Throwing retries the event (in a savepoint) and, after ``ConsumerConfiguration/handlerAttempts`` attempts,
    /// dead-letters it. A ``PostgresError`` that describes the database rather than the event (connection lost,
    /// read-only, undefined table or column, insufficient privilege, lock or statement timeout, …) instead rolls the
    /// whole batch back and retries it until it succeeds. ``HandlerFailure`` says which explicitly.
    public typealias Handler = @Sendable (OutboxEvent, Session) async throws -> Void

    /// Produces the statements that apply one event, without reading the database (see ``runStatements(_:)``).
    ///
    /// It never reads the database, so the consumer may call it before it knows whether the event is new: for an
    /// event that turns out to be a duplicate or to be parked, or more than once for one event. The statements of such
    /// calls are discarded. It must therefore do nothing but add statements to `statements`: no call to another
    /// service, no write anywhere else, no state of its own that a discarded call would leave changed.
    ///
    /// Throwing means what it means from a ``Handler``: the event is retried (in a savepoint), then dead-lettered or
    /// parked per ``ConsumerConfiguration/poisonPolicy``; ``HandlerFailure`` says which explicitly. A statement
    /// that fails counts as the handler's failure, as if a ``Handler`` had run it.
    public typealias StatementHandler = @Sendable (OutboxEvent, inout EventStatements) throws -> Void

    /// The configuration.
    public let configuration: ConsumerConfiguration
    /// Counters for the service to expose.
    public let metrics = ConsumerMetrics()
    let stopSignal = StopSignal()
    let inbox: Inbox
    let offsets: OffsetStore
    let parked: ParkedStore
    /// Where the consumer's events go (context: `group`).
    let logger: EventLogger

    /// Validates the configuration; nothing connects until ``run(_:)``.
    ///
    /// - Parameter logger: Receives one event per thing of interest (started, partitions assigned, batch rolled
    ///   back, dead-lettered, …). The default writes logfmt lines to standard error, like the connector's; pass
    ///   `EventLogger(sink: yourSink)` to route the events into the service's own logging (see ``LogSink``).
    /// - Throws: ``ConsumerError`` naming the bad setting.
    public init(configuration: ConsumerConfiguration, logger: EventLogger = EventLogger()) throws {
        guard !configuration.topics.isEmpty else { throw ConsumerError("topics is empty; name at least one topic") }
        guard !configuration.groupID.isEmpty else { throw ConsumerError("groupID is empty; name the consumer group") }
        guard configuration.maxBatchSize > 0 else { throw ConsumerError("maxBatchSize must be at least 1") }
        guard configuration.handlerAttempts > 0 else { throw ConsumerError("handlerAttempts must be at least 1") }
        guard let inboxTable = QualifiedName(parsing: configuration.inboxTable) else {
            throw ConsumerError("inboxTable '\(configuration.inboxTable)' is not a table name; write e.g. tailgate_inbox or schema.tailgate_inbox")
        }
        guard let offsetsTable = QualifiedName(parsing: configuration.offsetsTable) else {
            throw ConsumerError("offsetsTable '\(configuration.offsetsTable)' is not a table name; write e.g. tailgate_offsets")
        }
        guard let parkedTable = QualifiedName(parsing: configuration.parkedTable) else {
            throw ConsumerError("parkedTable '\(configuration.parkedTable)' is not a table name; write e.g. tailgate_parked")
        }
        self.configuration = configuration
        self.parked = ParkedStore(table: parkedTable, group: configuration.groupID)
        self.inbox = Inbox(tables: ConsumerTables(offsets: offsetsTable, inbox: inboxTable, parked: parkedTable), group: configuration.groupID)
        self.offsets = OffsetStore(table: offsetsTable, group: configuration.groupID, defaultStart: configuration.startOffset)
        self.logger = logger.with(("group", configuration.groupID))
    }

    /// Validates the configuration, passing one logfmt line per event (without a newline) to `log`.
    ///
    /// - Parameter log: Receives each line, from the consumer's thread.
    /// - Throws: ``ConsumerError`` naming the bad setting.
    public convenience init(configuration: ConsumerConfiguration, log: @escaping @Sendable (String) -> Void) throws {
        try self.init(configuration: configuration, logger: EventLogger(write: log))
    }

    /// Asks ``run(_:)`` to finish: the batch in progress commits or rolls back, the consumer leaves the group.
    ///
    /// Wakes whatever the consumer waits for (a Kafka poll, a retry delay), so `run` returns promptly; a batch
    /// statement waiting on a lock is cancelled, the batch rolls back and is applied on the next start from the stored
    /// offsets. Safe from any thread or task, any number of times.
    public func stop() {
        stopSignal.request()
    }

    /// Consumes until ``stop()`` or until the task running it is cancelled, applying each new event with `handler`.
    ///
    /// Cancelling the task is a graceful stop, the same as ``stop()``: the batch in progress commits or rolls back, the
    /// consumer leaves its group, and `run` returns without throwing.
    ///
    /// - Throws: ``ConsumerError`` or ``KafkaError`` for failures retrying cannot fix (bad Kafka configuration, a
    ///   fatal consumer error). Database outages are waited out, not thrown.
    public func run(_ handler: @escaping Handler) async throws {
        try await runLoop { ConsumerLoop(consumer: $0, handler: handler) }
    }

    /// Consumes until ``stop()`` or until the task running it is cancelled, applying each new event with the
    /// statements `handler` produces: usually one round trip per batch instead of two or more.
    ///
    /// While no event of a batch is a duplicate or parked, the whole batch travels in one pipeline: `BEGIN`, the inbox
    /// insert, the offsets, every event's statements and `COMMIT`, one wait for the database whatever the batch's
    /// size. The handler ran for every record before anything was sent, so when that pipeline fails (an event already
    /// applied, a parked key, a statement or a handler that failed) it is rolled back and the batch is applied again
    /// the way ``run(_:)`` applies it: the inbox claim first, then the handler for the new events only, with a
    /// savepoint per event when one fails. The guarantees are those of ``run(_:)``: each event applied exactly once,
    /// poison retried, then parked or dead-lettered, database outages waited out.
    ///
    /// Use it when applying an event only writes to this database and needs nothing read from it first (an upsert,
    /// an append, a counter); use ``run(_:)`` when the handler reads, awaits something, or acts outside the database.
    ///
    /// Its name is not `run`: a trailing closure `run { event, db in … }` must keep meaning ``run(_:)`` (an overload
    /// of `run` would take such a closure as a statement handler, whose calls may be discarded).
    ///
    /// - Parameter handler: Produces each event's statements; see ``StatementHandler`` for what it may do.
    /// - Throws: What ``run(_:)`` throws.
    public func runStatements(_ handler: @escaping StatementHandler) async throws {
        try await runLoop { ConsumerLoop(consumer: $0, statements: handler) }
    }

    /// Runs the loop `make` creates on a thread of its own until it returns; cancelling the task is a stop.
    private func runLoop(_ make: @escaping @Sendable (OutboxConsumer) -> ConsumerLoop) async throws {
        let stopSignal = self.stopSignal
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let thread = Thread { [self] in
                    continuation.resume(with: Result { try make(self).run() })
                }
                thread.name = "tailgate.consumer.\(configuration.groupID)"
                thread.start()
            }
        } onCancel: {
            stopSignal.request()
        }
    }
}

/// A consumer setting that cannot work, or a failure retrying cannot fix.
public struct ConsumerError: Error, Sendable, CustomStringConvertible {
    /// What is wrong and what to do.
    public var message: String
    /// Creates an error.
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
