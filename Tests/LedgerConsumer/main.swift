// A test fixture: an OutboxConsumer whose handler appends one ledger row per application, run as a child process
// so that tests can SIGKILL it mid-batch. Configured through the environment (TG_BOOTSTRAP, TG_POSTGRES,
// TG_GROUP, TG_TOPICS, TG_BATCH, TG_SESSION_TIMEOUT_MS — without it, the library's default session timeout and
// heartbeat; TG_HANDLER=statements — the handler as a statement handler, `runStatements`, whose batches go in one
// pipeline); SIGTERM stops it gracefully.
import Dispatch
import Foundation
import Observability
import OutboxConsumer

// Take SIGTERM over before anything else, so an early one is not lost (it reaches `onSignal` below).
let signals = ShutdownSignals([.terminate])
let environment = ProcessInfo.processInfo.environment
var kafka = ["bootstrap.servers": environment["TG_BOOTSTRAP"] ?? "", "fetch.wait.max.ms": "50", "client.id": "ledger-\(getpid())"]
if let sessionTimeout = environment["TG_SESSION_TIMEOUT_MS"] {
    kafka["session.timeout.ms"] = sessionTimeout
    kafka["heartbeat.interval.ms"] = "500"
}
let configuration = ConsumerConfiguration(
    groupID: environment["TG_GROUP"] ?? "svc", topics: (environment["TG_TOPICS"] ?? "events").split(separator: ",").map(String.init),
    kafka: kafka,
    postgres: environment["TG_POSTGRES"] ?? "", maxBatchSize: Int(environment["TG_BATCH"] ?? "") ?? 100,
    retryBackoff: .milliseconds(20), maxBackoff: .milliseconds(500), deadLetterTopic: "svc.dead-letter")
// Instances may share one log file: each line says which process wrote it.
let consumer = try OutboxConsumer(configuration: configuration,
                                  logger: EventLogger(context: [("pid", "\(getpid())")], write: { FileHandle.standardOutput.write(Data(($0 + "\n").utf8)) }))
signals.onSignal { _ in consumer.stop() }
let handlerKind = environment["TG_HANDLER"] == "statements" ? "statements" : "session"
FileHandle.standardOutput.write(Data("handler=\(handlerKind) pid=\(getpid())\n".utf8))
Task {
    do {
        if handlerKind == "statements" {
            // The same ledger row, produced without reading (no Poison or Pause events here: a statement handler
            // cannot read `cured`, and never awaits).
            try await consumer.runStatements { event, statements in
                if event.type == "Slow" { statements.execute("SELECT pg_sleep(0.3)") }
                statements.execute("INSERT INTO ledger (event_id, topic, partition, \"offset\") VALUES ($1, $2, $3, $4)",
                                   [event.id, event.topic, Int(event.partition), event.offset])
            }
        } else {
            try await consumer.run { event, db in
                // Parking tests: a "Poison" event fails until the test inserts a row into `cured`; a "Slow" one takes
                // 300 ms, so that a release is in flight when the test kills the process.
                if event.type == "Poison", try db.query("SELECT 1 FROM cured").rows.isEmpty { throw HandlerFailure(.poison, "not cured yet") }
                if event.type == "Slow" { try db.execute("SELECT pg_sleep(0.3)") }
                // A "Pause" keeps the batch's transaction open and idle on the server for 4 s (the client thinks), so
                // that a test can cut the network while the server holds the batch's locks.
                if event.type == "Pause" { try await Task.sleep(for: .seconds(4)) }
                // A little work per event, so that batches are in flight when the test kills the process.
                try db.execute("INSERT INTO ledger (event_id, topic, partition, \"offset\") VALUES ($1, $2, $3, $4)",
                               [event.id, event.topic, Int(event.partition), event.offset])
            }
        }
        withExtendedLifetime(signals) {}
        print("applied=\(consumer.metrics.snapshot.applied)")
        exit(0)
    } catch {
        print("error=\(error)")
        exit(1)
    }
}
dispatchMain()
