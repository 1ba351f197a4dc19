import Foundation
import LibPQ
import OutboxConnector

/// `tailgate status`: is the slot holding WAL, how far behind is each consumer group, did anything need action.
enum StatusCommand {
    static let usage = """
        tailgate status --config FILE [--consumer-postgres CONNINFO …] [--json]
                        [--bootstrap SERVERS] [--consumer-topics T,T] [--offsets-table NAME] [--inbox-table NAME]
                        [--parked-table NAME]
                        [--standby CONNINFO] [--metrics HOST:PORT|none] [--url http://HOST:PORT]
                        [--max-lag-bytes N] [--max-lag-seconds S] [--max-retained-bytes N]
                        [--max-consumer-lag N] [--max-stall-seconds S]

          Reads, and changes nothing: the connector's slot (active and by which process, wal_status, invalidation
          reason, retained WAL and lag in bytes and time), publication coverage, failover readiness (PostgreSQL 17+;
          with --standby, the slot's synchronized copy there), the running connector's /metrics (streaming, last
          heartbeat; metrics.listen unless --metrics), and for each --consumer-postgres database every consumer
          group's stored offsets against Kafka's end offsets (lag per partition; Kafka from --bootstrap or the
          connector file), dead-lettered and parked counts. The running connector's GET /status (state, since
          when, next attempt or failure, confirmed and acknowledged positions, records in flight, Kafka
          reachability, last error) is shown beside the slot: --url http://HOST:PORT names where it answers
          (same as --metrics HOST:PORT). A group's topics are those it stored offsets for plus
          --consumer-topics (name them: a topic a group never applied a record of leaves no row). A table, or JSON
          with --json.

          Exit codes: 0 nothing needs action; 1 something could not be checked; 2 needs attention (slot inactive,
          lag or retained WAL over its threshold, wal_status extended, consumer lag or no progress, dead letters,
          parked keys, failover not ready); 3 critical (slot missing, invalidated or unreserved, publication not
          capturing the outbox). 64 bad usage. The highest applies.

          Thresholds (defaults): --max-lag-bytes 67108864, --max-lag-seconds 60, --max-retained-bytes 1073741824,
          --max-consumer-lag 1000, --max-stall-seconds 300.
        """

    static func run(_ words: [String]) async throws -> Int32 {
        let arguments = try CommandLineArguments(
            words,
            options: ["config", "consumer-postgres", "consumer-topics", "bootstrap", "offsets-table", "inbox-table", "parked-table",
                      "standby", "metrics", "url",
                      "max-lag-bytes", "max-lag-seconds", "max-retained-bytes", "max-consumer-lag", "max-stall-seconds"],
            flags: ["json"], repeatable: ["consumer-postgres"])
        guard let path = arguments.options["config"] else { throw UsageError("--config FILE is required") }
        let configuration = try ConnectorConfiguration.load(path: path)

        var thresholds = StatusReport.Thresholds()
        thresholds.lagBytes = Int64(try arguments.positiveInt("max-lag-bytes", default: Int(thresholds.lagBytes)))
        thresholds.lagSeconds = try arguments.positiveDouble("max-lag-seconds", default: thresholds.lagSeconds)
        thresholds.retainedWALBytes = Int64(try arguments.positiveInt("max-retained-bytes", default: Int(thresholds.retainedWALBytes)))
        thresholds.consumerLag = Int64(try arguments.positiveInt("max-consumer-lag", default: Int(thresholds.consumerLag)))
        thresholds.consumerStallSeconds = try arguments.positiveDouble("max-stall-seconds", default: thresholds.consumerStallSeconds)

        var tables = ConsumerGroupStatus.Tables.defaults
        for (option, keyPath) in [("offsets-table", \ConsumerGroupStatus.Tables.offsets), ("inbox-table", \.inbox), ("parked-table", \.parked)] {
            guard let text = arguments.options[option] else { continue }
            guard let name = QualifiedName(parsing: text) else { throw UsageError("--\(option) '\(text)' is not a table name; write e.g. tailgate_offsets or schema.table") }
            tables[keyPath: keyPath] = name
        }
        var consumerKafka: [String: String]?
        if let bootstrap = arguments.options["bootstrap"] {
            var kafka = configuration.kafka
            kafka["bootstrap.servers"] = bootstrap
            consumerKafka = kafka
        }
        var metrics = arguments.options["metrics"] ?? configuration.metricsListen
        if let url = arguments.options["url"] {
            guard let parts = URLComponents(string: url), parts.scheme == "http", let host = parts.host, let port = parts.port,
                  parts.path.isEmpty || parts.path == "/" else {
                throw UsageError("--url '\(url)' is not http://HOST:PORT; e.g. --url http://127.0.0.1:9464")
            }
            metrics = "\(host):\(port)"
        }
        let targets = StatusReport.Targets(
            consumerDatabases: arguments.lists["consumer-postgres"] ?? [], consumerKafka: consumerKafka, consumerTables: tables,
            consumerTopics: (arguments.options["consumer-topics"] ?? "").split(separator: ",").map(String.init),
            standby: arguments.options["standby"], metricsAddress: metrics == "none" ? nil : metrics)
        let report = await StatusReport.gather(configuration: configuration, targets: targets, thresholds: thresholds)
        Output.line(arguments.flags.contains("json") ? try report.json() : report.table())
        return report.exitCode
    }
}
