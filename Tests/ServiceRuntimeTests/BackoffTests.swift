import ServiceRuntime
import Testing

@Suite struct BackoffTests {
    @Test func withoutJitterTheDelayDoublesUpToTheCapAndStartsOverAfterASuccess() {
        var backoff = Backoff(initial: .milliseconds(250), maximum: .seconds(4))
        let delays = (0..<8).map { _ in backoff.next(jitter: 1) }
        #expect(delays == [.milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2), .seconds(4), .seconds(4), .seconds(4), .seconds(4)])
        backoff.reset()
        #expect(backoff.next(jitter: 1) == .milliseconds(250))
    }

    /// Members that failed together retry spread out, between half and all of the step, never below the first delay.
    @Test func jitterSpreadsEachDelayBetweenHalfAndAllOfItsStep() {
        var backoff = Backoff(initial: .milliseconds(250), maximum: .seconds(4))
        #expect(backoff.next(jitter: 0) == .milliseconds(250), "the first delay is never shortened")
        #expect(backoff.next(jitter: 0) == .milliseconds(250))
        #expect(backoff.next(jitter: 0.5) == .milliseconds(750))
        #expect(backoff.next(jitter: 0) == .seconds(1))
        #expect(backoff.next(jitter: 7) == .seconds(4), "a jitter outside 0...1 is clamped")
        for _ in 0..<100 {
            let delay = backoff.next()
            #expect(delay >= .seconds(2) && delay <= .seconds(4))
        }
    }

    /// With the default cap a long outage is retried at least every 4 s: work resumes within about five seconds of
    /// its end, however long it lasted (the connector's old 30 s cap resumed 18 s after a 90 s outage).
    @Test func theDefaultCapRetriesALongOutageAtLeastEveryFourSeconds() {
        var backoff = Backoff(initial: .milliseconds(100))
        var elapsed = Duration.zero
        var longest = Duration.zero
        while elapsed < .seconds(90) {
            let delay = backoff.next(jitter: 1)
            longest = max(longest, delay)
            elapsed += delay
        }
        #expect(longest == Backoff.defaultMaximum && longest <= .seconds(4))
        #expect(Backoff(initial: .seconds(9), maximum: .seconds(1)).maximum == .seconds(9), "the cap is at least the first delay")
    }
}
