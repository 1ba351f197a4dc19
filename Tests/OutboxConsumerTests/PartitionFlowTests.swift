@testable import OutboxConsumer
import RDKafka
import Testing

@Suite struct PartitionFlowTests {
    let p0 = TopicPartition(topic: "events", partition: 0)
    let p1 = TopicPartition(topic: "events", partition: 1)
    let p2 = TopicPartition(topic: "events", partition: 2)

    @Test func aNewAssignmentIsNeitherPausedNorResumed() {
        var flow = PartitionFlow()
        flow.assign([p0, p1])
        #expect(flow.reconcile().isEmpty, "resuming a fetching partition would restart it away from its start offset")
    }

    @Test func aFailedBatchPausesEveryPartitionAndItsCommitResumesThem() {
        var flow = PartitionFlow()
        flow.assign([p0, p1])
        flow.startWaiting()
        #expect(flow.reconcile() == .init(pause: [p0, p1]))
        #expect(flow.reconcile().isEmpty)
        #expect(flow.pausedCount == 2)
        flow.stopWaiting()
        #expect(flow.reconcile() == .init(resume: [p0, p1]))
        #expect(flow.pausedCount == 0)
    }

    @Test func aRevocationThatEmptiesTheBatchResumesTheReassignedPartitions() {
        // The bug of issue 11: paused for a failed batch, revoked (the batch emptied), reassigned still paused.
        var flow = PartitionFlow()
        flow.assign([p0, p1, p2])
        flow.startWaiting()
        _ = flow.reconcile()
        flow.revoke([p0, p1, p2])
        // The loop sees the batch emptied by the revocation before the next assignment…
        flow.stopWaiting()
        #expect(flow.reconcile().isEmpty, "nothing assigned, nothing to tell librdkafka yet")
        // …and librdkafka kept the pause flags: the reassigned ones are resumed.
        flow.assign([p0, p2])
        #expect(flow.reconcile() == .init(resume: [p0, p2]))
        #expect(flow.pausedCount == 0)
        // p1 went elsewhere but is still flagged; if it comes back, it is resumed too.
        flow.assign([p1])
        #expect(flow.reconcile() == .init(resume: [p1]))
    }

    @Test func aReassignmentWhileWaitingIsPausedAndResumedWithTheRest() {
        var flow = PartitionFlow()
        flow.assign([p0])
        flow.startWaiting()
        _ = flow.reconcile()
        flow.revoke([p0])
        flow.assign([p0, p1])
        #expect(flow.reconcile() == .init(pause: [p1]), "still waiting: p0 stays paused, p1 joins it")
        flow.stopWaiting()
        #expect(flow.reconcile() == .init(resume: [p0, p1]))
    }

    @Test func aFailedCallIsRetriedByTheNextReconcile() {
        var flow = PartitionFlow()
        flow.assign([p0])
        flow.startWaiting()
        let pause = flow.reconcile()
        flow.failed(pause)
        #expect(flow.reconcile() == .init(pause: [p0]))
        flow.stopWaiting()
        let resume = flow.reconcile()
        flow.failed(resume)
        #expect(flow.reconcile() == .init(resume: [p0]))
    }
}
