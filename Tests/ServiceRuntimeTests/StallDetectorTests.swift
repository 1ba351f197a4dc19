import ServiceRuntime
import Testing

@Suite struct StallDetectorTests {
    @Test func recordsWaitingWithoutProgressPastTheThresholdIsAStallReportedOnce() {
        let start = ContinuousClock.now
        var detector = StallDetector(threshold: .seconds(30), now: start)
        #expect(detector.observe(now: start + .seconds(10), waiting: true, progressed: false) == nil)
        #expect(detector.waited(now: start + .seconds(10)) == .seconds(10))
        #expect(detector.observe(now: start + .seconds(31), waiting: true, progressed: false) == .stalled(waited: .seconds(31)))
        #expect(detector.isStalled)
        #expect(detector.observe(now: start + .seconds(60), waiting: true, progressed: false) == nil, "reported once")
        #expect(detector.observe(now: start + .seconds(61), waiting: true, progressed: true) == .recovered(lasted: .seconds(61)))
        #expect(!detector.isStalled)
    }

    @Test func idleIsNotAStallAndProgressResetsTheClock() {
        let start = ContinuousClock.now
        var detector = StallDetector(threshold: .seconds(5), now: start)
        #expect(detector.observe(now: start + .seconds(100), waiting: false, progressed: false) == nil)
        #expect(detector.observe(now: start + .seconds(104), waiting: true, progressed: false) == nil)
        #expect(detector.observe(now: start + .seconds(108), waiting: true, progressed: true) == nil)
        #expect(detector.observe(now: start + .seconds(112), waiting: true, progressed: false) == nil)
        #expect(detector.observe(now: start + .seconds(114), waiting: true, progressed: false) == .stalled(waited: .seconds(6)))
        #expect(detector.observe(now: start + .seconds(115), waiting: false, progressed: false) == .recovered(lasted: .seconds(7)))
        #expect(detector.waited(now: start + .seconds(120)) == .zero)
    }
}

/// The connector's use: it knows when the wait began (its oldest unacknowledged record, or Kafka unreachable since).
@Suite struct StallDetectorWaitingSinceTests {
    @Test func aWaitThatBeganBeforeTheFirstLookIsCountedFromItsStart() {
        let start = ContinuousClock.now
        var detector = StallDetector(threshold: .seconds(30), now: start)
        #expect(detector.observe(now: start + .seconds(1), waitingSince: nil) == nil)
        // Records have been unacknowledged for 29 s at the first look, 31 s at the next.
        #expect(detector.observe(now: start + .seconds(30), waitingSince: start + .seconds(1)) == nil)
        #expect(detector.observe(now: start + .seconds(32), waitingSince: start + .seconds(1)) == .stalled(waited: .seconds(31)))
        #expect(detector.observe(now: start + .seconds(33), waitingSince: start + .seconds(1)) == nil, "reported once")
        #expect(detector.observe(now: start + .seconds(40), waitingSince: nil) == .recovered(lasted: .seconds(39)))
        #expect(!detector.isStalled && detector.waited(now: start + .seconds(41)) == .zero)
    }

    @Test func aBusyPipelineWhoseRecordsAreAcknowledgedInTimeNeverStalls() {
        // Under load something is always in flight, but the oldest record keeps getting younger.
        let start = ContinuousClock.now
        var detector = StallDetector(threshold: .seconds(5), now: start)
        for second in 1...60 {
            let now = start + .seconds(second)
            #expect(detector.observe(now: now, waitingSince: now - .milliseconds(20)) == nil)
        }
    }
}
