import Foundation
import OutboxConsumer

/// `tailgate parked list|release`: the keys a consumer parked after a poison event, and their release after a fix.
enum ParkedCommand {
    static let usage = """
        tailgate parked list    --postgres CONNINFO [--group GROUP] [--table NAME]
        tailgate parked release --postgres CONNINFO --group GROUP --topic TOPIC --partition N --key KEY [--table NAME]

          list prints one line per parked key: group, topic, partition, key, how many events wait under it, the
          first one's offset and event id, its age and the error. release asks the consumer that owns the partition
          to apply the key's events in their original order, exactly once (it does within about a second while it
          runs, else at its next start); if one fails again, it heads the key with the new error. CONNINFO is the
          consumer service's database; --table defaults to tailgate_parked.
        """

    static func run(_ words: [String]) async throws -> Int32 {
        guard let action = words.first, ["list", "release"].contains(action) else {
            throw UsageError("say what to do: tailgate parked list|release …")
        }
        let arguments = try CommandLineArguments(Array(words.dropFirst()), options: ["postgres", "group", "table", "topic", "partition", "key"])
        guard let postgres = arguments.options["postgres"] else { throw UsageError("--postgres CONNINFO is required (the consumer's database)") }
        let parked = ParkedKeys(postgres: postgres, table: arguments.options["table"] ?? "tailgate_parked")
        switch action {
        case "list":
            let entries = try await parked.list(group: arguments.options["group"])
            for entry in entries {
                Output.line("group=\(entry.group) topic=\(entry.topic) partition=\(entry.partition) key=\(EventLogger.Format.logfmtValue(entry.key)) "
                            + "events=\(entry.events) first_offset=\(entry.firstOffset) first_event_id=\(EventLogger.Format.logfmtValue(entry.firstEventID)) "
                            + "age=\(Int(entry.ageSeconds))s release_requested=\(entry.releaseRequested) error=\(EventLogger.Format.logfmtValue(entry.error ?? ""))")
            }
            Output.line("\(entries.count) parked key(s)")
        default:
            guard let group = arguments.options["group"], let topic = arguments.options["topic"], let key = arguments.options["key"] else {
                throw UsageError("release needs --group, --topic, --partition and --key (as `tailgate parked list` shows them)")
            }
            guard let partitionText = arguments.options["partition"], let partition = Int32(partitionText), partition >= 0 else {
                throw UsageError("--partition must be a partition number, e.g. --partition 0")
            }
            let count = try await parked.requestRelease(group: group, topic: topic, partition: partition, key: key)
            guard count > 0 else {
                Output.line("nothing is parked under group=\(group) topic=\(topic) partition=\(partition) key=\(EventLogger.Format.logfmtValue(key))")
                return 1
            }
            Output.line("release requested for \(count) parked event(s); the consumer owning \(topic)[\(partition)] applies them in order")
        }
        return 0
    }
}
