import Observability
@testable import RDKafka
import Synchronization
import TestSupport
import Testing

@Suite struct KafkaLogEventTests {
    /// librdkafka messages can hold newlines and quotes (broker error strings); the line must stay one line.
    @Test func logfmtKeepsAMultiLineMessageOnOneLine() {
        let event = KafkaLogEvent(level: .warning, facility: "FAIL", client: "rdkafka#producer-1",
                                  message: "localhost:9092/1: Connect failed\n\"refused\" \\ retrying")
        #expect(event.logfmt == #"level=warning component=kafka client=rdkafka#producer-1 facility=FAIL msg="localhost:9092/1: Connect failed\n\"refused\" \\ retrying""#)
    }

    /// Severity, not the syslog number, decides: error is at least warning, notice is not.
    @Test func isAtLeastOrdersBySeverity() {
        #expect(KafkaLogEvent.Level.error.isAtLeast(.warning))
        #expect(KafkaLogEvent.Level.emergency.isAtLeast(.critical))
        #expect(KafkaLogEvent.Level.warning.isAtLeast(.warning))
        #expect(!KafkaLogEvent.Level.notice.isAtLeast(.warning))
        #expect(!KafkaLogEvent.Level.debug.isAtLeast(.info))
    }

    /// `defaultKafkaLogHandler` is documented as "warnings and worse": it used to drop the warnings.
    @Test func theDefaultHandlerPrintsWarningsAndWorse() {
        let printed = KafkaLogEvent.Level.allCases.filter {
            KafkaLogEvent(level: $0, facility: "F", client: "c", message: "m").defaultLine != nil
        }
        #expect(printed == [.emergency, .alert, .critical, .error, .warning])
    }

    @Test func everyLevelMapsToTheLoggerLevelOfItsSeverity() {
        let mapped = KafkaLogEvent.Level.allCases.map(\.loggerLevel)
        #expect(mapped == [.error, .error, .error, .error, .warning, .info, .debug, .debug])
    }

    /// Real librdkafka lines, from a producer whose broker refuses connections, forwarded the way the connector and
    /// the consumer forward them: the connection failure (librdkafka's `FAIL`, syslog error) reaches the log as an
    /// error, the "brokers are down" report (`ERROR`, a warning) as a warning, and nothing milder as a warning.
    /// (The consumer's old forwarding dropped the error and logged the milder lines as warnings.)
    @Test func librdkafkaLinesReachTheLoggerAtTheirSeverity() async throws {
        let sink = LevelSink()
        let logger = EventLogger(minimumLevel: .debug, sink: sink)
        let raw = Mutex<[KafkaLogEvent]>([])
        // Port 1 on the loopback: nothing listens, every connection is refused at once.
        let producer = try KafkaProducer(configuration: .init(properties: ["bootstrap.servers": "127.0.0.1:1",
                                                                          "reconnect.backoff.ms": "50",
                                                                          "reconnect.backoff.max.ms": "100"]),
                                         log: { event in
                                             raw.withLock { $0.append(event) }
                                             logger.log(event)
                                         }) { _ in }
        producer.prepare(topics: ["unreachable"])
        let sawBoth = await eventually(timeout: .seconds(30)) {
            raw.withLock { events in
                events.contains { $0.level == .error } && events.contains { $0.level == .warning }
            }
        }
        _ = await producer.close(timeout: .seconds(1))
        #expect(sawBoth, "librdkafka logged: \(raw.withLock { $0.map { "\($0.level) \($0.facility)" } })")
        let events = raw.withLock { $0 }
        let logged = sink.all
        #expect(logged.count == events.count)
        for (event, line) in zip(events, logged) {
            #expect(line.event == "kafka_log")
            #expect(line.fields.contains { $0 == ("facility", event.facility) })
            switch event.level {
            case .emergency, .alert, .critical, .error: #expect(line.level == .error, "\(event.facility): \(event.message)")
            case .warning: #expect(line.level == .warning, "\(event.facility): \(event.message)")
            case .notice, .info, .debug: #expect(line.level < .warning, "\(event.facility): \(event.message)")
            }
        }
        #expect(logged.contains { $0.level == .error && $0.fields.contains { $0 == ("facility", "FAIL") } })
    }
}

/// Keeps what an ``EventLogger`` passed on, with its level.
private final class LevelSink: LogSink {
    struct Line { var level: EventLogger.Level; var event: String; var fields: [EventLogger.Field] }
    private let lines = Mutex<[Line]>([])
    func log(level: EventLogger.Level, event: String, fields: [EventLogger.Field]) {
        lines.withLock { $0.append(Line(level: level, event: event, fields: fields)) }
    }
    var all: [Line] { lines.withLock { $0 } }
}
