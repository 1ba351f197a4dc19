import Foundation
import Observability
import OutboxConnector

/// `tailgate validate`: checks a connector file, and with `--connect` the database, without starting.
enum ValidateCommand {
    static let usage = """
        tailgate validate --config FILE [--connect [--standby CONNINFO]]

          Checks FILE: unknown keys, wrong types, missing fields, bad names, unset ${env:...} variables; every
          problem is listed with its JSON path. With --connect it also checks the database: wal_level, the
          REPLICATION attribute, the outbox table, its columns and primary key, and the publication (that it
          publishes every mapped column of every row). With postgres.conninfo naming a standby to decode on
          (PostgreSQL 16+) it checks postgres.primaryConninfo, hot_standby_feedback, primary_slot_name and the
          primary's wal_level. It changes nothing. Exits 0 when ready, 1 otherwise.

          It also reports what a failover needs (PostgreSQL 17+: a failover slot, synchronized_standby_slots on
          the primary). With --standby CONNINFO (a standby that may be promoted) it checks the standby too
          (sync_replication_slots, hot_standby_feedback, primary_slot_name, dbname in primary_conninfo, the slot's
          synchronized copy), and a failover problem then makes it exit 1.
        """

    static func run(_ words: [String]) async throws -> Int32 {
        let arguments = try CommandLineArguments(words, options: ["config", "standby"], flags: ["connect"])
        guard let path = arguments.options["config"] else { throw UsageError("--config FILE is required") }
        let configuration: ConnectorConfiguration
        do {
            configuration = try ConnectorConfiguration.load(path: path)
        } catch {
            Output.line("\(path): \(error)")
            return 1
        }
        Output.line("\(path): configuration ok (connector \(configuration.name), postgres \(configuration.maskedConninfo))")
        let standby = arguments.options["standby"]
        guard arguments.flags.contains("connect") else {
            if standby != nil { throw UsageError("--standby needs --connect") }
            return 0
        }
        let connector = Connector(configuration: configuration, logger: EventLogger(minimumLevel: .error))
        let problems = await connector.validateDatabase()
        if problems.isEmpty {
            Output.line("\(path): database ok")
        } else {
            Output.line("\(path): the database is not ready:")
            for problem in problems { Output.line("  - \(problem)") }
        }
        let failover = await connector.validateFailover(standby: standby)
        for line in failover.ready { Output.line("\(path): failover ok: \(line)") }
        if !failover.problems.isEmpty {
            Output.line("\(path): failover \(standby == nil ? "notes" : "problems") (see the README's Failover):")
            for problem in failover.problems { Output.line("  - \(problem)") }
        }
        return problems.isEmpty && (standby == nil || failover.problems.isEmpty) ? 0 : 1
    }
}
