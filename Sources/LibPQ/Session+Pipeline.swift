extension Session {
    /// Runs a prepared statement (preparing it first if this connection has not yet) and returns its rows.
    ///
    /// - Parameters:
    ///   - statement: The statement.
    ///   - parameters: The values of `$1`, `$2`, …, in order; `nil` is SQL NULL.
    /// - Throws: ``PostgresError``.
    @discardableResult
    public func query(_ statement: PreparedStatement, _ parameters: [(any PostgresBindable)?] = []) throws(PostgresError) -> QueryResult {
        try connection.execPrepared(statement, parameters: parameters.map { $0?.postgresParameter ?? .null })
    }

    /// Runs a prepared statement and returns the number of rows it affected.
    ///
    /// - Throws: ``PostgresError``.
    @discardableResult
    public func execute(_ statement: PreparedStatement, _ parameters: [(any PostgresBindable)?] = []) throws(PostgresError) -> Int {
        try query(statement, parameters).affectedRows
    }

    /// Sends `statements` in libpq's pipeline mode and waits once for all their results: one round trip instead of
    /// one per statement.
    ///
    /// The statements run in order. Outside a transaction block they form one implicit transaction; inside one
    /// (a `BEGIN` earlier, or first in `statements`) they are part of it. When one fails, the statements after it
    /// are not run, the transaction is aborted (an explicit one must then be rolled back), and the failure is thrown
    /// with its SQLSTATE and ``PostgresError/statementIndex``.
    ///
    /// A statement whose result is large should come last: results are read only after everything is sent.
    ///
    /// - Parameter statements: The statements; ``PreparedStatement``s this connection has not prepared yet are
    ///   prepared in the same pipeline.
    /// - Returns: One result per statement, in order.
    /// - Throws: ``PostgresError``.
    @discardableResult
    public func pipeline(_ statements: [PipelineStatement]) throws(PostgresError) -> [QueryResult] {
        try connection.pipeline(statements)
    }

    /// Queues a statement whose result is not needed: it is sent ahead of the next statement this session waits for
    /// (a query, `COMMIT`, a pipeline, ``flushDeferred()``), in the same round trip.
    ///
    /// Statements run in the order they were queued, before that next statement, so a later read sees their
    /// writes. When one fails, the call that sent it throws its error with ``PostgresError/isDeferred`` set (the
    /// statements after it, that call's own included, did not run); inside a transaction the transaction is then
    /// aborted. ``savepoint(_:_:)`` sends its body's deferred statements before releasing the savepoint, so their
    /// failures roll back to it like the body's own; a savepoint or ``Connection/transaction(_:)`` that rolls back
    /// drops statements still queued, and so does closing the connection: queue only what a later wait will send.
    ///
    /// - Parameters:
    ///   - sql: One statement; `$1`, `$2`, … refer to `parameters`.
    ///   - parameters: The values, in order; `nil` is SQL NULL.
    public func executeDeferred(_ sql: String, _ parameters: [(any PostgresBindable)?] = []) {
        connection.deferred.append(PipelineStatement(sql, parameters))
    }

    /// Queues a prepared statement whose result is not needed (see ``executeDeferred(_:_:)``).
    ///
    /// - Parameters:
    ///   - statement: The statement; prepared in the same pipeline if this connection has not prepared it yet.
    ///   - parameters: The values, in order; `nil` is SQL NULL.
    public func executeDeferred(_ statement: PreparedStatement, _ parameters: [(any PostgresBindable)?] = []) {
        connection.deferred.append(PipelineStatement(statement, parameters))
    }

    /// Queues a statement already built for a pipeline, whose result is not needed (see ``executeDeferred(_:_:)``).
    ///
    /// - Parameter statement: The statement, with its parameters.
    public func executeDeferred(_ statement: PipelineStatement) {
        connection.deferred.append(statement)
    }

    /// Sends the statements queued by ``executeDeferred(_:_:)`` now, in one round trip (nothing when
    /// none is queued).
    ///
    /// - Throws: ``PostgresError`` of the first that failed, with ``PostgresError/isDeferred`` set.
    public func flushDeferred() throws(PostgresError) {
        try connection.flushDeferred()
    }

    /// Drops the queued deferred statements unsent (before a rollback).
    package func discardDeferred() {
        connection.deferred = []
    }

    /// How many times this connection has waited for the server (one per statement outside a pipeline, one per
    /// pipeline): for benchmarks and tests that count round trips.
    package var roundTrips: Int { connection.roundTrips }
}
