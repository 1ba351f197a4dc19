@testable import OutboxConsumer
import TestSupport
import Testing

@Suite struct ConsumerMetricsTests {
    /// HELP and TYPE for every family, and the group label escaped: promtool accepts it. (Before, the consumer's
    /// text had neither, and a group name with a quote broke the exposition.)
    @Test func promtoolAcceptsTheExpositionEvenForAnOddGroupName() async throws {
        let metrics = ConsumerMetrics()
        metrics.update { snapshot in
            snapshot.applied = 7
            snapshot.duplicatesSkipped = 1
            snapshot.lag = ["events/0": 3, "events/1": 0]
        }
        for group in ["svc", #"odd "group" \ name"#] {
            let text = metrics.render(group: group)
            let (status, output) = try await promtoolCheckMetrics(text)
            #expect(status == 0, "\(output)\n\(text)")
        }
        let text = metrics.render(group: #"odd "group" \ name"#)
        #expect(text.contains(#"tailgate_consumer_events_applied_total{group="odd \"group\" \\ name"} 7"#))
        #expect(metrics.render(group: "svc").contains("\ntailgate_consumer_lag{group=\"svc\",partition=\"events/0\"} 3\n"))
    }
}
