import Dispatch
import Synchronization

/// A Kafka consumer whose rebalance handler chooses where each assigned partition starts.
///
/// Everything happens on the thread that calls ``poll(maxRecords:timeout:)``: records, errors, and the rebalance
/// handler, which therefore only runs between the caller's batches. Call the consumer from one thread (or
/// through ``pollOnQueue(maxRecords:timeout:)``, which uses the consumer's own queue).
///
/// Defaults: `enable.auto.commit=false`, `enable.auto.offset.store=false`, `auto.offset.reset=earliest`.
///
/// `@unchecked Sendable`: librdkafka's consumer calls are thread-safe; the caller serialises polling as documented.
public final class KafkaConsumer: @unchecked Sendable {
    /// Defaults a user may override.
    public static let defaultProperties: [String: String] = [
        "enable.auto.commit": "false",
        "enable.auto.offset.store": "false",
        "auto.offset.reset": "earliest",
        "enable.partition.eof": "false",
        "socket.nagle.disable": "true", // TCP_NODELAY, as the Java client always sets
        // Broker states for ``unreachableFor`` (librdkafka reports them only in its statistics).
        "statistics.interval.ms": "1000",
    ]

    let client: RDKafkaClient
    private let queue = DispatchQueue(label: "tailgate.kafka.consumer")
    let closed = Atomic<Bool>(false)

    /// Creates a consumer.
    ///
    /// - Parameters:
    ///   - properties: librdkafka properties (`bootstrap.servers`, `group.id`, TLS, …), over ``defaultProperties``.
    ///   - log: Where librdkafka's log lines go.
    ///   - rebalance: Called on the polling thread. For ``RebalanceEvent/assigned(_:)`` return where each
    ///     partition starts (missing ones start at ``StartOffset/committed``); the assignment is made with those
    ///     offsets, incrementally under `partition.assignment.strategy=cooperative-sticky`.
    /// - Throws: ``KafkaError`` of kind `configuration` naming a bad property.
    public init(properties: [String: String], log: @escaping KafkaLogHandler = defaultKafkaLogHandler,
                rebalance: ((RebalanceEvent) -> [TopicPartition: StartOffset])? = nil) throws(KafkaError) {
        let callbacks = RDKafkaClient.Callbacks(clientName: properties["client.id"] ?? "tailgate-consumer")
        callbacks.log = log
        callbacks.onRebalance = rebalance
        client = try RDKafkaClient(type: .consumer, properties: Self.defaultProperties.merging(properties) { $1 }, callbacks: callbacks)
        client.redirectMainQueueToConsumer()
    }

    deinit {
        client.destroy()
    }

    /// Joins the group for `topics`; partitions arrive through the rebalance handler while polling.
    ///
    /// - Throws: ``KafkaError``.
    public func subscribe(_ topics: [String]) throws(KafkaError) {
        try client.subscribe(topics)
    }

    /// Assigns partitions by hand (no group management), each starting where given.
    ///
    /// - Throws: ``KafkaError``.
    public func assign(_ starts: [TopicPartition: StartOffset]) throws(KafkaError) {
        try client.assign(starts)
    }

    /// The partitions currently assigned.
    ///
    /// - Throws: ``KafkaError``.
    public func assignment() throws(KafkaError) -> [TopicPartition] {
        try client.assignment()
    }

    /// Waits up to `timeout` for records and returns up to `maxRecords` of them; blocks the calling thread.
    ///
    /// Rebalance handlers run inside this call.
    ///
    /// - Throws: ``KafkaError`` of kind `fatal` when the consumer cannot go on; other consumer errors are logged.
    public func poll(maxRecords: Int, timeout: Duration) throws(KafkaError) -> [ConsumerRecord] {
        guard !closed.load(ordering: .acquiring) else {
            throw KafkaError(kind: .closed, codeName: "CLOSED", message: "the consumer was closed")
        }
        var records: [ConsumerRecord] = []
        var wait = KafkaProducer.milliseconds(timeout)
        while records.count < maxRecords {
            guard let result = client.consumerPoll(milliseconds: wait) else { break }
            wait = 0
            switch result {
            case .success(let record): records.append(record)
            case .failure(let error):
                if error.isFatal { throw error }
                client.callbacks.log(KafkaLogEvent(level: .warning, facility: "CONSUME", client: client.name, message: error.description))
            }
        }
        if !records.isEmpty { client.callbacks.brokers(reachable: true) }
        return records
    }

    /// How long no broker has been reachable (`_ALL_BROKERS_DOWN`, or no broker up in the statistics); `nil` while
    /// one is.
    public var unreachableFor: Duration? {
        client.callbacks.unreachableSince.withLock { $0.map { ContinuousClock.now - $0 } }
    }

    /// ``poll(maxRecords:timeout:)`` on the consumer's own serial queue, for async callers.
    ///
    /// - Throws: ``KafkaError``.
    package func pollOnQueue(maxRecords: Int, timeout: Duration) async throws(KafkaError) -> [ConsumerRecord] {
        try await onQueue { () throws(KafkaError) in try self.poll(maxRecords: maxRecords, timeout: timeout) }
    }

    /// Runs blocking consumer work on the consumer's serial queue (its own thread), never on the concurrency pool.
    private func onQueue<T: Sendable>(_ work: @escaping @Sendable () throws(KafkaError) -> T) async throws(KafkaError) -> T {
        let result: Result<T, KafkaError> = await withCheckedContinuation { continuation in
            queue.async {
                do throws(KafkaError) {
                    continuation.resume(returning: .success(try work()))
                } catch {
                    continuation.resume(returning: .failure(error))
                }
            }
        }
        return try result.get()
    }

    /// Commits offsets to Kafka and waits for the answer: for each partition, the offset of the next record to read.
    ///
    /// Blocks the calling thread; from async code use ``commitOnQueue(_:)``.
    ///
    /// - Throws: ``KafkaError``.
    public func commit(_ nextOffsets: [TopicPartition: Int64]) throws(KafkaError) {
        try client.commit(nextOffsets)
    }

    /// Sends a commit without waiting for the answer (for mirrors of offsets kept elsewhere, such as lag dashboards).
    ///
    /// - Throws: ``KafkaError`` when the request cannot be queued.
    public func commitWithoutWaiting(_ nextOffsets: [TopicPartition: Int64]) throws(KafkaError) {
        try client.commit(nextOffsets, waiting: false)
    }

    /// How many records of `partition` lie beyond this consumer's position, from cached watermarks (no network
    /// round trip); `nil` until both are known.
    public func lag(_ partition: TopicPartition) -> Int64? {
        guard let (high, position) = client.watermarkAndPosition(partition), position >= 0 else { return nil }
        return max(0, high - position)
    }

    /// ``commit(_:)`` on the consumer's own queue, for async callers.
    ///
    /// - Throws: ``KafkaError``.
    package func commitOnQueue(_ nextOffsets: [TopicPartition: Int64]) async throws(KafkaError) {
        try await onQueue { () throws(KafkaError) in try self.commit(nextOffsets) }
    }

    /// The offsets committed to Kafka for `partitions` (partitions without one are absent).
    ///
    /// - Throws: ``KafkaError``.
    public func committedOffsets(_ partitions: [TopicPartition], timeout: Duration = .seconds(10)) async throws(KafkaError) -> [TopicPartition: Int64] {
        let client = self.client
        return try await onQueue { () throws(KafkaError) in
            try client.committed(partitions, milliseconds: KafkaProducer.milliseconds(timeout))
        }
    }

    /// Moves assigned partitions to new positions: the next poll returns their records from there, and none fetched
    /// from the old position. Blocks the calling thread up to `timeout` while the fetcher takes the new positions.
    ///
    /// - Throws: ``KafkaError``, naming the partition when one could not be sought (not assigned, say).
    public func seek(_ starts: [TopicPartition: StartOffset], timeout: Duration = .seconds(10)) throws(KafkaError) {
        guard !starts.isEmpty else { return }
        try client.seek(starts, milliseconds: KafkaProducer.milliseconds(timeout))
    }

    /// Stops fetching from `partitions` while staying in the group.
    ///
    /// - Throws: ``KafkaError``.
    public func pause(_ partitions: [TopicPartition]) throws(KafkaError) {
        try client.setPaused(partitions, paused: true)
    }

    /// Resumes fetching from `partitions`.
    ///
    /// - Throws: ``KafkaError``.
    public func resume(_ partitions: [TopicPartition]) throws(KafkaError) {
        try client.setPaused(partitions, paused: false)
    }

    /// Leaves the group cleanly (the rebalance handler sees the final revocation) and frees the handle.
    ///
    /// Blocks the calling thread while it leaves the group; from async code use ``close()``.
    ///
    /// - Throws: ``KafkaError`` when leaving the group failed; the handle is freed regardless.
    package func closeBlocking() throws(KafkaError) {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let error = client.consumerClose()
        client.destroy()
        if let error { throw error }
    }

    /// ``closeBlocking()`` on the consumer's own queue.
    ///
    /// - Throws: ``KafkaError`` when leaving the group failed; the handle is freed regardless.
    public func close() async throws(KafkaError) {
        try await onQueue { () throws(KafkaError) in try self.closeBlocking() }
    }
}
