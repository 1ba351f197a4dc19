/// Notices a consumer that has records waiting and makes no progress. Pure: the loop reports progress and what
/// is waiting; this says when a stall starts and ends.
struct StallDetector: Sendable {
    /// A change worth a log line.
    enum Change: Hashable, Sendable {
        /// Records have waited without progress for `waited`.
        case stalled(waited: Duration)
        /// Progress again (or nothing left waiting) after a stall of `lasted`.
        case recovered(lasted: Duration)
    }

    /// How long records may wait without progress before it counts as a stall.
    let threshold: Duration
    /// The last progress, or the last moment nothing was waiting.
    private(set) var lastProgress: ContinuousClock.Instant
    /// Whether a stall was reported and has not ended.
    private(set) var isStalled = false
    /// Whether records were waiting at the last observation.
    private(set) var isWaiting = false

    init(threshold: Duration, now: ContinuousClock.Instant) {
        self.threshold = threshold
        self.lastProgress = now
    }

    /// Reports the state at `now`: `waiting` when records are polled but not applied, or lag is above zero;
    /// `progressed` when a batch committed since the last call.
    mutating func observe(now: ContinuousClock.Instant, waiting: Bool, progressed: Bool) -> Change? {
        isWaiting = waiting
        if progressed || !waiting {
            defer { lastProgress = now }
            guard isStalled else { return nil }
            isStalled = false
            return .recovered(lasted: now - lastProgress)
        }
        let waited = now - lastProgress
        guard !isStalled, waited >= threshold else { return nil }
        isStalled = true
        return .stalled(waited: waited)
    }

    /// How long records have waited without progress (zero when nothing waits).
    func waited(now: ContinuousClock.Instant) -> Duration {
        isWaiting ? now - lastProgress : .zero
    }
}
