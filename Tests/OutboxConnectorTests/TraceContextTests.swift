import Foundation
@testable import OutboxConnector
import PGOutput
import RDKafka
import Synchronization
import Testing

@Suite struct TraceContextTests {
    static let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    @Test func aW3CTraceparentIsAcceptedWithItsTracestate() {
        let checked = TraceContext.check(traceParent: Self.valid, traceState: "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")
        #expect(checked.context == TraceContext(traceParent: Self.valid, traceState: "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"))
        #expect(checked.rejection == nil)
        // A later version may carry more fields after a '-'.
        #expect(TraceContext.invalidTraceParent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra") == nil)
        #expect(TraceContext.check(traceParent: nil, traceState: "a=b") == (nil, nil))
        #expect(TraceContext.check(traceParent: "", traceState: nil) == (nil, nil))
    }

    @Test(arguments: [
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", "bytes"),
        ("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", "hexadecimal"),
        ("00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01", "separated"),
        ("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "version ff"),
        ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", "trace id is all zeros"),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", "parent id is all zeros"),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", "exactly 55"),
        ("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x", "follow a '-'"),
        ("not a trace at all, just some text of about fifty-five b", "separated"),
    ])
    func invalidTraceparentsAreRejectedWithAReason(text: String, reason: String) {
        let checked = TraceContext.check(traceParent: text, traceState: "a=b")
        #expect(checked.context == nil, "a tracestate never travels without a valid traceparent")
        #expect(checked.rejection?.header == "traceparent")
        #expect(checked.rejection?.reason.contains(reason) == true, "\(checked.rejection?.reason ?? "accepted")")
    }

    @Test(arguments: [
        (String(repeating: "k=v,", count: 130), "at most 512"),
        ("a=b,c", "not key=value"),
        ("=b", "not key=value"),
        ("a=b\u{7}", "printable"),
        ((0..<33).map { "k\($0)=v" }.joined(separator: ","), "at most 32"),
    ])
    func anInvalidTracestateIsDroppedAndTheTraceparentKept(state: String, reason: String) {
        let checked = TraceContext.check(traceParent: Self.valid, traceState: state)
        #expect(checked.context == TraceContext(traceParent: Self.valid, traceState: nil))
        #expect(checked.rejection?.header == "tracestate")
        #expect(checked.rejection?.reason.contains(reason) == true, "\(checked.rejection?.reason ?? "accepted")")
    }

    // MARK: The router

    static let relation = Relation(id: 1, namespace: "public", name: "outbox_event", replicaIdentity: .default, columns: [
        .init(isKey: true, name: "id", typeOID: 25, typeModifier: -1),
        .init(isKey: false, name: "aggregate_id", typeOID: 25, typeModifier: -1),
        .init(isKey: false, name: "payload", typeOID: 25, typeModifier: -1),
        .init(isKey: false, name: "trace", typeOID: 25, typeModifier: -1),
        .init(isKey: false, name: "trace_state", typeOID: 25, typeModifier: -1),
    ])
    static let context = OutboxRouter.TransactionContext(commitLSN: LSN("0/16B3748")!, xid: 9)

    static func configuration(_ outboxExtra: String) throws -> ConnectorConfiguration {
        try ConnectorConfiguration.parse(Data("""
            {"name": "r", "postgres": {"conninfo": "dbname=x", "slot": "s", "publication": "p"},
             "outbox": {"table": "outbox_event", "topic": {"name": "events"}\(outboxExtra)},
             "kafka": {"bootstrap.servers": "k:9092"}}
            """.utf8))
    }

    static func row(_ values: [String?]) -> Row {
        Row(relation: relation, values: values.map { $0.map { TupleData.Value.text(Array($0.utf8)) } ?? .null })
    }

    @Test func theTraceColumnsBecomeTraceparentAndTracestateHeaders() throws {
        let configuration = try Self.configuration(#", "traceColumn": "trace", "traceStateColumn": "trace_state""#)
        let router = OutboxRouter(configuration: configuration)
        #expect(router.requiredColumns.suffix(2) == ["trace", "trace_state"])
        guard case .publish(let record) = router.route(Self.row(["e1", "k", "{}", Self.valid, "rojo=1"]), in: Self.context) else {
            Issue.record("not published"); return
        }
        #expect(record.headers.map(\.name) == ["event_id", "traceparent", "tracestate", "tailgate_lsn", "tailgate_xid", "tailgate_commit_time"])
        #expect(record.header("traceparent")?.stringValue == Self.valid)
        #expect(record.header("tracestate")?.stringValue == "rojo=1")
        guard case .publish(let untraced) = router.route(Self.row(["e2", "k", "{}", nil, "rojo=1"]), in: Self.context) else {
            Issue.record("not published"); return
        }
        #expect(untraced.headers.map(\.name) == ["event_id", "tailgate_lsn", "tailgate_xid", "tailgate_commit_time"])
    }

    @Test func anInvalidTraceparentIsDroppedAndReportedButTheRowIsPublished() throws {
        let dropped = Mutex<[String]>([])
        let router = OutboxRouter(configuration: try Self.configuration(#", "traceColumn": "trace", "traceStateColumn": "trace_state""#)) { eventID, rejection in
            dropped.withLock { $0.append("\(eventID ?? "nil") \(rejection.header)") }
        }
        guard case .publish(let record) = router.route(Self.row(["e1", "k", "{}", "garbage", "rojo=1"]), in: Self.context) else {
            Issue.record("an invalid traceparent must not fail the row"); return
        }
        #expect(record.header("traceparent") == nil && record.header("tracestate") == nil)
        guard case .publish(let kept) = router.route(Self.row(["e2", "k", "{}", Self.valid, "no-equals"]), in: Self.context) else {
            Issue.record("an invalid tracestate must not fail the row"); return
        }
        #expect(kept.header("traceparent")?.stringValue == Self.valid && kept.header("tracestate") == nil)
        #expect(dropped.withLock { $0 } == ["e1 traceparent", "e2 tracestate"])
    }

    // MARK: The connector file

    @Test func traceSettingsAreValidatedLikeTheOtherColumns() throws {
        let configuration = try Self.configuration(#", "traceColumn": "traceparent""#)
        #expect(configuration.traceColumn == "traceparent" && configuration.traceStateColumn == nil)
        #expect(try Self.configuration("").traceColumn == nil)
        for (extra, expected) in [
            (#", "traceStateColumn": "ts""#, "$.outbox.traceStateColumn: needs \"traceColumn\""),
            (#", "traceColumn": "a b""#, "$.outbox.traceColumn: 'a b' is not a valid column name"),
            (#", "traceColumn": 7"#, "$.outbox.traceColumn: must be a string"),
            (#", "traceColumn": "t", "headers": {"traceparent": "t"}"#, "$.outbox.headers.traceparent: 'traceparent' comes from"),
        ] {
            let error = #expect(throws: ConfigurationError.self) { try Self.configuration(extra) }
            #expect(error?.problems.contains { $0.hasPrefix(expected) } == true, "\(error?.problems ?? [])")
        }
    }
}

private extension KafkaRecord {
    func header(_ name: String) -> KafkaHeader? { headers.first { $0.name == name } }
}
