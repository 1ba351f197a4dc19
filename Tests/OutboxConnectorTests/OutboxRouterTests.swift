import Foundation
@testable import OutboxConnector
import PGOutput
import RDKafka
import Testing

@Suite struct OutboxRouterTests {
    static let relation = Relation(id: 1, namespace: "public", name: "outbox_event", replicaIdentity: .default, columns: [
        .init(isKey: true, name: "id", typeOID: 2950, typeModifier: -1),
        .init(isKey: false, name: "topic", typeOID: 25, typeModifier: -1),
        .init(isKey: false, name: "aggregate_type", typeOID: 25, typeModifier: -1),
        .init(isKey: false, name: "aggregate_id", typeOID: 25, typeModifier: -1),
        .init(isKey: false, name: "event_type", typeOID: 25, typeModifier: -1),
        .init(isKey: false, name: "payload", typeOID: 17, typeModifier: -1), // bytea
    ])
    static let context = OutboxRouter.TransactionContext(commitLSN: LSN("0/16B3748")!, xid: 777)

    static func configuration(_ extra: String = "", topic: String = #"{"column": "topic"}"#) throws -> ConnectorConfiguration {
        try ConnectorConfiguration.parse(Data("""
            {"name": "r", "postgres": {"conninfo": "dbname=x", "slot": "s", "publication": "p"},
             "outbox": {"table": "outbox_event", "topic": \(topic), "headers": {"event_type": "event_type", "aggregate_type": "aggregate_type"}},
             "kafka": {"bootstrap.servers": "k:9092"}, "deadLetterTopic": "dlq"\(extra)}
            """.utf8))
    }

    static func row(_ values: [String?]) -> Row {
        Row(relation: relation, values: values.map { $0.map { TupleData.Value.text(Array($0.utf8)) } ?? .null })
    }

    @Test func theCommitTimeHeaderIsMicrosecondsSinceTheUnixEpoch() throws {
        let router = OutboxRouter(configuration: try Self.configuration(""))
        // PostgreSQL's epoch (2000-01-01) plus 1.5 s.
        let context = OutboxRouter.TransactionContext(commitLSN: LSN("0/16B3748")!, xid: 777, commitTime: PostgresTimestamp(rawValue: 1_500_000))
        guard case .publish(let record) = router.route(Self.row(["e1", "orders", nil, "o-1", "Paid", "\\x00"]), in: context) else {
            Issue.record("not published"); return
        }
        #expect(record.headers.first { $0.name == "tailgate_commit_time" }?.stringValue == "946684801500000")
    }

    static let cloudEvents = #", "format": "cloudevents", "cloudEvents": {"source": "/commerce/${value}", "sourceColumn": "aggregate_type", "typeColumn": "event_type", "subjectColumn": "aggregate_id"}"#

    @Test func theCloudEventsFormatAddsTheBinaryModeHeadersFirstAndKeepsTailgates() throws {
        let router = OutboxRouter(configuration: try Self.configuration(Self.cloudEvents))
        #expect(router.requiredColumns.contains("aggregate_type") && router.requiredColumns.contains("event_type"))
        let context = OutboxRouter.TransactionContext(commitLSN: LSN("0/16B3748")!, xid: 777, commitTime: PostgresTimestamp(rawValue: 1_500_000))
        let routing = router.route(Self.row(["e1", "orders", "sales order", "o-1", "OrderPaid", "\\x7b7d"]), in: context)
        guard case .publish(let record) = routing else { Issue.record("\(routing)"); return }
        #expect(record.key == Array("o-1".utf8) && record.value == Array("{}".utf8), "key and value as without the format")
        #expect(record.headers.map(\.name) == ["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "ce_subject", "content-type",
                                               "event_id", "event_type", "aggregate_type", "tailgate_lsn", "tailgate_xid", "tailgate_commit_time"])
        #expect(record.headers.prefix(7).map(\.stringValue) == ["1.0", "e1", "/commerce/sales%20order", "OrderPaid", "2000-01-01T00:00:01.500000Z",
                                                                 "o-1", "application/octet-stream"])
    }

    @Test func aCloudEventWithoutItsRequiredAttributesIsRejectedAndABackfillHasNoTime() throws {
        let router = OutboxRouter(configuration: try Self.configuration(Self.cloudEvents))
        guard case .reject(let why, _, _) = router.route(Self.row(["e1", "orders", "order", "o-1", nil, "\\x00"]), in: Self.context) else {
            Issue.record("published without ce_type"); return
        }
        #expect(why == "the CloudEvents type column event_type is NULL or empty (ce_type is required)")
        guard case .reject(let noSource, _, _) = router.route(Self.row(["e1", "orders", "", "o-1", "T", "\\x00"]), in: Self.context) else {
            Issue.record("published without ce_source"); return
        }
        #expect(noSource.contains("source column aggregate_type is NULL or empty"))
        guard case .publish(let record) = router.route(Self.row(["e1", "orders", "order", "o-1", "T", "\\x00"]), in: Self.context) else {
            Issue.record("not published"); return
        }
        #expect(!record.headers.contains { $0.name == "ce_time" }, "no commit time known (a backfill): ce_time, an optional attribute, is left out")
    }

    @Test(arguments: [(UInt32(3802), "application/json"), (114, "application/json"), (17, "application/octet-stream"), (25, "text/plain; charset=utf-8")])
    func theContentTypeFollowsThePayloadColumnsType(oid: UInt32, expected: String) throws {
        let relation = Relation(id: 1, namespace: "public", name: "outbox_event", replicaIdentity: .default, columns: Self.relation.columns.map {
            $0.name == "payload" ? .init(isKey: false, name: "payload", typeOID: oid, typeModifier: -1) : $0
        })
        let router = OutboxRouter(configuration: try Self.configuration(Self.cloudEvents))
        let row = Row(relation: relation, values: ["e1", "orders", "order", "o-1", "T", oid == 17 ? "\\x00" : "{}"].map { .text(Array($0.utf8)) })
        guard case .publish(let record) = router.route(row, in: Self.context) else { Issue.record("not published"); return }
        #expect(record.headers.first { $0.name == "content-type" }?.stringValue == expected)
    }

    @Test func byteaPayloadsAreDecodedAndNullHeadersOmitted() throws {
        let router = OutboxRouter(configuration: try Self.configuration(#", "compatibility": "debezium""#))
        let routing = router.route(Self.row(["e1", "orders", nil, "o-1", "Paid", "\\x00ff7b"]), in: Self.context)
        guard case .publish(let record) = routing else { Issue.record("\(routing)"); return }
        #expect(record.topic == "orders")
        #expect(record.key == Array("o-1".utf8))
        #expect(record.value == [0x00, 0xFF, 0x7B])
        #expect(record.headers.map(\.name) == ["event_id", "event_type", "tailgate_lsn", "tailgate_xid", "tailgate_commit_time", "id"])
        #expect(record.headers.map(\.stringValue) == ["e1", "Paid", "0/16B3748", "777", "0", "e1"], "no commit time known here: 0")
    }

    @Test func templatesAndFixedTopicsRoute() throws {
        let templated = OutboxRouter(configuration: try Self.configuration(topic: #"{"column": "aggregate_type", "template": "${value}-events"}"#))
        guard case .publish(let record) = templated.route(Self.row(["e", nil, "order", "k", "T", "\\x7b7d"]), in: Self.context) else {
            Issue.record("not published"); return
        }
        #expect(record.topic == "order-events")
        let fixed = OutboxRouter(configuration: try Self.configuration(topic: #"{"name": "everything"}"#))
        guard case .publish(let one) = fixed.route(Self.row(["e", "ignored", nil, "k", "T", "\\x"]), in: Self.context) else {
            Issue.record("not published"); return
        }
        #expect(one.topic == "everything" && one.value == [])
    }

    @Test(arguments: [
        (["", "t", nil, "k", "T", "\\x00"], "event id column id is NULL or empty"),
        ([nil, "t", nil, "k", "T", "\\x00"], "event id column id is NULL or empty"),
        (["e", "t", nil, nil, "T", "\\x00"], "key column aggregate_id is NULL"),
        (["e", "t", nil, "k", "T", nil], "payload column payload is NULL"),
        (["e", "t", nil, "k", "T", "\\xZZ"], "payload column payload is NULL or not valid"),
        (["e", "", nil, "k", "T", "\\x00"], "topic column topic is NULL or empty"),
        (["e", "bad topic!", nil, "k", "T", "\\x00"], "is not a valid Kafka topic name"),
    ] as [([String?], String)])
    func unpublishableRowsAreRejectedWithAReason(values: [String?], reason: String) throws {
        let router = OutboxRouter(configuration: try Self.configuration())
        guard case .reject(let why, _, let deadLetter) = router.route(Self.row(values), in: Self.context) else {
            Issue.record("published"); return
        }
        #expect(why.contains(reason), "\(why)")
        #expect(deadLetter?.topic == "dlq")
        #expect(deadLetter?.headers.last == KafkaHeader(name: "tailgate_error", string: why))
    }

    @Test func oversizedRecordsAreDeadLetteredWithAReferenceInsteadOfThePayload() throws {
        let router = OutboxRouter(configuration: try Self.configuration(), maxRecordBytes: 1_000)
        let hex = "\\x" + String(repeating: "ab", count: 5_000)
        guard case .reject(let reason, let eventID, let deadLetter?) = router.route(Self.row(["big", "t", nil, "k", "T", hex]), in: Self.context) else {
            Issue.record("not rejected"); return
        }
        #expect(reason.contains("over message.max.bytes"))
        #expect(eventID == "big")
        let reference = String(decoding: deadLetter.value ?? [], as: UTF8.self)
        #expect(reference.contains("\"event_id\":\"big\"") && reference.contains("\"payload_bytes\":5000"))
        #expect(deadLetter.approximateSize < 1_000)
    }

    @Test func aRelationWithoutAConfiguredColumnIsASchemaChange() throws {
        let router = OutboxRouter(configuration: try Self.configuration())
        try router.validate(Self.relation)
        var changed = Self.relation
        changed.columns.removeAll { $0.name == "event_type" }
        let error = #expect(throws: ConnectorError.self) { try router.validate(changed) }
        #expect(error?.code == .schemaChanged && error?.message.contains("event_type") == true)
    }
}
