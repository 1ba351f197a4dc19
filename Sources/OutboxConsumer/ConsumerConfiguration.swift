import Foundation
import RDKafka

/// How an ``OutboxConsumer`` reads Kafka and where it keeps its inbox and offsets.
public struct ConsumerConfiguration: Sendable {
    /// What to do with a record that has no `event_id` header.
    public enum MissingEventIDPolicy: Sendable, Hashable {
        /// Use `topic/partition/offset` as its identity (a re-published copy would count as a new event).
        case useRecordCoordinates
        /// Send it to the dead-letter topic without applying it.
        case deadLetter
    }

    /// What happens to an event whose handler cannot succeed (poison).
    public enum PoisonPolicy: Sendable, Hashable {
        /// Park its key, keeping per-key order: the event is stored in ``ConsumerConfiguration/parkedTable`` with the
        /// error, later events with the same key on that partition are parked behind it in order, and every other key
        /// keeps flowing. `tailgate parked release` (or ``ParkedKeys/requestRelease(group:topic:partition:key:)``)
        /// applies them in order once the handler is fixed.
        case parkKey
        /// Send it to ``ConsumerConfiguration/deadLetterTopic`` and move on (later events of its key are applied
        /// without it).
        case deadLetter
    }

    /// The Kafka consumer group; also the inbox's and offset table's partition key.
    public var groupID: String
    /// The topics to consume.
    public var topics: [String]
    /// librdkafka consumer properties (`bootstrap.servers`, TLS, …), over ``kafkaDefaults``.
    public var kafka: [String: String]
    /// The service's PostgreSQL connection string.
    public var postgres: String
    /// The inbox table.
    public var inboxTable: String
    /// The offsets table.
    public var offsetsTable: String
    /// Records per batch (one database transaction).
    public var maxBatchSize: Int
    /// How many times a handler is tried for one event before it is dead-lettered.
    public var handlerAttempts: Int
    /// The wait before the first retry of a failing handler or batch; doubled each time up to ``maxBackoff``.
    public var retryBackoff: Duration
    /// The longest wait between retries (4 s by default: work resumes within about five seconds of an outage's
    /// end; waits are jittered between half and all of each step).
    public var maxBackoff: Duration
    /// What happens to a poison event (default: park its key, keeping per-key order).
    public var poisonPolicy: PoisonPolicy
    /// The table of parked events (``PoisonPolicy/parkKey``).
    public var parkedTable: String
    /// Where poison events go under ``PoisonPolicy/deadLetter``, and unidentifiable records under
    /// ``MissingEventIDPolicy/deadLetter``.
    public var deadLetterTopic: String
    /// Records without an `event_id` header.
    public var missingEventID: MissingEventIDPolicy
    /// Where a partition with no stored offset starts.
    public var startOffset: StartOffset
    /// Inbox rows older than this are deleted. It must exceed the longest possible replay window (a connector
    /// restored from an old slot position), or a late duplicate would be applied again.
    public var inboxRetention: Duration
    /// How often the retention sweep runs.
    public var retentionInterval: Duration
    /// How long records may wait without any progress (a batch retried again and again, partitions that do not
    /// move) before the consumer logs `stalled` and reports ``ConsumerMetrics/Snapshot/stalled``.
    public var stallThreshold: Duration

    /// The librdkafka properties the consumer sets unless ``kafka`` does.
    ///
    /// `session.timeout.ms=6000` and `heartbeat.interval.ms=2000`: a member that dies without leaving the group (a
    /// SIGKILL, a crash, a frozen host) is declared dead after at most 6 s, and the other members learn about the
    /// rebalance at their next heartbeat (2 s), so its partitions move within about 10 s instead of librdkafka's
    /// default 45 s. 6000 ms is the brokers' default `group.min.session.timeout.ms`, the lowest a broker accepts
    /// unless reconfigured; the heartbeat is a third of it, as Kafka recommends, so two lost heartbeats are survived.
    /// Heartbeats come from librdkafka's own thread, so a long batch does not count against the session timeout
    /// (only against `max.poll.interval.ms`, 300 s). `reconnect.backoff.max.ms=1000`: after an outage a broker is
    /// tried again at least every second (librdkafka backs off to 10 s by default, which delayed recovery from a
    /// healed network by that long).
    public static let kafkaDefaults: [String: String] = ["session.timeout.ms": "6000", "heartbeat.interval.ms": "2000",
                                                         "reconnect.backoff.max.ms": "1000"]

    /// Creates a configuration with defaults for everything but the essentials.
    public init(groupID: String, topics: [String], kafka: [String: String], postgres: String,
                inboxTable: String = "tailgate_inbox", offsetsTable: String = "tailgate_offsets", maxBatchSize: Int = 500,
                handlerAttempts: Int = 3, retryBackoff: Duration = .milliseconds(100), maxBackoff: Duration = .seconds(4),
                deadLetterTopic: String? = nil, missingEventID: MissingEventIDPolicy = .useRecordCoordinates,
                startOffset: StartOffset = .beginning, inboxRetention: Duration = .seconds(7 * 24 * 3600),
                retentionInterval: Duration = .seconds(600), stallThreshold: Duration = .seconds(30),
                poisonPolicy: PoisonPolicy = .parkKey, parkedTable: String = "tailgate_parked") {
        self.groupID = groupID
        self.topics = topics
        self.kafka = kafka
        self.postgres = postgres
        self.inboxTable = inboxTable
        self.offsetsTable = offsetsTable
        self.maxBatchSize = maxBatchSize
        self.handlerAttempts = handlerAttempts
        self.retryBackoff = retryBackoff
        self.maxBackoff = maxBackoff
        self.deadLetterTopic = deadLetterTopic ?? "\(groupID).dead-letter"
        self.missingEventID = missingEventID
        self.startOffset = startOffset
        self.inboxRetention = inboxRetention
        self.retentionInterval = retentionInterval
        self.stallThreshold = stallThreshold
        self.poisonPolicy = poisonPolicy
        self.parkedTable = parkedTable
    }
}
