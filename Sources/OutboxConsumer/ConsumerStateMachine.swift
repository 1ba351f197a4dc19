import RDKafka
import ServiceRuntime

/// The consumer's batch lifecycle: after each event, what the loop does next. Pure: no I/O, no clock, no logging.
///
/// ``ConsumerLoop`` owns one, feeds it every event (records polled, a batch committed or failed, partitions revoked,
/// the database reconnected, a housekeeping tick, a backoff elapsed, a stop) and performs the ``Action`` it returns.
/// Every decision about the batch in hand lives here: when it is applied, which way (``Method``), when it waits (and
/// how long), which of its records are dropped, and when parked keys may be released. What becomes of each event
/// inside a batch (skipped, retried, parked, dead-lettered, or the batch sent back) is ``EventPolicy``'s.
///
/// A batch starts with the cheapest method the handler allows: ``Method/onePipeline`` for a statement handler,
/// ``Method/claimFirst`` otherwise.
///
/// ```
/// polling ──recordsPolled(some)──▶ applying(first) ──batchCommitted──▶ polling
/// applying(onePipeline) ──batchFailed(.onePipelineFailed)──▶ applying(claimFirst)        (at once)
/// applying(claimFirst) ──batchFailed(.handlerFailed)──▶ applying(savepoints)             (at once)
/// applying(any) ──batchFailed(.rolledBack)──▶ retrying ──backoffElapsed──▶ applying(first) …
/// applying(savepoints) ──batchFailed(.handlerFailed)──▶ retrying
/// retrying ──recordsPolled(revoked) / databaseReconnected, no record left──▶ polling
/// any ──stop──▶ stopped
/// ```
///
/// Releases of parked keys run at a batch boundary (``housekeeping(releasesDue:)`` while polling or applying, never
/// while a rolled-back batch waits), whatever the traffic.
struct ConsumerStateMachine {
    /// How a batch is applied, cheapest first.
    enum Method: Equatable, Sendable {
        /// Only for a statement handler: its statements for every record, produced before anything is sent, travel
        /// with BEGIN, the inbox insert (failing on a duplicate), the offsets, a parked-key guard and COMMIT in one
        /// pipeline: one round trip. Any failure rolls it back, to be applied again ``claimFirst``.
        case onePipeline
        /// The inbox claim (with the offsets and the parked keys) first, then the handlers of the new events straight
        /// in the transaction, then COMMIT: two round trips. A handler that fails sends the batch to ``savepoints``.
        case claimFirst
        /// Like ``claimFirst``, with a savepoint per event, where a failing event is retried, then parked or
        /// dead-lettered alone.
        case savepoints
    }

    /// Where the consumer is.
    enum State: Equatable, Sendable {
        /// No batch in hand: poll for records.
        case polling
        /// A batch is in hand and is applied next, by `method`.
        case applying(Method)
        /// The batch in hand was rolled back; it is applied again when the backoff elapses (its partitions pause).
        case retrying
        /// Stopped.
        case stopped
    }

    /// Why a batch did not commit.
    enum Failure: Equatable, Sendable {
        /// The one pipeline did not commit (an event already applied, a parked key, a statement or a handler that
        /// failed): it was rolled back, to be applied again the careful way, claim first.
        case onePipelineFailed
        /// A handler failed in the claim-first attempt: it was rolled back, to be applied with a savepoint per
        /// event, which finds the failing event and retries, parks or dead-letters it alone.
        case handlerFailed
        /// The database (or Kafka, for a dead letter) rolled the batch back: retry it after a backoff. `reason` is
        /// what an operator should look at.
        case rolledBack(reason: String)
    }

    /// What the loop does next.
    enum Action: Equatable, Sendable {
        /// Poll Kafka for up to a tick; report ``recordsPolled(_:)``.
        case poll
        /// Apply `records` in one transaction, by `method`; report ``batchCommitted()`` or ``batchFailed(_:)``.
        case apply([ConsumerRecord], method: Method)
        /// The rolled-back batch waits `delay`: pause its partitions, poll (the group keeps this member) until the
        /// delay has passed, then report ``backoffElapsed()``. `reason` and `records` are for the log.
        case retryAfter(Duration, reason: String, records: Int)
        /// The batch that waited committed: resume the partitions, then poll.
        case resumeAndPoll
        /// The batch that waited has no record left (its partitions went elsewhere or were sought back): stop
        /// waiting, resume, and poll. `reason` is for the log.
        case abandonRetry(reason: String)
        /// Carry out the release requests for parked keys, then report ``releasesDone()``.
        case releaseParkedKeys
        /// Release everything and return.
        case finish
        /// Nothing changes; the loop carries on with what it was doing.
        case none
    }

    private(set) var state: State = .polling
    /// The batch in hand (empty while polling).
    private(set) var pending: [ConsumerRecord] = []
    /// The waits after rolled-back batches (the shared ``Backoff``).
    private(set) var backoff: Backoff
    /// Where each wait's jitter comes from: random in production, fixed in a test.
    private let jitter: @Sendable () -> Double
    /// How every batch is tried first (polled, or retried after a backoff).
    let firstMethod: Method

    /// Creates the machine, polling.
    ///
    /// - Parameters:
    ///   - statementHandler: Whether the handler only produces statements (``OutboxConsumer/StatementHandler``):
    ///     batches then start with ``Method/onePipeline``, otherwise with ``Method/claimFirst``.
    ///   - initialBackoff: The first wait after a rolled-back batch.
    ///   - maxBackoff: The longest wait.
    ///   - jitter: A number in `0...1` per wait (see ``Backoff/next(jitter:)``).
    init(statementHandler: Bool, initialBackoff: Duration, maxBackoff: Duration,
         jitter: @escaping @Sendable () -> Double = { Double.random(in: 0...1) }) {
        self.backoff = Backoff(initial: initialBackoff, maximum: maxBackoff)
        self.jitter = jitter
        self.firstMethod = statementHandler ? .onePipeline : .claimFirst
    }

    /// A poll returned `records`; `owned` is what this member owns when partitions were revoked (or lost) during
    /// the poll, `nil` when none were.
    ///
    /// Records of partitions that went to another member are not this member's to apply, whether fetched by this
    /// poll or waiting in a rolled-back batch. Records of a partition assigned to it again stay: the same poll may
    /// have returned records fetched from its new start, and dropping those would skip them. Older ones are applied
    /// again at worst (the inbox skips them), and the stored offset never moves backwards.
    mutating func recordsPolled(_ records: [ConsumerRecord], revokedLeaving owned: Set<TopicPartition>?) -> Action {
        switch state {
        case .polling:
            pending = records
            if let owned { pending.removeAll { !owned.contains($0.topicPartition) } }
            guard !pending.isEmpty else { return .poll }
            state = .applying(firstMethod)
            return .apply(pending, method: firstMethod)
        case .retrying:
            // Fetched before the pause took effect: applied with the batch when it is retried.
            pending += records
            guard let owned else { return .none }
            pending.removeAll { !owned.contains($0.topicPartition) }
            guard pending.isEmpty else { return .none }
            state = .polling
            return .abandonRetry(reason: "its partitions were revoked")
        case .applying, .stopped:
            return .none
        }
    }

    /// The batch in hand committed.
    mutating func batchCommitted() -> Action {
        switch state {
        case .applying:
            pending = []
            state = .polling
            backoff.reset()
            return .resumeAndPoll
        case .polling, .retrying, .stopped:
            return .none
        }
    }

    /// The batch in hand did not commit.
    mutating func batchFailed(_ failure: Failure) -> Action {
        switch (state, failure) {
        case (.applying(.onePipeline), .onePipelineFailed):
            // Nothing of it committed, and the database is not the cause (that is .rolledBack): apply the batch again
            // at once, the way that finds duplicates and parked keys before any handler runs.
            state = .applying(.claimFirst)
            return .apply(pending, method: .claimFirst)
        case (.applying(.claimFirst), .onePipelineFailed), (.applying(.savepoints), .onePipelineFailed),
             (.applying(.onePipeline), .handlerFailed):
            // Each attempt reports only its own failures: the one pipeline reports every failure as its own.
            return .none
        case (.applying(.claimFirst), .handlerFailed):
            state = .applying(.savepoints)
            return .apply(pending, method: .savepoints)
        case (.applying(.savepoints), .handlerFailed):
            // With a savepoint per event a handler's failure stays in its savepoint; should one escape it, the batch
            // is rolled back and retried like any other.
            state = .retrying
            return .retryAfter(backoff.next(jitter: jitter()), reason: "a handler failed outside its savepoint", records: pending.count)
        case (.applying, .rolledBack(let reason)):
            state = .retrying
            return .retryAfter(backoff.next(jitter: jitter()), reason: reason, records: pending.count)
        case (.polling, _), (.retrying, _), (.stopped, _):
            return .none
        }
    }

    /// The stored offsets were compared on a database connection that replaced the last one compared on: `rewound`
    /// partitions were sought back to what the database holds (it lost commits), and their records in hand are
    /// fetched again from there.
    mutating func databaseReconnected(rewound: Set<TopicPartition>) -> Action {
        switch state {
        case .applying(let method):
            pending.removeAll { rewound.contains($0.topicPartition) }
            guard pending.isEmpty else { return .apply(pending, method: method) }
            state = .polling
            return .resumeAndPoll
        case .retrying:
            pending.removeAll { rewound.contains($0.topicPartition) }
            guard pending.isEmpty else { return .none }
            state = .polling
            return .abandonRetry(reason: "its partitions were sought back to the database's offsets")
        case .polling, .stopped:
            return .none
        }
    }

    /// A housekeeping tick; `releasesDue` when parked keys may have release requests to look for.
    mutating func housekeeping(releasesDue: Bool) -> Action {
        switch state {
        case .polling, .applying:
            // A batch boundary: the batch in hand (if any) holds only records later than the parked ones.
            return releasesDue ? .releaseParkedKeys : .none
        case .retrying, .stopped:
            return .none
        }
    }

    /// The releases are done: carry on with the batch in hand, or poll.
    mutating func releasesDone() -> Action {
        switch state {
        case .applying(let method): .apply(pending, method: method)
        case .polling: .poll
        case .retrying, .stopped: .none
        }
    }

    /// The rolled-back batch's backoff elapsed.
    mutating func backoffElapsed() -> Action {
        switch state {
        case .retrying:
            state = .applying(firstMethod)
            return .apply(pending, method: firstMethod)
        case .polling, .applying, .stopped:
            return .none
        }
    }

    /// A stop was requested (``OutboxConsumer/stop()``, cancellation), and the step under way is over.
    mutating func stop() -> Action {
        switch state {
        case .polling, .applying, .retrying:
            state = .stopped
            pending = []
            return .finish
        case .stopped:
            return .none
        }
    }
}
