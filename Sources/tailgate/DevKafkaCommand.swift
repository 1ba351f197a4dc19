import Dispatch
import Foundation
import Observability
import RDKafka

/// `tailgate dev-kafka`: librdkafka's in-memory mock cluster in the foreground, with fault commands on stdin.
enum DevKafkaCommand {
    static let usage = """
        tailgate dev-kafka [--brokers N] [--partitions N] [--topics a,b,...]

          Runs an IN-MEMORY Kafka cluster (librdkafka's mock cluster) for development and tests only: nothing is
          durable, each partition keeps at most ~5 MiB / 100,000 message sets (the oldest are dropped silently),
          idempotent retries are not de-duplicated, idempotent sequence order is not enforced (so with more than
          one request in flight, an injected Produce error can make librdkafka count an unwritten batch as
          delivered: set max.in.flight.requests.per.connection=1 when injecting them), and leaders do not move
          when a broker goes down.
          The first line of standard output is the bootstrap servers value. Unknown topics are created with
          4 partitions on first use; --topics creates them with --partitions (default 6).

          Commands on standard input, one a line (answered with 'ok' or 'error: ...'):
            down BROKER              take a broker down (ids 1..N)
            up BROKER                bring it back
            error API CODE COUNT     fail the next COUNT requests of API (Produce, Fetch, ...) with CODE
                                     (a librdkafka error name such as NOT_LEADER_FOR_PARTITION, or a number)
            leader TOPIC PARTITION BROKER   move a partition's leadership
            quit                     shut down
          SIGTERM or SIGINT also shut it down.
        """

    static func run(_ words: [String]) throws -> Never {
        let arguments = try CommandLineArguments(words, options: ["brokers", "partitions", "topics"])
        let brokers = try arguments.positiveInt("brokers", default: 3)
        let partitions = try arguments.positiveInt("partitions", default: 6)
        let topics = (arguments.options["topics"] ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
        let cluster = try KafkaMockCluster(brokers: brokers)
        for topic in topics {
            try cluster.createTopic(topic, partitions: partitions)
        }
        Output.line(cluster.bootstrapServers)
        Output.line("# tailgate dev-kafka: IN-MEMORY mock Kafka cluster (librdkafka), for development only; nothing is durable.")
        Output.line("# brokers=\(brokers) topics=\(topics.isEmpty ? "(auto-created, 4 partitions)" : topics.joined(separator: ",")) partitions=\(partitions)")

        let shutdown: @Sendable (Int32) -> Never = { code in
            cluster.close()
            Output.line("# tailgate dev-kafka: stopped")
                exit(code)
        }
        let signals = ShutdownSignals { _ in shutdown(0) }
        let reader = Thread {
            while let line = readLine() {
                let answer = execute(line, on: cluster)
                if answer == "quit" { DispatchQueue.main.async { shutdown(0) }; return }
                Output.line(answer)
                    }
            // End of input: keep running until a signal (scripts start it with stdin closed).
        }
        reader.start()
        withExtendedLifetime(signals) { dispatchMain() }
    }

    /// Runs one stdin command and returns the answer line.
    static func execute(_ line: String, on cluster: KafkaMockCluster) -> String {
        let words = line.split(separator: " ").map(String.init)
        do {
            switch words.first?.lowercased() {
            case nil: return "error: empty command"
            case "quit", "exit": return "quit"
            case "down", "up":
                guard words.count == 2, let broker = Int32(words[1]) else { return "error: usage: \(words[0]) BROKER" }
                if words[0].lowercased() == "down" { try cluster.setBrokerDown(broker) } else { try cluster.setBrokerUp(broker) }
                return "ok \(words[0]) \(broker)"
            case "error":
                guard words.count == 4, let count = Int(words[3]), count > 0 else { return "error: usage: error API CODE COUNT" }
                guard let apiKey = KafkaMockCluster.apiKeys.first(where: { $0.key.lowercased() == words[1].lowercased() })?.value
                    ?? Int16(words[1]) else {
                    return "error: unknown API '\(words[1])'; one of \(KafkaMockCluster.apiKeys.keys.sorted().joined(separator: ", "))"
                }
                guard let code = KafkaMockCluster.errorCode(named: words[2]) else { return "error: unknown error code '\(words[2])'" }
                try cluster.pushRequestErrors(apiKey: apiKey, errors: Array(repeating: code, count: count))
                return "ok error \(words[1]) \(words[2]) \(count)"
            case "leader":
                guard words.count == 4, let partition = Int32(words[2]), let broker = Int32(words[3]) else {
                    return "error: usage: leader TOPIC PARTITION BROKER"
                }
                try cluster.setLeader(topic: words[1], partition: partition, broker: broker)
                return "ok leader \(words[1]) \(partition) \(broker)"
            default:
                return "error: unknown command '\(words[0])'; try down, up, error, leader or quit"
            }
        } catch {
            return "error: \(error)"
        }
    }
}
