/// Exponential backoff: the delay doubles after each failure, up to a maximum, and starts over after a success.
struct Backoff: Sendable, Hashable {
    /// The first delay.
    let initial: Duration
    /// The longest delay.
    let maximum: Duration
    /// The delay the next failure waits.
    private(set) var current: Duration

    init(initial: Duration, maximum: Duration) {
        self.initial = initial
        self.maximum = max(initial, maximum)
        self.current = initial
    }

    /// The delay to wait now; the following one is twice as long (up to ``maximum``).
    mutating func next() -> Duration {
        let delay = current
        current = min(current * 2, maximum)
        return delay
    }

    /// Starts over at ``initial`` after a success.
    mutating func reset() {
        current = initial
    }
}
