import Foundation
@testable import OutboxConnector
import Testing

/// The run loop's record for `/status`, without a connector: which steps move it, and which states are final.
@Suite struct ConnectorLifecycleTests {
    @Test func stoppingAndFailedAreFinalAndSinceMovesOnlyOnAChange() throws {
        var lifecycle = Connector.Lifecycle()
        #expect(lifecycle.state == .running && lifecycle.phase == "preparing")
        let started = lifecycle.since
        lifecycle.enter(.running, phase: "preparing")
        #expect(lifecycle.since == started, "the same state and phase keep their since")
        lifecycle.enter(.waiting, waiting: .init(cause: "postgres_unavailable", nextAttempt: nil, detail: "d"))
        #expect(lifecycle.state == .waiting && lifecycle.phase == nil && lifecycle.waiting?.cause == "postgres_unavailable")
        lifecycle.enter(.running, phase: "streaming")
        #expect(lifecycle.waiting == nil, "a new attempt clears the wait")

        lifecycle.enter(.stopping)
        lifecycle.enter(.running, phase: "streaming")
        lifecycle.enter(.waiting, waiting: .init(cause: "slot_in_use", nextAttempt: nil, detail: "d"))
        #expect(lifecycle.state == .stopping, "a step ending after the stop request does not undo it")
        lifecycle.enter(.failed)
        #expect(lifecycle.state == .failed, "a failure while stopping is still reported")
        lifecycle.enter(.stopping)
        lifecycle.enter(.running, phase: "preparing")
        #expect(lifecycle.state == .failed, "FAILED is final")
    }
}
