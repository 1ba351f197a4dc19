/// Exponential backoff with jitter and a cap, the one the connector and the consumer wait with.
///
/// The delay doubles after each failure up to ``maximum`` and starts over after a success. Each delay is jittered
/// between half and all of the current step (never below ``initial``), so that members that failed together do not
/// retry together. The cap keeps recovery quick: with the default, work resumes within about five seconds of an
/// outage's end (the connector's old 30 s cap waited 16 s into a 90 s outage and resumed 18 s after it ended).
///
/// Pure: the jitter is a number the caller passes (``next(jitter:)``), so a state machine that holds a backoff
/// stays deterministic and a test can fix it.
package struct Backoff: Sendable, Hashable {
    /// The default longest delay.
    package static let defaultMaximum: Duration = .seconds(4)

    /// The first delay.
    package let initial: Duration
    /// The longest delay.
    package let maximum: Duration
    /// The current step: the next delay is jittered below it.
    package private(set) var current: Duration

    /// Creates a backoff starting at `initial` and doubling up to `maximum` (at least `initial`).
    package init(initial: Duration, maximum: Duration = Backoff.defaultMaximum) {
        self.initial = initial
        self.maximum = max(initial, maximum)
        self.current = initial
    }

    /// The delay to wait now; the following step is twice as long (up to ``maximum``).
    ///
    /// - Parameter jitter: A number in `0...1` (a random one in production): 1 waits the whole step, 0 half of it;
    ///   the first step, ``initial``, is never shortened.
    package mutating func next(jitter: Double) -> Duration {
        let step = current
        current = min(current * 2, maximum)
        let fraction = 0.5 + 0.5 * min(1, max(0, jitter))
        return max(initial, step * fraction)
    }

    /// The delay to wait now, with a random jitter.
    package mutating func next() -> Duration {
        next(jitter: Double.random(in: 0...1))
    }

    /// Starts over at ``initial`` after a success.
    package mutating func reset() {
        current = initial
    }
}
