import Foundation
import LibPQ
import Observability
import RDKafka

extension ConnectorConfiguration {
    /// Reads and validates a connector file.
    ///
    /// - Throws: ``ConfigurationError`` listing every problem.
    public static func load(path: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws(ConfigurationError) -> ConnectorConfiguration {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigurationError(problems: ["cannot read '\(path)': check the path given to --config"])
        }
        return try parse(data, environment: environment)
    }

    /// Validates a connector document.
    ///
    /// - Throws: ``ConfigurationError`` listing every problem.
    public static func parse(_ data: Data, environment: [String: String] = [:]) throws(ConfigurationError) -> ConnectorConfiguration {
        guard data.count <= 1_048_576 else { throw ConfigurationError(problems: ["the file is larger than 1 MiB; a connector file is a few lines of JSON"]) }
        let root: Any
        do {
            root = try JSONSerialization.jsonObject(with: data)
        } catch {
            throw ConfigurationError(problems: ["not valid JSON: \((error as NSError).userInfo["NSDebugDescription"] ?? error)"])
        }
        var reader = JSONReader(environment: environment)
        guard let top = reader.object(root, at: "$") else { throw ConfigurationError(problems: reader.problems) }
        reader.allowOnly(["name", "postgres", "outbox", "kafka", "deadLetterTopic", "heartbeatIntervalSeconds", "metrics",
                          "maxInFlightRecords", "compatibility"], in: top, at: "$")
        let name = reader.string(top["name"], at: "$.name", required: true, pattern: .name) ?? ""

        let postgres = reader.object(top["postgres"], at: "$.postgres", required: true) ?? [:]
        reader.allowOnly(["conninfo", "slot", "publication", "createSlot", "createPublication", "failover"], in: postgres, at: "$.postgres")
        let conninfo = reader.string(postgres["conninfo"], at: "$.postgres.conninfo", required: true,
                                     quote: EnvironmentSubstitution.conninfoQuote) ?? ""
        let slot = reader.string(postgres["slot"], at: "$.postgres.slot", required: true, pattern: .slot) ?? ""
        let publication = reader.string(postgres["publication"], at: "$.postgres.publication", required: true, pattern: .name) ?? ""
        let createSlot = reader.bool(postgres["createSlot"], at: "$.postgres.createSlot") ?? true
        let createPublication = reader.bool(postgres["createPublication"], at: "$.postgres.createPublication") ?? true
        // Absent: on where the server supports it (17+), decided at connect time.
        let failover = reader.bool(postgres["failover"], at: "$.postgres.failover")

        let outbox = reader.object(top["outbox"], at: "$.outbox", required: true) ?? [:]
        reader.allowOnly(["table", "eventIdColumn", "keyColumn", "payloadColumn", "topic", "allowedTopics", "headers",
                          "traceColumn", "traceStateColumn"], in: outbox, at: "$.outbox")
        let tableText = reader.string(outbox["table"], at: "$.outbox.table", required: true) ?? ""
        let table = QualifiedName(parsing: tableText)
        if table == nil && !tableText.isEmpty {
            reader.problem("$.outbox.table", "'\(tableText)' is not a table name; write schema.table, e.g. \"public.outbox_event\"")
        }
        let eventIdColumn = reader.string(outbox["eventIdColumn"], at: "$.outbox.eventIdColumn", pattern: .column) ?? "id"
        let keyColumn = reader.string(outbox["keyColumn"], at: "$.outbox.keyColumn", pattern: .column) ?? "aggregate_id"
        let payloadColumn = reader.string(outbox["payloadColumn"], at: "$.outbox.payloadColumn", pattern: .column) ?? "payload"

        var topic = TopicRule.column("topic")
        if let topicObject = reader.object(outbox["topic"], at: "$.outbox.topic", required: true) {
            reader.allowOnly(["column", "template", "name"], in: topicObject, at: "$.outbox.topic")
            let column = reader.string(topicObject["column"], at: "$.outbox.topic.column", pattern: .column)
            let template = reader.string(topicObject["template"], at: "$.outbox.topic.template")
            let fixed = reader.string(topicObject["name"], at: "$.outbox.topic.name", pattern: .topic)
            switch (column, template, fixed) {
            case (let column?, nil, nil): topic = .column(column)
            case (let column?, let template?, nil):
                if !template.contains("${value}") {
                    reader.problem("$.outbox.topic.template", "must contain ${value}, e.g. \"${value}-events\"")
                }
                topic = .template(column: column, template: template)
            case (nil, nil, let fixed?): topic = .fixed(fixed)
            default:
                reader.problem("$.outbox.topic", "write one of {\"column\": \"topic\"}, {\"column\": \"aggregate_type\", \"template\": \"${value}-events\"} or {\"name\": \"events\"}")
            }
        }
        var allowedTopics: Set<String>?
        if let list = outbox["allowedTopics"] {
            allowedTopics = Set(reader.stringArray(list, at: "$.outbox.allowedTopics", pattern: .topic))
        }
        let traceColumn = reader.string(outbox["traceColumn"], at: "$.outbox.traceColumn", pattern: .column)
        let traceStateColumn = reader.string(outbox["traceStateColumn"], at: "$.outbox.traceStateColumn", pattern: .column)
        if traceStateColumn != nil && traceColumn == nil {
            reader.problem("$.outbox.traceStateColumn", "needs \"traceColumn\" too: a tracestate travels only with its traceparent")
        }
        var headers: [(name: String, column: String)] = []
        if let headerObject = reader.object(outbox["headers"], at: "$.outbox.headers") {
            for (header, column) in headerObject.sorted(by: { $0.key < $1.key }) {
                if ["event_id", "tailgate_lsn", "tailgate_xid", "tailgate_error", "id"].contains(header) {
                    reader.problem("$.outbox.headers.\(header)", "'\(header)' is a header Tailgate sets itself; choose another name")
                } else if traceColumn != nil, ["traceparent", "tracestate"].contains(header.lowercased()) {
                    reader.problem("$.outbox.headers.\(header)", "'\(header)' comes from \"traceColumn\"/\"traceStateColumn\"; remove it from headers")
                }
                if let column = reader.string(column, at: "$.outbox.headers.\(header)", pattern: .column) {
                    headers.append((header, column))
                }
            }
            // JSONSerialization loses key order; keep the file's order by position in the text.
            let text = String(decoding: data, as: UTF8.self)
            headers.sort { (text.range(of: "\"\($0.name)\"")?.lowerBound ?? text.endIndex) < (text.range(of: "\"\($1.name)\"")?.lowerBound ?? text.endIndex) }
        }

        var kafka: [String: String] = [:]
        if let kafkaObject = reader.object(top["kafka"], at: "$.kafka", required: true) {
            for (key, value) in kafkaObject {
                if let text = reader.scalarString(value, at: "$.kafka.\(key)") { kafka[key] = text }
            }
            // The delivery guarantees cannot be weakened: say so now, naming the property, not when streaming starts.
            do {
                _ = try ProducerConfiguration(properties: kafka).resolved()
            } catch {
                reader.problem("$.kafka", error.message)
            }
            if kafka["bootstrap.servers"] == nil {
                reader.problem("$.kafka", "missing \"bootstrap.servers\", e.g. \"bootstrap.servers\": \"${env:KAFKA_BOOTSTRAP:-localhost:9092}\"")
            }
        }
        let deadLetterTopic = reader.string(top["deadLetterTopic"], at: "$.deadLetterTopic", pattern: .topic)
        let heartbeat = reader.int(top["heartbeatIntervalSeconds"], at: "$.heartbeatIntervalSeconds", range: 0...3600) ?? 10
        let maxInFlight = reader.int(top["maxInFlightRecords"], at: "$.maxInFlightRecords", range: 1...1_000_000) ?? 10_000
        var metricsListen: String? = "127.0.0.1:9464"
        if let metrics = reader.object(top["metrics"], at: "$.metrics") {
            reader.allowOnly(["listen"], in: metrics, at: "$.metrics")
            if metrics["listen"] is NSNull { metricsListen = nil } else if let listen = reader.string(metrics["listen"], at: "$.metrics.listen") {
                do throws(MetricsServerError) {
                    _ = try ListenAddress(parsing: listen)
                } catch {
                    reader.problem("$.metrics.listen", error.reason)
                }
                metricsListen = listen
            }
        }
        var debezium = false
        if let compatibility = reader.string(top["compatibility"], at: "$.compatibility") {
            if compatibility == "debezium" { debezium = true } else {
                reader.problem("$.compatibility", "'\(compatibility)' is not supported; the only value is \"debezium\"")
            }
        }
        guard reader.problems.isEmpty, let table else { throw ConfigurationError(problems: reader.problems) }
        return ConnectorConfiguration(
            name: name, conninfo: conninfo, slot: slot, publication: publication, createSlot: createSlot,
            createPublication: createPublication, failover: failover, table: table, eventIdColumn: eventIdColumn,
            keyColumn: keyColumn, payloadColumn: payloadColumn, topic: topic, allowedTopics: allowedTopics, headers: headers,
            traceColumn: traceColumn, traceStateColumn: traceStateColumn, kafka: kafka,
            deadLetterTopic: deadLetterTopic, heartbeatIntervalSeconds: heartbeat, maxInFlightRecords: maxInFlight,
            metricsListen: metricsListen, debeziumCompatible: debezium)
    }
}

/// Walks a JSON value, collecting one problem per bad field.
struct JSONReader {
    enum Pattern {
        /// Slot names: lower-case letters, digits, underscores (PostgreSQL's rule), at most 63.
        case slot
        /// Publication and connector names: letters, digits, `_`, `-`, `.`, at most 63.
        case name
        /// Column names: anything printable but quotes are handled by quoting; at most 63 bytes.
        case column
        /// Kafka topic names: letters, digits, `.`, `_`, `-`, at most 249.
        case topic
    }

    let environment: [String: String]
    var problems: [String] = []

    init(environment: [String: String]) {
        self.environment = environment
    }

    /// Records a problem. A huge key or value is quoted only in part, so one bad file cannot flood a log.
    mutating func problem(_ path: String, _ message: String) {
        problems.append("\(Self.clip(path, 120)): \(Self.clip(message, 400))")
    }

    static func clip(_ text: String, _ limit: Int) -> String {
        text.count <= limit ? text : "\(text.prefix(limit))… (\(text.utf8.count) bytes)"
    }

    mutating func object(_ value: Any?, at path: String, required: Bool = false) -> [String: Any]? {
        guard let value else {
            if required { problem(path, "missing; see connectors/README.md for the fields") }
            return nil
        }
        guard let object = value as? [String: Any] else {
            problem(path, "must be an object ({ … }), not \(Self.kind(of: value))")
            return nil
        }
        return object
    }

    mutating func allowOnly(_ keys: Set<String>, in object: [String: Any], at path: String) {
        for key in object.keys.sorted() where !keys.contains(key) {
            problem("\(path).\(key)", "unknown key; the keys here are \(keys.sorted().joined(separator: ", "))")
        }
    }

    mutating func string(_ value: Any?, at path: String, required: Bool = false, pattern: Pattern? = nil,
                         quote: (String) -> String = { $0 }) -> String? {
        guard let value else {
            if required { problem(path, "missing") }
            return nil
        }
        guard let raw = value as? String, !(value is NSNumber) else {
            problem(path, "must be a string, not \(Self.kind(of: value))")
            return nil
        }
        let text: String
        do {
            text = try EnvironmentSubstitution.substitute(raw, environment: environment, quote: quote)
        } catch {
            problem(path, "environment variable \(error.name) is not set; set it or write ${env:\(error.name):-default}")
            return nil
        }
        if text.isEmpty {
            problem(path, "must not be empty")
            return nil
        }
        if text.utf8.count > 4096 {
            problem(path, "is \(text.utf8.count) bytes long; at most 4096")
            return nil
        }
        if let pattern, let message = Self.check(text, pattern) {
            problem(path, message)
            return nil
        }
        return text
    }

    mutating func stringArray(_ value: Any, at path: String, pattern: Pattern?) -> [String] {
        guard let array = value as? [Any] else {
            problem(path, "must be a list of strings ([\"a\", \"b\"]), not \(Self.kind(of: value))")
            return []
        }
        return array.enumerated().compactMap { string($1, at: "\(path)[\($0)]", pattern: pattern) }
    }

    mutating func scalarString(_ value: Any, at path: String) -> String? {
        if let number = value as? NSNumber {
            return Self.isBoolean(number) ? (number.boolValue ? "true" : "false") : number.stringValue
        }
        return string(value, at: path)
    }

    mutating func bool(_ value: Any?, at path: String) -> Bool? {
        guard let value else { return nil }
        guard let number = value as? NSNumber, Self.isBoolean(number) else {
            problem(path, "must be true or false, not \(Self.kind(of: value))")
            return nil
        }
        return number.boolValue
    }

    mutating func int(_ value: Any?, at path: String, range: ClosedRange<Int>) -> Int? {
        guard let value else { return nil }
        guard let number = value as? NSNumber, !Self.isBoolean(number), number.doubleValue == number.doubleValue.rounded() else {
            problem(path, "must be a whole number, not \(Self.kind(of: value))")
            return nil
        }
        guard let int = Int(exactly: number.doubleValue) else {
            problem(path, "\(number) is out of range; write a number from \(range.lowerBound) to \(range.upperBound)")
            return nil
        }
        guard range.contains(int) else {
            problem(path, "\(int) is out of range; write a number from \(range.lowerBound) to \(range.upperBound)")
            return nil
        }
        return int
    }

    static func check(_ text: String, _ pattern: Pattern) -> String? {
        func allowed(_ characters: (Unicode.Scalar) -> Bool) -> Bool { text.unicodeScalars.allSatisfy(characters) }
        switch pattern {
        case .slot:
            guard text.utf8.count <= 63, allowed({ ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "_" }) else {
                return "'\(text)' is not a valid slot name; use at most 63 lower-case letters, digits and underscores"
            }
        case .name:
            guard text.utf8.count <= 63, allowed({ $0.properties.isAlphabetic || ("0"..."9").contains($0) || "_-.".unicodeScalars.contains($0) }) else {
                return "'\(text)' is not a valid name; use at most 63 letters, digits, '_', '-' and '.'"
            }
        case .column:
            guard text.utf8.count <= 63, allowed({ !$0.properties.isWhitespace && $0.value >= 32 && $0 != "\"" }) else {
                return "'\(text)' is not a valid column name; use the column's name as in the table (at most 63 bytes, no quotes or spaces)"
            }
        case .topic:
            guard text.utf8.count <= 249, text != ".", text != "..",
                  allowed({ ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || "._-".unicodeScalars.contains($0) }) else {
                return "'\(text)' is not a valid Kafka topic name; use at most 249 letters, digits, '.', '_' and '-'"
            }
        }
        return nil
    }

    /// JSONSerialization hands booleans over as a boolean-flavoured NSNumber (and `1 is Bool` is true on Linux).
    static func isBoolean(_ value: Any) -> Bool {
        String(describing: type(of: value)).contains("Boolean")
    }

    static func kind(of value: Any) -> String {
        switch value {
        case is NSNull: "null"
        case let number as NSNumber: Self.isBoolean(number) ? "a boolean" : "a number"
        case is String: "a string"
        case is [Any]: "a list"
        case is [String: Any]: "an object"
        default: "\(type(of: value))"
        }
    }
}
