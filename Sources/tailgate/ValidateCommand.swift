import Foundation
import Observability
import OutboxConnector

/// `tailgate validate`: checks a connector file, and with `--connect` the database, without starting.
enum ValidateCommand {
    static let usage = """
        tailgate validate --config FILE [--connect]

          Checks FILE: unknown keys, wrong types, missing fields, bad names, unset ${env:...} variables; every
          problem is listed with its JSON path. With --connect it also checks the database: wal_level, the
          REPLICATION attribute, the outbox table, its columns and primary key, and the publication. It changes
          nothing. Exits 0 when ready, 1 otherwise.
        """

    static func run(_ words: [String]) async throws -> Int32 {
        let arguments = try CommandLineArguments(words, options: ["config"], flags: ["connect"])
        guard let path = arguments.options["config"] else { throw UsageError("--config FILE is required") }
        let configuration: ConnectorConfiguration
        do {
            configuration = try ConnectorConfiguration.load(path: path)
        } catch {
            Output.line("\(path): \(error)")
            return 1
        }
        Output.line("\(path): configuration ok (connector \(configuration.name), postgres \(configuration.maskedConninfo))")
        guard arguments.flags.contains("connect") else { return 0 }
        let problems = await Connector(configuration: configuration, logger: EventLogger(minimumLevel: .error)).validateDatabase()
        if problems.isEmpty {
            Output.line("\(path): database ok")
            return 0
        }
        Output.line("\(path): the database is not ready:")
        for problem in problems { Output.line("  - \(problem)") }
        return 1
    }
}
