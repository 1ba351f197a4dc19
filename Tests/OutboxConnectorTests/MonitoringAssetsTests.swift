import Foundation
import LibPQ
import OutboxConnector
import RDKafka
import TestSupport
import Testing

/// The alerting rules and the dashboard in `docker/` name only metrics that a running connector and a running
/// consumer really export: a renamed metric fails here, not silently on a production dashboard.
@Suite struct MonitoringAssetsTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    /// Metric names in a Prometheus text exposition; a histogram also exports `_bucket`, `_sum` and `_count`.
    static func exportedNames(_ exposition: String) -> Set<String> {
        var names = Set<String>()
        for line in exposition.split(separator: "\n") {
            let words = line.split(separator: " ")
            if words.count >= 4, words[0] == "#", words[1] == "TYPE" {
                let name = String(words[2])
                names.insert(name)
                if words[3] == "histogram" { names.formUnion(["_bucket", "_sum", "_count"].map { name + $0 }) }
            } else if !line.hasPrefix("#"), let end = line.firstIndex(where: { $0 == "{" || $0 == " " }) {
                names.insert(String(line[..<end]))
            }
        }
        return names
    }

    /// Every `tailgate_…` metric name a rules file or dashboard mentions.
    static func referencedNames(_ text: String) throws -> Set<String> {
        let expression = try NSRegularExpression(pattern: #"\btailgate_[a-z0-9_]+"#)
        return Set(expression.matches(in: text, range: NSRange(text.startIndex..., in: text)).compactMap {
            Range($0.range, in: text).map { String(text[$0]) }
        })
    }

    @Test func rulesAndDashboardNameOnlyExportedMetrics() async throws {
        let fixture = try await OutboxFixture.make()
        defer { fixture.close() }
        let running = try await fixture.start(try fixture.configuration())
        // A delivered event, a dead-lettered row and a heartbeat, so every per-topic and per-event series exists.
        try await fixture.db.execute("""
            INSERT INTO outbox_event (topic, aggregate_id, event_type, payload) VALUES
              ('order-events', 'o-1', 'PaymentFailed', '{"orderId": "o-1"}'), ('not-allowed', 'o-2', 'X', '{}')
            """)
        #expect(await eventually { running.metrics.deliveredTotal == 1 })
        #expect(await eventually { running.metrics.render().contains("tailgate_last_heartbeat_timestamp_seconds{") })
        let connectorPort = try #require(running.connector.metricsPort)
        let connectorMetrics = try #require(await httpGet(port: connectorPort, path: "/metrics")).body

        // The example back office, as the compose file runs it, serving its consumer's metrics.
        try await fixture.kafka.createTopic("product-metrics.dead-letter", partitions: 1)
        let backOffice = try await fixture.postgres.createDatabase(prefix: "backoffice")
        let consumerPort = try TestPostgres.freePort()
        let service = try ChildProcess(ChildProcess.productsDirectory + "/commerce-example",
                                       ["metrics", "--postgres", fixture.postgres.conninfo(database: backOffice),
                                        "--bootstrap", fixture.kafka.bootstrapServers, "--metrics-listen", "127.0.0.1:\(consumerPort)"],
                                       outputPath: fixture.stateDirectory + "-backoffice.log")
        defer { service.signal(SIGKILL); _ = service.wait() }
        let consumerMetrics = await eventuallyValue(timeout: .seconds(60)) { () -> String? in
            guard let body = await httpGet(port: consumerPort, path: "/metrics")?.body,
                  body.contains("tailgate_consumer_events_applied_total{group=\"product-metrics\"} 1"),
                  body.contains("tailgate_consumer_lag{") else { return nil }
            return body
        }
        let consumerBody = try #require(consumerMetrics, "the metrics service never applied the event: \(service.output.suffix(500))")

        let exported = Self.exportedNames(connectorMetrics).union(Self.exportedNames(consumerBody))
        for asset in ["docker/prometheus/tailgate.rules.yml", "docker/grafana/dashboards/tailgate.json"] {
            let text = try String(contentsOfFile: "\(Self.repository)/\(asset)", encoding: .utf8)
            let referenced = try Self.referencedNames(text)
            #expect(referenced.count >= 8, "\(asset) names \(referenced.count) metrics; the pattern found too few to mean anything")
            #expect(referenced.subtracting(exported).isEmpty,
                    "\(asset) names metrics nothing exports: \(referenced.subtracting(exported).sorted()); exported: \(exported.sorted())")
        }
        try await running.stop()
    }

    @Test func theNamePatternsFindWhatTheyShould() throws {
        let exposition = """
            # HELP tailgate_commit_to_ack_seconds Latency.
            # TYPE tailgate_commit_to_ack_seconds histogram
            tailgate_commit_to_ack_seconds_bucket{le="+Inf"} 1
            # TYPE tailgate_streaming gauge
            tailgate_consumer_lag{group="g",partition="t[0]"} 3
            """
        #expect(Self.exportedNames(exposition) == ["tailgate_commit_to_ack_seconds", "tailgate_commit_to_ack_seconds_bucket",
                                                   "tailgate_commit_to_ack_seconds_sum", "tailgate_commit_to_ack_seconds_count",
                                                   "tailgate_streaming", "tailgate_consumer_lag"])
        #expect(try Self.referencedNames(#"rate(tailgate_events_delivered_total[1m]) and up{job="tailgate"} topic="tailgate.dead-letter""#)
                == ["tailgate_events_delivered_total"])
    }
}

/// Polls `value` until it returns non-nil or `timeout` passes.
private func eventuallyValue<T>(timeout: Duration, _ value: () async throws -> T?) async rethrows -> T? {
    var result: T?
    _ = try await eventually(timeout: timeout) {
        result = try await value()
        return result != nil
    }
    return result
}
