import RDKafka

/// Decides when the offsets committed to the database may be mirrored to Kafka. Pure.
///
/// Kafka's copy stands in for the database's offsets when the database cannot be read during an assignment, so it
/// must never be ahead of what a database crash keeps. Under `synchronous_commit=off` a crash loses the last
/// acknowledged commits; so offsets are collected here after each commit and mirrored only after a durability
/// barrier (``OffsetStore/durabilityBarrier(_:)``) that ran after them, at most once per ``interval``, and once more
/// at a graceful stop.
struct MirrorSchedule: Sendable {
    /// How often a barrier and a mirror commit run while batches commit.
    let interval: Duration
    /// Offsets committed to the database and not yet mirrored.
    private(set) var unmirrored: [TopicPartition: Int64] = [:]
    private var lastMirror: ContinuousClock.Instant

    init(interval: Duration, now: ContinuousClock.Instant) {
        self.interval = interval
        self.lastMirror = now
    }

    /// A batch committed these next offsets.
    mutating func committed(_ nextOffsets: [TopicPartition: Int64]) {
        unmirrored.merge(nextOffsets) { max($0, $1) }
    }

    /// The database lost commits and these partitions went back to these offsets: they are mirrored next, so that
    /// Kafka's copy is not left ahead of the database's.
    mutating func rewound(_ nextOffsets: [TopicPartition: Int64]) {
        unmirrored.merge(nextOffsets) { $1 }
    }

    /// Whether a barrier and a mirror are due (`stopping`: whatever is left, now).
    func isDue(now: ContinuousClock.Instant, stopping: Bool = false) -> Bool {
        !unmirrored.isEmpty && (stopping || now - lastMirror >= interval)
    }

    /// The barrier succeeded: returns what to mirror now.
    mutating func barrierPassed(now: ContinuousClock.Instant) -> [TopicPartition: Int64] {
        defer {
            unmirrored = [:]
            lastMirror = now
        }
        return unmirrored
    }
}
