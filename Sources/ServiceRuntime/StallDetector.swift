/// Notices work that waits without progress for longer than a threshold, for the connector (records Kafka has not
/// acknowledged) and the consumer (records polled but not applied). Pure: the caller says what waits and since
/// when; this says when a stall starts and ends.
package struct StallDetector: Sendable {
    /// A change worth a log line.
    package enum Change: Hashable, Sendable {
        /// Work has waited without progress for `waited`.
        case stalled(waited: Duration)
        /// Progress again (or nothing left waiting) after a stall of `lasted`.
        case recovered(lasted: Duration)
    }

    /// How long work may wait without progress before it counts as a stall.
    package let threshold: Duration
    /// The last progress, or the last moment nothing was waiting (for ``observe(now:waiting:progressed:)``).
    private var lastProgress: ContinuousClock.Instant
    /// Since when the work observed last has waited; `nil` when nothing waited.
    private var waitingSince: ContinuousClock.Instant?
    /// Whether a stall was reported and has not ended.
    package private(set) var isStalled = false

    /// Creates a detector; nothing waits at `now`.
    package init(threshold: Duration, now: ContinuousClock.Instant) {
        self.threshold = threshold
        self.lastProgress = now
    }

    /// Reports the state at `now`: what waits has waited since `waitingSince` without progress, or nothing waits
    /// (`nil`). For a caller that knows when the wait began (the connector's oldest unacknowledged record).
    package mutating func observe(now: ContinuousClock.Instant, waitingSince since: ContinuousClock.Instant?) -> Change? {
        guard let since else {
            defer { waitingSince = nil }
            guard isStalled else { return nil }
            isStalled = false
            return .recovered(lasted: now - (waitingSince ?? now))
        }
        waitingSince = since
        let waited = now - since
        guard !isStalled, waited >= threshold else { return nil }
        isStalled = true
        return .stalled(waited: waited)
    }

    /// Reports the state at `now`: `waiting` when work is waiting (records polled but not applied, or lag above
    /// zero); `progressed` when some completed since the last call. The wait is counted from the last progress.
    package mutating func observe(now: ContinuousClock.Instant, waiting: Bool, progressed: Bool) -> Change? {
        guard waiting, !progressed else {
            defer { lastProgress = now }
            return observe(now: now, waitingSince: nil)
        }
        return observe(now: now, waitingSince: lastProgress)
    }

    /// How long work has waited without progress (zero when nothing waits).
    package func waited(now: ContinuousClock.Instant) -> Duration {
        waitingSince.map { now - $0 } ?? .zero
    }
}
