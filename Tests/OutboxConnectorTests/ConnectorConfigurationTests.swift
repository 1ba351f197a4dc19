import Foundation
import LibPQ
import OutboxConnector
import Testing

@Suite struct ConnectorConfigurationTests {
    static var shippedFile: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("connectors/commerce-outbox.json").path
    }

    @Test func theShippedFileLoadsWithEnvironmentSubstitution() throws {
        let configuration = try ConnectorConfiguration.load(path: Self.shippedFile, environment: ["PGHOST": "db.internal", "KAFKA_BOOTSTRAP": "k1:9092"])
        #expect(configuration.conninfo == "host='db.internal' port='5432' dbname='commerce' user='tailgate'")
        #expect(configuration.kafka["bootstrap.servers"] == "k1:9092")
        #expect(configuration.kafka["compression.type"] == "lz4")
        #expect(configuration.table == QualifiedName(schema: "public", name: "outbox_event"))
        #expect(configuration.topic == .column("topic"))
        #expect(configuration.allowedTopics == ["order-events", "catalog-events"])
        #expect(configuration.headers.map(\.name) == ["event_type", "aggregate_type"])
        #expect(configuration.deadLetterTopic == "tailgate.dead-letter")
    }

    @Test func aSubstitutedValueCannotInjectConnectionParameters() throws {
        let configuration = try ConnectorConfiguration.load(path: Self.shippedFile, environment: ["PGHOST": "x' password='stolen sslmode=disable"])
        #expect(configuration.conninfo.hasPrefix("host='x\\' password=\\'stolen sslmode=disable' "))
    }

    @Test func passwordsAreMasked() {
        #expect(ConnectorConfiguration.mask("host=a password=hunter2 user=b") == "host=a password=*** user=b")
        #expect(ConnectorConfiguration.mask("host=a password='hu nter\\'2' user=b") == "host=a password=*** user=b")
        #expect(ConnectorConfiguration.mask("postgresql://tailgate:s3cret@db/commerce") == "postgresql://tailgate:***@db/commerce")
    }

    static func problems(_ json: String, environment: [String: String] = [:]) -> [String] {
        do {
            _ = try ConnectorConfiguration.parse(Data(json.utf8), environment: environment)
            return []
        } catch {
            return error.problems
        }
    }

    static let minimal = """
        {"name": "n", "postgres": {"conninfo": "dbname=x", "slot": "s", "publication": "p"},
         "outbox": {"table": "outbox", "topic": {"name": "events"}}, "kafka": {"bootstrap.servers": "k:9092"}}
        """

    @Test func aMinimalFileGetsDefaults() throws {
        let configuration = try ConnectorConfiguration.parse(Data(Self.minimal.utf8))
        #expect(configuration.eventIdColumn == "id" && configuration.keyColumn == "aggregate_id" && configuration.payloadColumn == "payload")
        #expect(configuration.createSlot && configuration.createPublication)
        #expect(configuration.deadLetterTopic == nil && configuration.heartbeatIntervalSeconds == 10)
        #expect(configuration.metricsListen == "127.0.0.1:9464")
    }

    @Test(arguments: ["[::1]:9464", "[::]:9464", "localhost:9464", "0.0.0.0:0"])
    func metricsListenTakesIPv4IPv6AndLocalhost(listen: String) throws {
        let text = Self.minimal.replacingOccurrences(of: #""kafka": {"#, with: #""metrics": {"listen": "\#(listen)"}, "kafka": {"#)
        #expect(try ConnectorConfiguration.parse(Data(text.utf8)).metricsListen == listen)
    }

    @Test(arguments: [
        (#"{"name": 5}"#, "$.name: must be a string, not a number"),
        (#"{"nmae": "x"}"#, "$.nmae: unknown key"),
        (#"{"postgres": null}"#, "$.postgres: missing"),
        (#"{"postgres": {"slot": "Bad-Slot"}}"#, "$.postgres.slot: 'Bad-Slot' is not a valid slot name"),
        (#"{"postgres": {"slot": "x\"; DROP TABLE t; --"}}"#, "is not a valid slot name"),
        (#"{"postgres": {"publication": "p; DROP TABLE t"}}"#, "$.postgres.publication: 'p; DROP TABLE t' is not a valid name"),
        (#"{"postgres": {"createSlot": "yes"}}"#, "$.postgres.createSlot: must be true or false, not a string"),
        (#"{"postgres": {"conninfo": "host=${env:NOPE}"}}"#, "environment variable NOPE is not set"),
        (#"{"outbox": {"table": "a.b.c"}}"#, "$.outbox.table: 'a.b.c' is not a table name"),
        (#"{"outbox": {"topic": {"column": "t", "name": "x"}}}"#, "$.outbox.topic: write one of"),
        (#"{"outbox": {"topic": {"column": "t", "template": "static"}}}"#, "must contain ${value}"),
        (#"{"outbox": {"headers": {"event_id": "id"}}}"#, "is a header Tailgate sets itself"),
        (#"{"outbox": {"allowedTopics": "order-events"}}"#, "must be a list of strings"),
        (#"{"kafka": {"bootstrap.servers": null}}"#, "missing \"bootstrap.servers\""),
        (#"{"heartbeatIntervalSeconds": -1}"#, "-1 is out of range"),
        (#"{"heartbeatIntervalSeconds": 1.5}"#, "must be a whole number"),
        (#"{"metrics": {"listen": "nowhere"}}"#, "is not host:port"),
        (#"{"compatibility": "kafka-connect"}"#, "the only value is \"debezium\""),
        (#"[1, 2]"#, "$: must be an object"),
        (#"{"name": "n",,}"#, "not valid JSON"),
    ])
    func eachProblemNamesItsPathAndTheFix(patch: String, expected: String) throws {
        // Apply the patch over the minimal document: nested objects merge one level, null removes a key.
        var document = try JSONSerialization.jsonObject(with: Data(Self.minimal.utf8)) as! [String: Any]
        var problems: [String]
        if let data = patch.data(using: .utf8), let patchObject = try? JSONSerialization.jsonObject(with: data) as? [String: Any] {
            for (key, value) in patchObject {
                if value is NSNull {
                    document.removeValue(forKey: key)
                } else if var nested = document[key] as? [String: Any], let replacement = value as? [String: Any] {
                    nested.merge(replacement) { $1 }
                    for (nestedKey, nestedValue) in replacement where nestedValue is NSNull { nested.removeValue(forKey: nestedKey) }
                    document[key] = nested
                } else {
                    document[key] = value
                }
            }
            let text = String(decoding: try JSONSerialization.data(withJSONObject: document), as: UTF8.self)
            problems = Self.problems(text)
        } else {
            problems = Self.problems(patch)
        }
        #expect(problems.contains { $0.contains(expected) }, "expected “\(expected)” in \(problems)")
    }

    @Test func everyProblemIsReportedAtOnce() {
        let problems = Self.problems(#"{"name": 1, "postgres": {"slot": "A"}, "outbox": {}, "kafka": [], "extra": true}"#)
        #expect(problems.count >= 6, "\(problems)")
    }
}
