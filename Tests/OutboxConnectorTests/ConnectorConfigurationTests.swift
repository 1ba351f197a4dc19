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

    @Test func aPrimaryConninfoIsSubstitutedQuotedAndMasked() throws {
        let json = Self.minimal.replacingOccurrences(
            of: #""conninfo": "dbname=x""#,
            with: #""conninfo": "host=standby dbname=x", "primaryConninfo": "host=${env:PRIMARY} dbname=x password=s3cret""#)
        let configuration = try ConnectorConfiguration.parse(Data(json.utf8), environment: ["PRIMARY": "db1 sslmode=disable"])
        #expect(configuration.primaryConninfo == "host='db1 sslmode=disable' dbname=x password=s3cret")
        #expect(configuration.maskedPrimaryConninfo == "host='db1 sslmode=disable' dbname=x password=***")
        #expect(try ConnectorConfiguration.parse(Data(Self.minimal.utf8)).primaryConninfo == nil)
        #expect(Self.problems(Self.minimal.replacingOccurrences(of: #""slot": "s""#, with: #""slot": "s", "primaryConninfo": 5"#))
            .contains { $0.contains("$.postgres.primaryConninfo") })
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

    static func withOutbox(_ fields: String) -> String {
        Self.minimal.replacingOccurrences(of: #""topic": {"name": "events"}"#, with: #""topic": {"name": "events"}, "# + fields)
    }

    /// A header whose name also appears earlier in the file (`name`, `topic`, `postgres`) keeps its place in the file.
    @Test func headersKeepTheFileOrderWhateverTheirNames() throws {
        let text = Self.withOutbox(#""headers": {"event_type": "event_type", "topic": "t", "name": "n", "postgres": "p", "aggregate_type": "a"}"#)
        let configuration = try ConnectorConfiguration.parse(Data(text.utf8))
        #expect(configuration.headers.map(\.name) == ["event_type", "topic", "name", "postgres", "aggregate_type"])
        #expect(configuration.headers.map(\.column) == ["event_type", "t", "n", "p", "a"])
    }

    @Test func headersMayBeAnOrderedList() throws {
        let text = Self.withOutbox(#""headers": [{"name": "name", "column": "n"}, {"name": "event_type", "column": "event_type"}]"#)
        let configuration = try ConnectorConfiguration.parse(Data(text.utf8))
        #expect(configuration.headers.map(\.name) == ["name", "event_type"])
        #expect(configuration.headers.map(\.column) == ["n", "event_type"])
    }

    @Test(arguments: [
        (#"[{"name": "a", "column": "c"}, {"name": "a", "column": "d"}]"#, "$.outbox.headers[1].name: 'a' is already a header"),
        (#"[{"name": "a"}]"#, "$.outbox.headers[0].column: missing"),
        (#"[{"column": "c"}]"#, "$.outbox.headers[0].name: missing"),
        (#"[{"name": "a", "column": "c", "value": "x"}]"#, "$.outbox.headers[0].value: unknown key"),
        (#"["a"]"#, "$.outbox.headers[0]: must be an object"),
        (#"[{"name": "event_id", "column": "c"}]"#, "$.outbox.headers[0].name: 'event_id' is a header Tailgate sets itself"),
        (#"[{"name": "a", "column": "c d"}]"#, "$.outbox.headers[0].column: 'c d' is not a valid column name"),
        (#"{"a": "c", "a": "d"}"#, "$.outbox.headers.a: duplicate key"),
        (#""a""#, "$.outbox.headers: must be an object ({ … }) or a list ([{\"name\": …, \"column\": …}]), not a string"),
    ])
    func badHeadersNameTheEntry(headers: String, expected: String) {
        let problems = Self.problems(Self.withOutbox(#""headers": "# + headers))
        #expect(problems.contains { $0.contains(expected) }, "expected “\(expected)” in \(problems)")
    }

    /// A JSON `true` is a boolean and `1` is a number, whichever field reads them.
    @Test func booleansAreTrueOrFalseNotNumbers() throws {
        let one = Self.minimal.replacingOccurrences(of: #""slot": "s""#, with: #""slot": "s", "createSlot": 1"#)
        #expect(Self.problems(one).contains { $0.contains("$.postgres.createSlot: must be true or false, not a number") }, "\(Self.problems(one))")
        let no = Self.minimal.replacingOccurrences(of: #""slot": "s""#, with: #""slot": "s", "createSlot": false, "failover": true"#)
        let configuration = try ConnectorConfiguration.parse(Data(no.utf8))
        #expect(configuration.createSlot == false && configuration.failover == true)
        let heartbeat = Self.minimal.replacingOccurrences(of: #""name": "n""#, with: #""name": "n", "heartbeatIntervalSeconds": true"#)
        #expect(Self.problems(heartbeat).contains { $0.contains("$.heartbeatIntervalSeconds: must be a whole number, not a boolean") })
        let kafka = Self.minimal.replacingOccurrences(of: #""bootstrap.servers": "k:9092""#,
                                                      with: #""bootstrap.servers": "k:9092", "socket.nagle.disable": true, "linger.ms": 1"#)
        let properties = try ConnectorConfiguration.parse(Data(kafka.utf8)).kafka
        #expect(properties["socket.nagle.disable"] == "true" && properties["linger.ms"] == "1")
    }

    static func withCloudEvents(_ fields: String) -> String {
        Self.minimal.replacingOccurrences(of: #""name": "n""#, with: #""name": "n", "format": "cloudevents", "# + fields)
    }

    @Test func theCloudEventsFormatReadsASourceATypeColumnAndASubject() throws {
        let fixed = try ConnectorConfiguration.parse(Data(Self.withCloudEvents(
            #""cloudEvents": {"source": "urn:example:commerce", "typeColumn": "event_type", "subjectColumn": "aggregate_id"}"#).utf8))
        #expect(fixed.cloudEvents == CloudEventsMapping(source: "urn:example:commerce", typeColumn: "event_type", subjectColumn: "aggregate_id"))
        let templated = try ConnectorConfiguration.parse(Data(Self.withCloudEvents(
            #""cloudEvents": {"source": "/commerce/${value}", "sourceColumn": "aggregate_type", "typeColumn": "event_type"}"#).utf8))
        #expect(templated.cloudEvents?.sourceColumn == "aggregate_type" && templated.cloudEvents?.subjectColumn == nil)
        #expect(try ConnectorConfiguration.parse(Data(Self.minimal.utf8)).cloudEvents == nil, "no format: Tailgate's layout alone")
    }

    @Test(arguments: [
        (#""cloudEvents": {"typeColumn": "event_type"}"#, "$.cloudEvents.source: missing: ce_source is required"),
        (#""cloudEvents": {"source": "/s"}"#, "$.cloudEvents.typeColumn: missing: ce_type is required"),
        (#""cloudEvents": {"source": "/s", "typeColumn": "event type"}"#, "$.cloudEvents.typeColumn: 'event type' is not a valid column name"),
        (#""cloudEvents": {"source": "/my source", "typeColumn": "t"}"#, "$.cloudEvents.source: '/my source' is not a URI reference: '\u{20}' must be percent-encoded"),
        (#""cloudEvents": {"source": "/a%zz", "typeColumn": "t"}"#, "'%' must start a percent-encoded byte"),
        (#""cloudEvents": {"source": "1x:y", "typeColumn": "t"}"#, "'1x' before ':' is not a scheme"),
        (#""cloudEvents": {"source": "/s/${value}", "typeColumn": "t"}"#, "contains ${value}: add \"sourceColumn\""),
        (#""cloudEvents": {"source": "/s", "sourceColumn": "c", "typeColumn": "t"}"#, "must contain ${value} with \"sourceColumn\""),
        (#""cloudEvents": {"source": "/s", "typeColumn": "t", "dataschema": "x"}"#, "$.cloudEvents.dataschema: unknown key"),
        (#""cloudEvents": "yes""#, "$.cloudEvents: must be an object"),
        (#""compatibility": "debezium""#, "$.cloudEvents: missing: \"format\": \"cloudevents\" needs a source and a type column"),
    ])
    func cloudEventsProblemsNameTheFieldAndTheFix(fields: String, expected: String) {
        let problems = Self.problems(Self.withCloudEvents(fields))
        #expect(problems.contains { $0.contains(expected) }, "expected “\(expected)” in \(problems)")
    }

    /// A problem in a valid document names its line and column, as a syntax error does; a missing key, those of the
    /// object that lacks it.
    @Test func cloudEventsProblemsSayWhereInTheFile() {
        let text = """
            {"name": "n", "postgres": {"conninfo": "dbname=x", "slot": "s", "publication": "p"},
             "outbox": {"table": "outbox", "topic": {"name": "events"}}, "kafka": {"bootstrap.servers": "k:9092"},
             "format": "cloudevents",
             "cloudEvents": {
               "source": "/my source",
               "subjectColumn": "aggregate_id"}}
            """
        let problems = Self.problems(text)
        #expect(problems.contains { $0.hasPrefix("$.cloudEvents.source: '/my source' is not a URI reference") && $0.hasSuffix("(line 5, column 4)") }, "\(problems)")
        #expect(problems.contains { $0.hasPrefix("$.cloudEvents.typeColumn: missing") && $0.hasSuffix("(in $.cloudEvents at line 4, column 2)") }, "\(problems)")
    }

    @Test func cloudEventsHeadersAndKeysAreRefusedOutsideTheirPlace() {
        let clash = Self.withCloudEvents(#""cloudEvents": {"source": "/s", "typeColumn": "t"}"#)
            .replacingOccurrences(of: #""topic": {"name": "events"}"#, with: #""topic": {"name": "events"}, "headers": {"ce_type": "t"}"#)
        #expect(Self.problems(clash).contains { $0.contains("$.outbox.headers.ce_type: 'ce_type' is a CloudEvents header Tailgate sets") })
        let stray = Self.minimal.replacingOccurrences(of: #""name": "n""#, with: #""name": "n", "cloudEvents": {"source": "/s", "typeColumn": "t"}"#)
        #expect(Self.problems(stray).contains { $0.contains("$.cloudEvents: is read only with \"format\": \"cloudevents\"") })
        let unknown = Self.minimal.replacingOccurrences(of: #""name": "n""#, with: #""name": "n", "format": "avro""#)
        #expect(Self.problems(unknown).contains { $0.contains("$.format: 'avro' is not a format") })
    }

    @Test func everyProblemIsReportedAtOnce() {
        let problems = Self.problems(#"{"name": 1, "postgres": {"slot": "A"}, "outbox": {}, "kafka": [], "extra": true}"#)
        #expect(problems.count >= 6, "\(problems)")
    }
}
