import Foundation

/// The `tailgate` command: argument parsing and wiring only.
@main
enum Tailgate {
    static let usage = """
        tailgate: change-data-capture from a PostgreSQL outbox table to Kafka.

        Usage:
          tailgate run --config FILE   stream outbox rows to Kafka (see 'tailgate help run')
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
            case "dev-kafka":
                if words.contains("--help") { Output.line(DevKafkaCommand.usage); return }
                try DevKafkaCommand.run(words)
            case "help", "--help", "-h":
                switch words.first {
                case "dev-kafka": Output.line(DevKafkaCommand.usage)
                case "run": Output.line(RunCommand.usage)
                default: Output.line(usage)
                }
            default:
                throw UsageError("unknown command '\(command)'; run 'tailgate help'")
            }
        } catch {
            Output.error("tailgate: \(error)")
            exit(error is UsageError ? 64 : 1)
        }
    }
}
