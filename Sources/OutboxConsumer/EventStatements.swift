import LibPQ

/// The statements a ``OutboxConsumer/StatementHandler`` produces for one event, in order; the consumer sends them in
/// the batch's transaction.
///
/// A statement handler never sees the database: it only says what to write. That is what lets the consumer send an
/// event's statements together with the inbox insert, the offsets and `COMMIT` in one round trip, before it knows
/// whether the event is new (see ``OutboxConsumer/runStatements(_:)``).
public struct EventStatements: Sendable {
    /// The statements produced so far, in order.
    public private(set) var statements: [PipelineStatement] = []

    /// Creates an empty list.
    public init() {}

    /// Adds a statement given as SQL text; its result is not read.
    ///
    /// - Parameters:
    ///   - sql: One statement; `$1`, `$2`, … refer to `parameters`.
    ///   - parameters: The values, in order; `nil` is SQL NULL.
    public mutating func execute(_ sql: String, _ parameters: [(any PostgresBindable)?] = []) {
        statements.append(PipelineStatement(sql, parameters))
    }

    /// Adds a prepared statement (prepared once per connection, in the same round trip); its result is not read.
    ///
    /// - Parameters:
    ///   - statement: The statement.
    ///   - parameters: The values, in order; `nil` is SQL NULL.
    public mutating func execute(_ statement: PreparedStatement, _ parameters: [(any PostgresBindable)?] = []) {
        statements.append(PipelineStatement(statement, parameters))
    }

    /// Whether no statement was produced.
    public var isEmpty: Bool { statements.isEmpty }
}

extension EventStatements {
    /// `handler` as an ordinary ``OutboxConsumer/Handler``: its statements deferred in the event's transaction (or
    /// savepoint), so the careful ways of applying a batch (the claim first, a savepoint per event, retries, parking,
    /// dead letters, releases) run a statement handler exactly as they run any other.
    static func sessionHandler(_ handler: @escaping OutboxConsumer.StatementHandler) -> OutboxConsumer.Handler {
        { event, session in
            var produced = EventStatements()
            try handler(event, &produced)
            for statement in produced.statements {
                session.executeDeferred(statement)
            }
        }
    }
}
