@testable import OutboxConsumer
import RDKafka
import Testing

@Suite struct MirrorScheduleTests {
    let p0 = TopicPartition(topic: "events", partition: 0)
    let p1 = TopicPartition(topic: "events", partition: 1)

    @Test func offsetsAreMirroredAtMostOncePerIntervalAndOnlyAfterABarrier() {
        let start = ContinuousClock.now
        var schedule = MirrorSchedule(interval: .seconds(1), now: start)
        #expect(!schedule.isDue(now: start + .seconds(5)), "nothing committed, nothing to mirror")
        schedule.committed([p0: 10])
        schedule.committed([p0: 7, p1: 3])
        #expect(!schedule.isDue(now: start + .milliseconds(500)))
        #expect(schedule.isDue(now: start + .milliseconds(500), stopping: true), "a graceful stop mirrors what is left")
        #expect(schedule.isDue(now: start + .seconds(1)))
        #expect(schedule.barrierPassed(now: start + .seconds(1)) == [p0: 10, p1: 3], "the highest of each partition")
        #expect(!schedule.isDue(now: start + .seconds(3)))
        schedule.committed([p1: 9])
        #expect(!schedule.isDue(now: start + .milliseconds(1500)))
        #expect(schedule.isDue(now: start + .seconds(2)))
    }

    @Test func aRewoundPartitionIsMirroredAtItsLowerOffset() {
        // The database lost commits: Kafka's copy must come back down with it, not stay at the higher offset.
        let start = ContinuousClock.now
        var schedule = MirrorSchedule(interval: .seconds(1), now: start)
        schedule.committed([p0: 40, p1: 5])
        schedule.rewound([p0: 25])
        #expect(schedule.barrierPassed(now: start + .seconds(1)) == [p0: 25, p1: 5])
        schedule.rewound([p1: 2])
        #expect(schedule.isDue(now: start + .seconds(2)))
        #expect(schedule.barrierPassed(now: start + .seconds(2)) == [p1: 2])
    }
}
