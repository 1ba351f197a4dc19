import RDKafka

/// Decides which assigned partitions must be paused or resumed. Pure: the consumer loop reports assignments and
/// whether it is deliberately waiting, and performs the pauses and resumes this returns.
///
/// The rule: every assigned partition fetches unless the consumer is deliberately waiting (a batch rolled back and
/// its retry is due later), and then every one is paused. librdkafka keeps a partition's pause flag across a
/// revocation and a later reassignment, so this remembers which partitions it paused, assigned or not, and resumes a
/// reassigned one once the consumer is not waiting. That is what keeps partitions from staying paused for good when
/// a rebalance takes away every record of a failed batch.
///
/// Partitions that were never paused are never resumed: resuming restarts a partition's fetch, at its committed
/// offset when nothing was consumed since the assignment. That is never ahead of the start the ``OffsetStore``
/// chose (Kafka's copy mirrors the database's), so at worst records are read again and the inbox skips them; but
/// without a reason it is wasted work.
struct PartitionFlow: Sendable {
    /// The assigned partitions.
    private(set) var assigned: Set<TopicPartition> = []
    /// The partitions librdkafka holds paused, as far as this consumer knows (assigned or not).
    private(set) var paused: Set<TopicPartition> = []
    /// Whether the consumer is deliberately waiting (a rolled-back batch is due for a retry).
    private(set) var isWaiting = false

    /// The changes librdkafka must be told about.
    struct Actions: Hashable, Sendable {
        var pause: [TopicPartition] = []
        var resume: [TopicPartition] = []
        var isEmpty: Bool { pause.isEmpty && resume.isEmpty }
    }

    /// Partitions were assigned (a pause flag they kept is dealt with by the next ``reconcile()``).
    mutating func assign(_ partitions: [TopicPartition]) {
        assigned.formUnion(partitions)
    }

    /// Partitions were revoked or lost (librdkafka keeps their pause flag).
    mutating func revoke(_ partitions: [TopicPartition]) {
        assigned.subtract(partitions)
    }

    /// A batch rolled back; its retry waits for a backoff, with every partition paused.
    mutating func startWaiting() {
        isWaiting = true
    }

    /// Nothing is waiting any more: the batch committed, or a revocation emptied it.
    mutating func stopWaiting() {
        isWaiting = false
    }

    /// What to pause and resume now, so that every assigned partition is in the state the rule asks for. Assumes
    /// the calls succeed; report a failed one with ``failed(_:)``.
    mutating func reconcile() -> Actions {
        if isWaiting {
            let pause = assigned.subtracting(paused).sorted()
            paused.formUnion(pause)
            return Actions(pause: pause)
        }
        let resume = assigned.intersection(paused).sorted()
        paused.subtract(resume)
        return Actions(resume: resume)
    }

    /// A pause or resume call of `actions` failed: the next ``reconcile()`` tries again.
    mutating func failed(_ actions: Actions) {
        paused.subtract(actions.pause)
        paused.formUnion(actions.resume)
    }

    /// The assigned partitions, sorted.
    var partitions: [TopicPartition] { assigned.sorted() }

    /// How many assigned partitions are paused.
    var pausedCount: Int { assigned.intersection(paused).count }
}
