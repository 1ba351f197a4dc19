import Foundation
import LibPQ

/// A connector JSON file (`connectors/NAME.json`), validated.
///
/// Every problem is reported at once, each naming its JSON path and what to write instead; see
/// ``ConfigurationError``. `${env:NAME}` and `${env:NAME:-default}` are replaced in every string.
public struct ConnectorConfiguration: Sendable {
    /// How a row's topic is chosen.
    public enum TopicRule: Hashable, Sendable {
        /// The value of a column is the topic.
        case column(String)
        /// The value of a column fills `${value}` in a template, e.g. `${value}-events`.
        case template(column: String, template: String)
        /// One fixed topic.
        case fixed(String)
    }

    /// The connector's name, used in logs and as the Kafka `client.id`.
    public var name: String
    /// The libpq connection string, after substitution. Never log it: see ``maskedConninfo``.
    public var conninfo: String
    /// Where the connector writes (heartbeats, the publication's creation) when ``conninfo`` names a physical
    /// standby that it decodes on (PostgreSQL 16+); `nil` when the conninfo is the primary. Never log it: see
    /// ``maskedPrimaryConninfo``.
    public var primaryConninfo: String? = nil
    /// The logical replication slot.
    public var slot: String
    /// The publication.
    public var publication: String
    /// Create the slot if it does not exist.
    public var createSlot: Bool
    /// Create the publication (on the outbox table only, inserts only) if it does not exist.
    public var createPublication: Bool
    /// Create the slot with `FAILOVER` so that standbys keep a synchronized copy (PostgreSQL 17+). `nil` (the
    /// default): on where the server supports it; `true` against an older server is a setup error.
    public var failover: Bool?
    /// The outbox table.
    public var table: QualifiedName
    /// The column holding the event id.
    public var eventIdColumn: String
    /// The column whose text is the record key.
    public var keyColumn: String
    /// The column holding the payload.
    public var payloadColumn: String
    /// How the topic is chosen.
    public var topic: TopicRule
    /// With a column-routed topic, the topics rows may name; others are dead-lettered.
    public var allowedTopics: Set<String>?
    /// Header name → column, in the order the headers are added.
    public var headers: [(name: String, column: String)]
    /// The column holding a W3C `traceparent`, published as the `traceparent` header; `nil` for none.
    public var traceColumn: String? = nil
    /// The column holding a W3C `tracestate`, published as the `tracestate` header with a valid `traceparent`.
    public var traceStateColumn: String? = nil
    /// librdkafka producer properties.
    public var kafka: [String: String]
    /// Where rows that cannot become records go; `nil` stops the connector instead.
    public var deadLetterTopic: String?
    /// How often to emit a heartbeat logical message while the outbox is quiet.
    public var heartbeatIntervalSeconds: Int
    /// Records produced and not yet acknowledged, at most (back-pressure beyond).
    public var maxInFlightRecords: Int
    /// Where `/metrics` and `/healthz` listen, `host:port` (an IPv4 address, `localhost` or `[IPv6]`, see `ListenAddress`); `nil` for none.
    public var metricsListen: String?
    /// Also emit Debezium's `id` header.
    public var debeziumCompatible: Bool
    /// With `"format": "cloudevents"`, how rows fill the CloudEvents attributes (binary mode headers); `nil` for
    /// Tailgate's own record layout alone.
    public var cloudEvents: CloudEventsMapping? = nil

    /// The connection string with any password replaced by `***`, for logs.
    public var maskedConninfo: String { Self.mask(conninfo) }

    /// ``primaryConninfo`` with any password replaced by `***`, for logs.
    public var maskedPrimaryConninfo: String? { primaryConninfo.map(Self.mask) }

    /// Replaces `password=…` values (quoted or not) and URI passwords with `***`.
    public static func mask(_ conninfo: String) -> String {
        var text = conninfo
        if let expression = try? NSRegularExpression(pattern: #"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)"#, options: [.caseInsensitive]) {
            text = expression.stringByReplacingMatches(in: text, range: NSRange(text.startIndex..., in: text), withTemplate: "$1***")
        }
        if let uri = try? NSRegularExpression(pattern: #"(postgres(?:ql)?://[^:/@\s]*:)[^@\s]*@"#) {
            text = uri.stringByReplacingMatches(in: text, range: NSRange(text.startIndex..., in: text), withTemplate: "$1***@")
        }
        return text
    }

    /// The topics known before any row arrives: the fixed topic, the allowed topics and the dead-letter topic.
    var knownTopics: [String] {
        var topics = Array(allowedTopics ?? []).sorted()
        if case .fixed(let name) = topic { topics.append(name) }
        if let deadLetterTopic { topics.append(deadLetterTopic) }
        return topics
    }
}

/// Everything wrong with a connector file, one line per problem.
public struct ConfigurationError: Error, Sendable, CustomStringConvertible {
    /// Each problem: the JSON path and what to do.
    public var problems: [String]
    public var description: String {
        "invalid connector configuration:\n" + problems.map { "  - \($0)" }.joined(separator: "\n")
    }
}
