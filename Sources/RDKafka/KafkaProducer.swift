import Dispatch
import Foundation
import Synchronization

/// An idempotent, ordered Kafka producer whose delivery reports arrive on its own poll thread.
///
/// ```swift
/// let producer = try KafkaProducer(configuration: .init(properties: ["bootstrap.servers": servers])) { report in
///     // called on the poll thread, once per record (or take them in batches: `onDeliveries:`)
/// }
/// try await producer.send(KafkaRecord(topic: "orders", key: key, value: value), token: 42)
/// ```
///
/// Records wait in librdkafka until acknowledged; retriable errors retry forever. A delivery report with an
/// error means the record will not be delivered: ``KafkaError/isFatal`` (the producer is unusable) or a
/// permanent error for that record.
///
/// Every method may be called from any thread, except that ``close(timeout:)`` must not race with the others:
/// after it returns they do nothing (or throw `closed`).
public final class KafkaProducer: Sendable {
    private let client: RDKafkaClient
    private let pollLoop: PollLoop
    private let closed = Atomic<Bool>(false)
    /// Topics whose metadata was asked for (see ``trySend(_:token:)``).
    private let knownTopics = Mutex<Set<String>>([])
    /// Metadata requests in flight; `close` waits for them before freeing the handle they use.
    private let lookups = DispatchGroup()
    private let lookupQueue = DispatchQueue(label: "tailgate.kafka.metadata")
    /// Tasks in ``send(_:token:)`` waiting for room in a full queue; the poll thread wakes them after serving
    /// delivery reports. `generation` counts those wake-ups, so a task that registers just after one does not wait
    /// for the next.
    private let roomWaiters = RoomWaiters()

    /// Creates a producer and starts its poll thread; `onDelivery` is told each record's fate.
    ///
    /// - Parameters:
    ///   - configuration: librdkafka properties; see ``ProducerConfiguration``.
    ///   - log: Where librdkafka's log lines go.
    ///   - onDelivery: Called on the poll thread with each record's fate. Keep it short.
    ///   - onReachabilityChange: Called when no broker can be reached any more (`false`: `_ALL_BROKERS_DOWN`, or
    ///     no broker `UP` in the statistics, with `statistics.interval.ms` set) and when one can again (`true`).
    /// - Throws: ``KafkaError`` of kind `configuration` naming a bad property, before anything connects.
    public convenience init(configuration: ProducerConfiguration, log: @escaping KafkaLogHandler = defaultKafkaLogHandler,
                            onReachabilityChange: (@Sendable (_ reachable: Bool) -> Void)? = nil,
                            onDelivery: @escaping @Sendable (DeliveryReport) -> Void) throws(KafkaError) {
        try self.init(configuration: configuration, log: log, onReachabilityChange: onReachabilityChange,
                      onDeliveries: { reports in for report in reports { onDelivery(report) } })
    }

    /// Creates a producer and starts its poll thread; `onDeliveries` is told the records' fates in batches.
    ///
    /// Each call carries the reports of one pass over librdkafka's queue (on a busy producer, hundreds), in the order
    /// librdkafka served them; calls never overlap. A batch costs its receiver one wake-up and one lock instead of
    /// one per record.
    ///
    /// - Parameters:
    ///   - configuration: librdkafka properties; see ``ProducerConfiguration``.
    ///   - log: Where librdkafka's log lines go.
    ///   - onReachabilityChange: Called when no broker can be reached any more and when one can again (see
    ///     ``init(configuration:log:onReachabilityChange:onDelivery:)``).
    ///   - onDeliveries: Called on the poll thread (or the thread of a ``flush(timeout:)``) with a batch of reports.
    ///     Keep it short.
    /// - Throws: ``KafkaError`` of kind `configuration` naming a bad property, before anything connects.
    ///
    /// (Disfavoured so that a trailing closure such as `{ _ in }` picks the per-record initialiser.)
    @_disfavoredOverload
    public init(configuration: ProducerConfiguration, log: @escaping KafkaLogHandler = defaultKafkaLogHandler,
                onReachabilityChange: (@Sendable (_ reachable: Bool) -> Void)? = nil,
                onDeliveries: @escaping @Sendable ([DeliveryReport]) -> Void) throws(KafkaError) {
        let callbacks = RDKafkaClient.Callbacks(clientName: configuration.properties["client.id"] ?? "tailgate-producer")
        callbacks.onDeliveries = onDeliveries
        callbacks.onReachabilityChange = onReachabilityChange
        callbacks.log = log
        client = try RDKafkaClient(type: .producer, properties: try configuration.resolved(), callbacks: callbacks)
        let client = self.client, roomWaiters = self.roomWaiters
        pollLoop = PollLoop(name: "tailgate.kafka.producer.poll") {
            if client.poll(milliseconds: 100) > 0 { Self.wake(roomWaiters) }
        }
    }

    private static func wake(_ roomWaiters: RoomWaiters) {
        let woken = roomWaiters.state.withLock { state -> [RoomWaiters.Waiter] in
            state.generation &+= 1
            defer { state.waiting = [:] }
            return Array(state.waiting.values)
        }
        for waiter in woken {
            switch waiter {
            case .task(let continuation): continuation.resume()
            case .thread(let semaphore): semaphore.signal()
            }
        }
    }

    deinit {
        lookups.wait()
        stopPolling()
        client.destroy()
    }

    /// Enqueues a record without waiting.
    ///
    /// - Parameters:
    ///   - record: The record; its bytes are copied.
    ///   - token: Returned in the record's ``DeliveryReport``.
    /// - Throws: ``KafkaError`` of kind `queueFull` when librdkafka's queue is full (back-pressure: wait for
    ///   delivery reports and retry), or another kind when the record is refused (unknown topic name, fatal state).
    public func trySend(_ record: KafkaRecord, token: UInt64) throws(KafkaError) {
        guard !closed.load(ordering: .acquiring) else {
            throw KafkaError(kind: .closed, codeName: "CLOSED", message: "the producer was closed")
        }
        if !knownTopics.withLock({ $0.contains(record.topic) }) { lookUp([record.topic]) }
        try client.produce(record, token: token)
    }

    /// Asks the cluster for these topics' metadata now, in the background.
    ///
    /// librdkafka 2.0 otherwise looks up a topic first used after connecting on its next one-second scan, and
    /// that topic's first records wait until then. ``trySend(_:token:)`` does this for every new topic; call it
    /// at start-up for the topics you know will be used, so even the first record does not wait.
    public func prepare(topics: [String]) {
        guard !closed.load(ordering: .acquiring) else { return }
        lookUp(topics)
    }

    private func lookUp(_ topics: [String]) {
        let new = knownTopics.withLock { known in topics.filter { known.insert($0).inserted } }
        guard !new.isEmpty else { return }
        let client = self.client
        lookupQueue.async(group: lookups) {
            for topic in new { client.requestMetadata(topic: topic, milliseconds: 5_000) }
        }
    }

    /// Enqueues a record, waiting while librdkafka's queue is full.
    ///
    /// The wait is an event: it ends when the poll thread has served delivery reports (room was made), when the
    /// producer is closed, or when the task is cancelled.
    ///
    /// - Throws: ``KafkaError`` when the record is refused (not for a full queue); of kind `cancelled` when the task
    ///   is cancelled while waiting, `closed` when the producer is closed.
    public func send(_ record: KafkaRecord, token: UInt64) async throws(KafkaError) {
        while let generation = try sendOrWakeUpGeneration(record, token: token) {
            if Task.isCancelled {
                throw KafkaError(kind: .cancelled, codeName: "CANCELLED", message: "the task was cancelled while the producer's queue was full")
            }
            await waitForRoom(after: generation)
        }
    }

    /// Enqueues `record`; returns `nil` when it was, or, when the queue is full, the poll thread's wake-up count to
    /// wait past (read before trying, so that a wake-up between the try and the wait is not missed).
    private func sendOrWakeUpGeneration(_ record: KafkaRecord, token: UInt64) throws(KafkaError) -> UInt64? {
        let generation = roomWaiters.state.withLock { $0.generation }
        do {
            try trySend(record, token: token)
            return nil
        } catch where error.kind == .queueFull {
            return generation
        }
    }

    /// Enqueues a record, blocking the calling thread while librdkafka's queue is full (for code that owns a
    /// thread, e.g. a loop on a connection's queue; never from a task).
    ///
    /// The wait ends when the poll thread has served delivery reports, or the producer is closed.
    ///
    /// - Throws: ``KafkaError`` when the record is refused (not for a full queue), `closed` after ``close(timeout:)``.
    package func sendBlocking(_ record: KafkaRecord, token: UInt64) throws(KafkaError) {
        while let generation = try sendOrWakeUpGeneration(record, token: token) {
            let semaphore = DispatchSemaphore(value: 0)
            let registered = roomWaiters.state.withLock { state -> Bool in
                guard state.generation == generation, !closed.load(ordering: .acquiring) else { return false }
                state.nextID += 1
                state.waiting[state.nextID] = .thread(semaphore)
                return true
            }
            if registered { semaphore.wait() }
        }
    }

    private func waitForRoom(after generation: UInt64) async {
        let id = roomWaiters.state.withLock { state -> UInt64 in
            state.nextID += 1
            return state.nextID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let wakeNow = roomWaiters.state.withLock { state -> Bool in
                    if state.generation != generation || Task.isCancelled || closed.load(ordering: .acquiring) { return true }
                    state.waiting[id] = .task(continuation)
                    return false
                }
                if wakeNow { continuation.resume() }
            }
        } onCancel: {
            if case .task(let continuation)? = roomWaiters.state.withLock({ $0.waiting.removeValue(forKey: id) }) {
                continuation.resume()
            }
        }
    }

    /// Records sent and not yet reported.
    public var inFlightCount: Int { closed.load(ordering: .acquiring) ? 0 : client.outQueueLength }

    /// How long no broker has been reachable; `nil` while one is.
    public var unreachableFor: Duration? {
        client.callbacks.unreachableSince.withLock { $0.map { ContinuousClock.now - $0 } }
    }

    /// The fatal error the producer raised, if any; after one, discard the producer.
    public var fatalError: KafkaError? { client.fatalError() }

    /// The last statistics JSON (with `statistics.interval.ms` set).
    public var latestStatistics: String? { client.callbacks.latestStatistics.withLock { $0 } }

    /// Waits until every record has a delivery report, or `timeout` passes.
    ///
    /// - Returns: How many records are still not reported.
    public func flush(timeout: Duration) async -> Int {
        guard !closed.load(ordering: .acquiring) else { return 0 }
        return await flushOpen(timeout: timeout)
    }

    private func flushOpen(timeout: Duration) async -> Int {
        let client = self.client
        let milliseconds = Self.milliseconds(timeout)
        return await withCheckedContinuation { continuation in
            // rd_kafka_flush blocks for up to `timeout`: give it a thread of its own (a serial queue is not limited by
            // the global pool's width, which blocking work would starve).
            DispatchQueue(label: "tailgate.kafka.flush").async { continuation.resume(returning: client.flush(milliseconds: milliseconds)) }
        }
    }

    /// Drops every queued and in-flight record; each gets a delivery report of kind `purged`.
    ///
    /// Records already in flight may still have been written by the broker.
    public func purge() {
        guard !closed.load(ordering: .acquiring) else { return }
        client.purge()
    }

    /// Flushes for up to `timeout`, purges what is left, stops the poll thread and frees librdkafka's handle.
    ///
    /// - Returns: How many records were purged without an acknowledgement (0 after a clean close).
    @discardableResult
    public func close(timeout: Duration) async -> Int {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return 0 }
        Self.wake(roomWaiters)
        var left = await flushOpen(timeout: timeout)
        if left > 0 {
            client.purge()
            left = await flushOpen(timeout: .seconds(1))
        }
        // Tearing librdkafka down joins its threads: do it off the concurrency pool.
        let client = self.client, pollLoop = self.pollLoop
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            DispatchQueue(label: "tailgate.kafka.close").async { [lookups] in
                lookups.wait()
                pollLoop.stop()
                client.poll(milliseconds: 0) // serve the purge reports
                client.destroy()
                continuation.resume()
            }
        }
        return left
    }

    private func stopPolling() {
        pollLoop.stop()
    }

    static func milliseconds(_ duration: Duration) -> Int32 {
        Int32(clamping: duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000)
    }

    /// Handles this process has created and not yet destroyed (producers, consumers, mock clusters).
    public static var liveHandleCount: Int { RDKafkaClient.liveHandles.load(ordering: .relaxed) }

    /// Waits up to `timeout` for librdkafka to finish tearing down every handle of the process
    /// (`rd_kafka_wait_destroyed`); `true` when none is left.
    public static func waitUntilAllDestroyed(timeout: Duration) -> Bool {
        RDKafkaClient.waitDestroyed(timeout: timeout)
    }
}

/// Tasks waiting for room in a producer's full queue, and a count of the poll thread's wake-ups.
private final class RoomWaiters: Sendable {
    enum Waiter: Sendable {
        case task(CheckedContinuation<Void, Never>)
        case thread(DispatchSemaphore)
    }

    let state = Mutex<(generation: UInt64, nextID: UInt64, waiting: [UInt64: Waiter])>((0, 0, [:]))
}
