import Foundation
import Observability
import Synchronization
import TestSupport
import Testing

/// Collects what reaches a sink.
final class RecordingSink: LogSink {
    let events = Mutex<[(level: EventLogger.Level, event: String, fields: [EventLogger.Field])]>([])
    func log(level: EventLogger.Level, event: String, fields: [EventLogger.Field]) {
        events.withLock { $0.append((level, event, fields)) }
    }
}

@Suite struct EventLoggerTests {
    @Test func logLinesAreLogfmtOrJSONWithOneEventEach() throws {
        let lines = LogLines()
        let logfmt = EventLogger(format: .logfmt, context: [("connector", "c")], write: { lines.append($0) })
        logfmt.info("delivered", ("topic", "order events"), ("note", "say \"hi\"\nbye"))
        let json = EventLogger(format: .json, write: { lines.append($0) })
        json.warning("slot_at_risk", ("detail", "tab\there \u{1}"))
        EventLogger(minimumLevel: .warning, write: { lines.append($0) }).info("dropped")
        let all = lines.all
        #expect(all.count == 2)
        #expect(all[0].contains(#"level=info event=delivered connector=c topic="order events" note="say \"hi\"\nbye""#))
        let object = try JSONSerialization.jsonObject(with: Data(all[1].utf8)) as? [String: String]
        #expect(object?["event"] == "slot_at_risk" && object?["level"] == "warning" && object?["detail"] == "tab\there \u{1}")
    }

    /// Every character that could end a line or confuse a parser is escaped, the same way in both formats.
    @Test func hostileValuesStayOnOneLineAndRoundTripThroughJSON() throws {
        let hostile = "a\nb\rc\u{0}d\u{1B}[31me\\f\"g\u{7F}h\u{85}i\u{2028}j\u{2029}k=l m\tn"
        let lines = LogLines()
        for format in EventLogger.Format.allCases {
            EventLogger(format: format, write: { lines.append($0) }).error("e", ("value", hostile), ("key with space=x", "v"))
        }
        let (logfmt, json) = (lines.all[0], lines.all[1])
        for line in [logfmt, json] {
            #expect(!line.unicodeScalars.contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) || $0 == "\u{2028}" || $0 == "\u{2029}" },
                    "raw control character or line separator in \(line)")
        }
        #expect(logfmt.hasSuffix(#" value="a\nb\rc\u0000d\u001b[31me\\f\"g\u007fh\u0085i\u2028j\u2029k=l m\tn" key_with_space_x=v"#), "\(logfmt)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: String])
        #expect(object["value"] == hostile)
        #expect(object["key with space=x"] == "v")
    }

    @Test func logfmtQuotesOnlyWhatNeedsIt() {
        #expect(EventLogger.Format.logfmtValue("0/16B3748") == "0/16B3748")
        #expect(EventLogger.Format.logfmtValue("") == #""""#)
        #expect(EventLogger.Format.logfmtValue("a b") == #""a b""#)
        #expect(EventLogger.Format.logfmtValue("a=b") == #""a=b""#)
        #expect(EventLogger.Format.logfmtValue(#"C:\dir"#) == #""C:\\dir""#)
        #expect(EventLogger.Format.logfmtValue("é✓") == "é✓")
    }

    /// Fields of a disabled level are never evaluated: neither the per-level methods' nor `log`'s.
    @Test func fieldsBelowTheLevelAreNotEvaluated() {
        let evaluations = Atomic<Int>(0)
        func expensive() -> String {
            evaluations.add(1, ordering: .relaxed)
            return "value"
        }
        let sink = RecordingSink()
        let logger = EventLogger(minimumLevel: .warning, sink: sink)
        logger.debug("d", ("k", expensive()), ("k2", expensive()))
        logger.info("i", ("k", expensive()))
        logger.log(.info, "l", [("k", expensive())])
        #expect(evaluations.load(ordering: .relaxed) == 0)
        logger.warning("w", ("k", expensive()))
        logger.log(.error, "e", [("k", expensive())])
        #expect(evaluations.load(ordering: .relaxed) == 2)
        #expect(sink.events.withLock { $0.map(\.event) } == ["w", "e"])
    }

    @Test func aSinkGetsTheLevelEventAndContextThenFields() {
        let sink = RecordingSink()
        let logger = EventLogger(minimumLevel: .debug, context: [("service", "s")], sink: sink).with(("group", "g"))
        logger.debug("a", ("x", "1"), ("y", "2"), ("z", "3"), ("4", "4"), ("5", "5"), ("6", "6"), ("7", "7"), ("8", "8"), ("9", "9"), ("10", "10"))
        logger.error("b")
        let events = sink.events.withLock { $0 }
        #expect(events.count == 2)
        #expect(events[0].level == .debug && events[0].event == "a")
        #expect(events[0].fields.map(\.0) == ["service", "group", "x", "y", "z", "4", "5", "6", "7", "8", "9", "10"])
        #expect(events[1].level == .error && events[1].fields.map(\.1) == ["s", "g"])
    }

    @Test func levelsHaveNamesAndOrder() {
        #expect(EventLogger.Level.allCases.map { EventLogger.Level(name: $0.description) } == EventLogger.Level.allCases)
        #expect(EventLogger.Level(name: "verbose") == nil)
        #expect(EventLogger.Level.debug < .info && EventLogger.Level.warning < .error)
    }
}
