import Foundation
import OutboxConnector

/// `tailgate backfill`: publishes rows already in the outbox table.
enum BackfillCommand {
    static let usage = """
        tailgate backfill --config FILE [--where SQL] [--create-slot] [--state-dir DIR]

          Publishes outbox rows already in the table with the same record layout and event_ids as the stream
          (tailgate_lsn is 0/0 and tailgate_xid 0 on backfilled records), so consumers de-duplicate any overlap.
          --where limits the rows with your own SQL condition, e.g. --where "created_at > now() - interval '1 day'".
          --create-slot creates the connector's slot first and reads the table in the snapshot the slot starts
          from: the exact cut-over from a poller (stop the poller, backfill --create-slot, then tailgate run).
          On a standby (PostgreSQL 16+, postgres.primaryConninfo set) the slot is created there, as tailgate run
          creates it, and the rows are read on the standby in that snapshot.
          Rows are published in created_at order when the table has that column, else in event id order.
        """

    static func run(_ words: [String]) async throws -> Int32 {
        let arguments = try CommandLineArguments(words, options: ["config", "where", "state-dir", "log-format", "log-level"],
                                                 flags: ["create-slot"])
        guard let path = arguments.options["config"] else { throw UsageError("--config FILE is required") }
        let logger = try RunCommand.makeLogger(arguments)
        let configuration = try ConnectorConfiguration.load(path: path)
        let count = try await Backfill(configuration: configuration, condition: arguments.options["where"],
                                       createSlot: arguments.flags.contains("create-slot"),
                                       stateDirectory: arguments.options["state-dir"] ?? ".tailgate-state", logger: logger).run()
        Output.line("backfilled \(count) record(s)")
        return 0
    }
}
