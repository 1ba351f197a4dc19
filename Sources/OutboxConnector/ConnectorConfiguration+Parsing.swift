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
        var reader = JSONReader(environment: environment)
        let root: JSONValue
        do {
            (root, reader.locations) = try JSONParser.parseLocated(data)
        } catch {
            if let path = error.path {
                reader.problem(path, "\(error.message) (line \(error.line), column \(error.column))")
            } else {
                reader.problem("not valid JSON", error.description)
            }
            throw ConfigurationError(problems: reader.problems)
        }
        guard let top = reader.object(root, at: "$") else { throw ConfigurationError(problems: reader.problems) }
        reader.allowOnly(["name", "postgres", "outbox", "kafka", "deadLetterTopic", "heartbeatIntervalSeconds", "metrics",
                          "maxInFlightRecords", "compatibility", "format", "cloudEvents"], in: top, at: "$")
        let name = reader.string(top["name"], at: "$.name", required: true, pattern: .name) ?? ""

        let postgres = reader.object(top["postgres"], at: "$.postgres", required: true) ?? .object([])
        reader.allowOnly(["conninfo", "primaryConninfo", "slot", "publication", "createSlot", "createPublication", "failover"], in: postgres, at: "$.postgres")
        let conninfo = reader.string(postgres["conninfo"], at: "$.postgres.conninfo", required: true,
                                     quote: EnvironmentSubstitution.conninfoQuote) ?? ""
        // Only for a conninfo naming a standby (checked at connect time, where it is known).
        let primaryConninfo = reader.string(postgres["primaryConninfo"], at: "$.postgres.primaryConninfo",
                                            quote: EnvironmentSubstitution.conninfoQuote)
        let slot = reader.string(postgres["slot"], at: "$.postgres.slot", required: true, pattern: .slot) ?? ""
        let publication = reader.string(postgres["publication"], at: "$.postgres.publication", required: true, pattern: .name) ?? ""
        let createSlot = reader.bool(postgres["createSlot"], at: "$.postgres.createSlot") ?? true
        let createPublication = reader.bool(postgres["createPublication"], at: "$.postgres.createPublication") ?? true
        // Absent: on where the server supports it (17+), decided at connect time.
        let failover = reader.bool(postgres["failover"], at: "$.postgres.failover")

        let outbox = reader.object(top["outbox"], at: "$.outbox", required: true) ?? .object([])
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
        // Two forms, both in file order: {"header": "column", …} or [{"name": "header", "column": "column"}, …].
        var entries: [(name: String?, namePath: String, column: String?)] = []
        switch outbox["headers"] {
        case nil: break
        case .object(let members)?:
            for member in members {
                let path = "$.outbox.headers.\(member.key)"
                entries.append((member.key, path, reader.string(member.value, at: path, pattern: .column)))
            }
        case .array(let elements)?:
            for (position, element) in elements.enumerated() {
                let path = "$.outbox.headers[\(position)]"
                guard let entry = reader.object(element, at: path) else { continue }
                reader.allowOnly(["name", "column"], in: entry, at: path)
                entries.append((reader.string(entry["name"], at: "\(path).name", required: true), "\(path).name",
                                reader.string(entry["column"], at: "\(path).column", required: true, pattern: .column)))
            }
        case let other?:
            reader.problem("$.outbox.headers", "must be an object ({ … }) or a list ([{\"name\": …, \"column\": …}]), not \(other.kind)")
        }
        var firstPath: [String: String] = [:]
        for entry in entries {
            guard let header = entry.name else { continue }
            if let earlier = firstPath[header] {
                reader.problem(entry.namePath, "'\(header)' is already a header (\(earlier)); each header appears once")
            } else if ["event_id", "tailgate_lsn", "tailgate_xid", "tailgate_error", "id"].contains(header) {
                reader.problem(entry.namePath, "'\(header)' is a header Tailgate sets itself; choose another name")
            } else if traceColumn != nil, ["traceparent", "tracestate"].contains(header.lowercased()) {
                reader.problem(entry.namePath, "'\(header)' comes from \"traceColumn\"/\"traceStateColumn\"; remove it from headers")
            }
            firstPath[header] = firstPath[header] ?? entry.namePath
            if let column = entry.column { headers.append((header, column)) }
        }

        var kafka: [String: String] = [:]
        if let kafkaObject = reader.object(top["kafka"], at: "$.kafka", required: true) {
            for member in kafkaObject.members {
                if let text = reader.scalarString(member.value, at: "$.kafka.\(member.key)") { kafka[member.key] = text }
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
            if metrics["listen"] == .null { metricsListen = nil } else if let listen = reader.string(metrics["listen"], at: "$.metrics.listen") {
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
        let cloudEvents = Self.cloudEvents(top, headers: headers.map(\.name), reader: &reader)
        guard reader.problems.isEmpty, let table else { throw ConfigurationError(problems: reader.problems) }
        var configuration = ConnectorConfiguration(
            name: name, conninfo: conninfo, primaryConninfo: primaryConninfo, slot: slot, publication: publication, createSlot: createSlot,
            createPublication: createPublication, failover: failover, table: table, eventIdColumn: eventIdColumn,
            keyColumn: keyColumn, payloadColumn: payloadColumn, topic: topic, allowedTopics: allowedTopics, headers: headers,
            traceColumn: traceColumn, traceStateColumn: traceStateColumn, kafka: kafka,
            deadLetterTopic: deadLetterTopic, heartbeatIntervalSeconds: heartbeat, maxInFlightRecords: maxInFlight,
            metricsListen: metricsListen, debeziumCompatible: debezium)
        configuration.cloudEvents = cloudEvents
        return configuration
    }

    /// `format` and `cloudEvents`: the CloudEvents mapping when the format is `cloudevents`.
    private static func cloudEvents(_ top: JSONValue, headers: [String], reader: inout JSONReader) -> CloudEventsMapping? {
        let format = reader.string(top["format"], at: "$.format") ?? "tailgate"
        guard format == "cloudevents" else {
            if format != "tailgate" {
                reader.problem("$.format", "'\(format)' is not a format; write \"cloudevents\" (CloudEvents binary mode headers) or leave it out")
            }
            if top["cloudEvents"] != nil {
                reader.problem("$.cloudEvents", "is read only with \"format\": \"cloudevents\"; add it or remove this object")
            }
            return nil
        }
        let example = #"e.g. "cloudEvents": {"source": "/commerce/orders", "typeColumn": "event_type"}"#
        guard let object = reader.object(top["cloudEvents"], at: "$.cloudEvents") else {
            if top["cloudEvents"] == nil { reader.problem("$.cloudEvents", "missing: \"format\": \"cloudevents\" needs a source and a type column, \(example)") }
            return nil
        }
        reader.allowOnly(["source", "sourceColumn", "typeColumn", "subjectColumn"], in: object, at: "$.cloudEvents")
        let source = reader.string(object["source"], at: "$.cloudEvents.source")
        let sourceColumn = reader.string(object["sourceColumn"], at: "$.cloudEvents.sourceColumn", pattern: .column)
        let typeColumn = reader.string(object["typeColumn"], at: "$.cloudEvents.typeColumn", pattern: .column)
        let subjectColumn = reader.string(object["subjectColumn"], at: "$.cloudEvents.subjectColumn", pattern: .column)
        if object["source"] == nil {
            reader.problem("$.cloudEvents.source", "missing: ce_source is required; write a URI reference naming the producer, e.g. \"/commerce/orders\", or a template with \"sourceColumn\", e.g. \"/commerce/${value}\"")
        }
        if object["typeColumn"] == nil {
            reader.problem("$.cloudEvents.typeColumn", "missing: ce_type is required; name the column holding the event type, e.g. \"event_type\"")
        }
        if let source {
            if let problem = CloudEventsMapping.uriReferenceProblem(source) {
                reader.problem("$.cloudEvents.source", problem)
            } else if sourceColumn != nil, !source.contains("${value}") {
                reader.problem("$.cloudEvents.source", "must contain ${value} with \"sourceColumn\", e.g. \"/commerce/${value}\"")
            } else if sourceColumn == nil, source.contains("${value}") {
                reader.problem("$.cloudEvents.source", "contains ${value}: add \"sourceColumn\" naming the column that fills it, or write a fixed source")
            }
        }
        for header in headers where header.lowercased().hasPrefix("ce_") || header.lowercased() == "content-type" {
            reader.problem("$.outbox.headers.\(header)", "'\(header)' is a CloudEvents header Tailgate sets with \"format\": \"cloudevents\"; choose another name")
        }
        guard let source, let typeColumn else { return nil }
        return CloudEventsMapping(source: source, sourceColumn: sourceColumn, typeColumn: typeColumn, subjectColumn: subjectColumn)
    }
}
