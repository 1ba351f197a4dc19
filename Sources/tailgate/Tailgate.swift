import Foundation

/// The `tailgate` command: argument parsing and wiring only.
@main
enum Tailgate {
    static let usage = """
        tailgate: change-data-capture from a PostgreSQL outbox table to Kafka.

        Usage:
          tailgate run --config FILE        stream outbox rows to Kafka (see 'tailgate help run')
          tailgate validate --config FILE [--connect [--standby CONNINFO]]
                                            check a connector file (and the database) without starting
          tailgate backfill --config FILE [--where SQL] [--create-slot]
                                            publish rows already in the outbox (cut-over, incidents)
          tailgate status --config FILE [--consumer-postgres CONNINFO …] [--json]
                                            slot, lag, consumer groups; exit code says whether action is needed
          tailgate dead-letters list|replay …
                                            inspect dead-lettered events, re-publish them after a fix
          tailgate parked list|release …    keys a consumer parked after a poison event; apply them after a fix
          tailgate dev-kafka [--brokers N] [--partitions N] [--topics a,b]
                             run an in-memory Kafka (librdkafka mock cluster) for development
          tailgate help [COMMAND]   show this help, or a command's

        """

    static func main() {
        var words = Array(CommandLine.arguments.dropFirst())
        let command = words.isEmpty ? "help" : words.removeFirst()
        do {
            switch command {
            case "run":
                if words.contains("--help") { Output.line(RunCommand.usage); return }
                try RunCommand.run(words)
            case "validate":
                if words.contains("--help") { Output.line(ValidateCommand.usage); return }
                let arguments = words
                runAsync { try await ValidateCommand.run(arguments) }
            case "backfill":
                if words.contains("--help") { Output.line(BackfillCommand.usage); return }
                let arguments = words
                runAsync { try await BackfillCommand.run(arguments) }
            case "status":
                if words.contains("--help") { Output.line(StatusCommand.usage); return }
                let arguments = words
                runAsync { try await StatusCommand.run(arguments) }
            case "dead-letters":
                if words.contains("--help") { Output.line(DeadLettersCommand.usage); return }
                let arguments = words
                runAsync { try await DeadLettersCommand.run(arguments) }
            case "parked":
                if words.contains("--help") { Output.line(ParkedCommand.usage); return }
                let arguments = words
                runAsync { try await ParkedCommand.run(arguments) }
            case "dev-kafka":
                if words.contains("--help") { Output.line(DevKafkaCommand.usage); return }
                try DevKafkaCommand.run(words)
            case "help", "--help", "-h":
                switch words.first {
                case "dev-kafka": Output.line(DevKafkaCommand.usage)
                case "run": Output.line(RunCommand.usage)
                case "validate": Output.line(ValidateCommand.usage)
                case "backfill": Output.line(BackfillCommand.usage)
                case "dead-letters": Output.line(DeadLettersCommand.usage)
                case "parked": Output.line(ParkedCommand.usage)
                case "status": Output.line(StatusCommand.usage)
                default: Output.line(usage)
                }
            default:
                throw UsageError("unknown command '\(command)'; run 'tailgate help'")
            }
        } catch {
            fail(error)
        }
    }

    static func fail(_ error: any Error) -> Never {
        Output.error("tailgate: \(error)")
        exit(error is UsageError ? 64 : 1)
    }

    /// Runs an async command to completion and exits with its status.
    static func runAsync(_ body: @escaping @Sendable () async throws -> Int32) -> Never {
        Task {
            do {
                exit(try await body())
            } catch {
                fail(error)
            }
        }
        dispatchMain()
    }
}
