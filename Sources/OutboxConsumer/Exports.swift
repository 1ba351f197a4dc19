// A service names the handler's `db` (`LibPQ.Session`), catches `PostgresError`, and stops on SIGTERM/SIGINT
// (`Observability.ShutdownSignals`) or routes the consumer's logs (`EventLogger`, `LogSink`) with `import OutboxConsumer`
// alone: both modules are part of this library's API, so they are re-exported.
@_exported import LibPQ
@_exported import Observability
