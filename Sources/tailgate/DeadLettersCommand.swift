import Foundation
import OutboxConsumer

/// `tailgate dead-letters list|replay`: inspect dead-lettered events and re-publish them after a fix.
enum DeadLettersCommand {
    static let usage = """
        tailgate dead-letters list   --bootstrap SERVERS --topic DEAD_LETTER_TOPIC [--partitions N]
        tailgate dead-letters replay --bootstrap SERVERS --topic DEAD_LETTER_TOPIC --postgres CONNINFO
                                     [--event-ids ID,ID,...] [--group GROUP] [--inbox-table NAME] [--partitions N]

          list prints one line per dead-lettered record: partition, offset, event_id, consumer group, original
          topic and the error. replay re-publishes consumer dead letters (those with an original topic) to that
          topic, after deleting their 'dead_lettered' rows from the consumer's inbox so the fixed consumer applies
          them; --event-ids and --group narrow the selection. Rows the connector dead-lettered have no original
          topic: fix the outbox row and use `tailgate backfill --where` instead.
        """

    static func run(_ words: [String]) async throws -> Int32 {
        guard let action = words.first, ["list", "replay"].contains(action) else {
            throw UsageError("say what to do: tailgate dead-letters list|replay …")
        }
        let arguments = try CommandLineArguments(Array(words.dropFirst()), options: ["bootstrap", "topic", "postgres", "event-ids", "group",
                                                                                   "inbox-table", "partitions"])
        guard let bootstrap = arguments.options["bootstrap"], let topic = arguments.options["topic"] else {
            throw UsageError("--bootstrap and --topic are required")
        }
        let deadLetters = DeadLetters(kafka: ["bootstrap.servers": bootstrap], topic: topic)
        var entries = try await deadLetters.list(partitions: Int32(try arguments.positiveInt("partitions", default: 1)))
        if let ids = arguments.options["event-ids"] {
            let wanted = Set(ids.split(separator: ",").map(String.init))
            entries = entries.filter { $0.eventID.map(wanted.contains) ?? false }
        }
        if let group = arguments.options["group"] { entries = entries.filter { $0.consumerGroup == group } }
        switch action {
        case "list":
            for entry in entries {
                Output.line("partition=\(entry.partition) offset=\(entry.offset) event_id=\(entry.eventID ?? "-") group=\(entry.consumerGroup ?? "-") original_topic=\(entry.originalTopic ?? "-") error=\"\(entry.error ?? "")\"")
            }
            Output.line("\(entries.count) dead-lettered record(s)")
        default:
            guard let postgres = arguments.options["postgres"] else { throw UsageError("replay needs --postgres CONNINFO (the consumer's database)") }
            let count = try await deadLetters.replay(entries, postgres: postgres, inboxTable: arguments.options["inbox-table"] ?? "tailgate_inbox")
            Output.line("replayed \(count) of \(entries.count) record(s)")
        }
        return 0
    }
}
