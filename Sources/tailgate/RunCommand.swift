import Dispatch
import Foundation
import Observability
import OutboxConnector

/// `tailgate run`: the connector in the foreground until SIGTERM/SIGINT.
enum RunCommand {
    static let usage = """
        tailgate run --config FILE [--log-format logfmt|json] [--log-level debug|info|warning|error]
                     [--state-dir DIR] [--shutdown-timeout SECONDS] [--status-interval SECONDS]
                     [--receive-timeout SECONDS] [--kafka-timeout SECONDS] [--hold-failed SECONDS]

          Streams inserted outbox rows from PostgreSQL logical replication to Kafka, as FILE describes
          (see connectors/README.md). WAL is confirmed to PostgreSQL only behind Kafka's acknowledgements.
          SIGTERM or SIGINT: stop reading, wait for in-flight records (up to --shutdown-timeout, default 30),
          confirm what Kafka acknowledged, exit 0; past the deadline, purge, confirm nothing more, exit 1.
          Which slots this connector used is recorded in the source database (tailgate_connector_slot beside the
          outbox table), so that a slot dropped later stops the connector instead of being re-created silently,
          even in a fresh container (a role that may not create that table keeps it in the compacted Kafka topic
          tailgate.connector-slots); --state-dir (default .tailgate-state) is only read for an older record
          (migrated automatically) and written when neither the table nor Kafka can take it.
          --status-interval (default 10) is how often the position is reported to PostgreSQL without news;
          a newly confirmed position is reported within a second regardless. Keep it below wal_sender_timeout.
          --receive-timeout (default 30): like wal_receiver_timeout, the replication connection counts as lost
          after this long without a message from the server (a reply is asked for after half of it). Keep it
          below the server's wal_sender_timeout (60 s by default).
          --kafka-timeout (default 30): /healthz answers 503 once no Kafka broker has been reachable, or records
          have waited without an acknowledgement, for longer than this.
          --hold-failed (default 0): after an error retrying cannot fix, keep answering GET /status with FAILED
          (and /healthz with 503) this long before exiting 1, so that it can be read; SIGTERM ends the wait.
          PostgreSQL unreachable, at start or later, is waited out with backoff (/healthz: 503 meanwhile).
          metrics.listen serves GET /metrics (Prometheus), GET /healthz (200 while streaming with Kafka reachable
          and acknowledging, else 503) and GET /status (JSON: RUNNING, WAITING, STOPPING or FAILED, positions,
          records in flight, Kafka reachability, the last error).
        """

    static func run(_ words: [String]) throws -> Never {
        let arguments = try CommandLineArguments(words, options: ["config", "log-format", "log-level", "state-dir", "shutdown-timeout", "status-interval",
                                                                      "receive-timeout", "kafka-timeout", "hold-failed"])
        guard let path = arguments.options["config"] else { throw UsageError("--config FILE is required; e.g. tailgate run --config connectors/commerce-outbox.json") }
        let logger = try makeLogger(arguments)
        let configuration = try ConnectorConfiguration.load(path: path)
        var options = Connector.Options(
            stateDirectory: arguments.options["state-dir"] ?? ".tailgate-state",
            shutdownTimeout: .seconds(try arguments.positiveInt("shutdown-timeout", default: 30)),
            statusInterval: .seconds(try arguments.positiveInt("status-interval", default: 10)),
            receiveTimeout: .seconds(try arguments.positiveInt("receive-timeout", default: 30)),
            kafkaTimeout: .seconds(try arguments.positiveInt("kafka-timeout", default: 30)))
        if arguments.options["hold-failed"] != nil { options.failedStatusHold = .seconds(try arguments.positiveInt("hold-failed", default: 0)) }
        let connector = Connector(configuration: configuration, options: options, logger: logger)
        let signals = ShutdownSignals { signal in
            logger.info("shutdown_requested", ("signal", signal.name))
            connector.requestStop()
        }
        Task {
            do {
                try await connector.run()
                exit(0)
            } catch {
                logger.error("stopped_with_error", ("error", "\(error)"))
                exit(1)
            }
        }
        withExtendedLifetime(signals) { dispatchMain() }
    }

    static func makeLogger(_ arguments: CommandLineArguments) throws -> EventLogger {
        guard let format = EventLogger.Format(rawValue: arguments.options["log-format"] ?? "logfmt") else {
            throw UsageError("--log-format must be logfmt or json")
        }
        guard let level = EventLogger.Level(name: arguments.options["log-level"] ?? "info") else {
            throw UsageError("--log-level must be debug, info, warning or error")
        }
        return EventLogger(minimumLevel: level, format: format)
    }
}
