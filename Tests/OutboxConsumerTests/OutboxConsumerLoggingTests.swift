import Foundation
import Observability
@testable import OutboxConsumer
import Synchronization
import TestSupport
import Testing

/// The consumer's events go through the logger given at `init`: the connector's line format and escaping by
/// default, or a service's own sink.
@Suite struct OutboxConsumerLoggingTests {
    let configuration = ConsumerConfiguration(groupID: "svc", topics: ["events"], kafka: ["bootstrap.servers": "127.0.0.1:1"],
                                              postgres: "dbname=unused")

    /// A database error with a newline (PostgreSQL's DETAIL/HINT lines) stays one logfmt line; the old
    /// hand-built line wrote the newline raw.
    @Test func aMultiLineErrorStaysOneLine() throws {
        let lines = LogLines()
        let consumer = try OutboxConsumer(configuration: configuration, log: { lines.append($0) })
        consumer.logger.log(.warning, "batch_rolled_back", [("error", "deadlock detected\nDETAIL: Process 1 waits for \"ShareLock\""), ("retry_in", "0.1 seconds")])
        #expect(lines.all.count == 1)
        let line = try #require(lines.all.first)
        #expect(!line.contains("\n"))
        #expect(line.contains(#"level=warning event=batch_rolled_back group=svc error="deadlock detected\nDETAIL: Process 1 waits for \"ShareLock\"" retry_in="0.1 seconds""#), "\(line)")
    }

    @Test func aServiceSinkGetsLevelEventAndFields() throws {
        final class Sink: LogSink {
            let events = Mutex<[String]>([])
            func log(level: EventLogger.Level, event: String, fields: [EventLogger.Field]) {
                events.withLock { $0.append("\(level) \(event) \(fields.map { "\($0.0)=\($0.1)" }.joined(separator: ","))") }
            }
        }
        let sink = Sink()
        let consumer = try OutboxConsumer(configuration: configuration, logger: EventLogger(minimumLevel: .warning, sink: sink))
        consumer.logger.log(.info, "started", [("topics", "events")])
        consumer.logger.log(.warning, "dead_lettered", [("event_id", "e-1")])
        #expect(sink.events.withLock { $0 } == ["warning dead_lettered group=svc,event_id=e-1"])
    }
}
