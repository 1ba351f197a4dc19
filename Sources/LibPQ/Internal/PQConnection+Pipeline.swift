import CLibPQ

extension PQConnection {
    /// Runs a prepared statement, preparing it first (one more round trip, once per connection) if needed.
    func execPrepared(_ statement: PreparedStatement, parameters: [PostgresParameter]) throws(PostgresError) -> QueryResult {
        if !deferred.isEmpty { return try afterDeferred(PipelineStatement(kind: .prepared(statement), parameters: parameters)) }
        let connection = try connection()
        if try !isPrepared(statement) {
            roundTrips += 1
            let result = Self.withParameters(parameters) { count, types, _, _, _ in
                PQprepare(connection, statement.name, statement.sql, count, types)
            }
            _ = try consume(result, connection: connection)
            preparedStatements[statement.name] = statement.sql
        }
        roundTrips += 1
        let result = Self.withParameters(parameters) { count, _, values, lengths, formats in
            PQexecPrepared(connection, statement.name, count, values, lengths, formats, 0)
        }
        do {
            return try consume(result, connection: connection)
        } catch {
            forgetIfDeallocated(statement, error)
            throw error
        }
    }

    /// Sends `statements` in pipeline mode after the deferred ones, syncs once, and reads every result (see
    /// ``Session/pipeline(_:)``).
    func pipeline(_ statements: [PipelineStatement]) throws(PostgresError) -> [QueryResult] {
        guard !deferred.isEmpty else { return try runPipeline(statements) }
        let queued = deferred
        deferred = []
        do {
            return Array(try runPipeline(queued + statements).dropFirst(queued.count))
        } catch {
            var failure = error
            if let index = failure.statementIndex {
                if index < queued.count { failure.isDeferred = true } else { failure.statementIndex = index - queued.count }
            }
            throw failure
        }
    }

    /// Sends the deferred statements now, in one round trip.
    func flushDeferred() throws(PostgresError) {
        guard !deferred.isEmpty else { return }
        _ = try pipeline([])
    }

    /// Runs one statement after the deferred ones, in one pipeline; the statement's own failure is reported as if it
    /// had run alone.
    func afterDeferred(_ statement: PipelineStatement) throws(PostgresError) -> QueryResult {
        do {
            return try pipeline([statement])[0]
        } catch {
            var failure = error
            if !failure.isDeferred { failure.statementIndex = nil }
            throw failure
        }
    }

    private func runPipeline(_ statements: [PipelineStatement]) throws(PostgresError) -> [QueryResult] {
        let connection = try connection()
        guard !statements.isEmpty else { return [] }
        // Decided before anything is sent (a name clash throws here, not halfway through the pipeline).
        var preparing = Set<String>()
        for statement in statements {
            if case .prepared(let prepared) = statement.kind, try !isPrepared(prepared) { preparing.insert(prepared.name) }
        }
        guard PQenterPipelineMode(connection) == 1 else { throw lostOrFailed(connection) }
        roundTrips += 1
        // What each result read back belongs to: a preparation (of the statement at that index) or a statement.
        enum Expected { case preparation(Int), statement(Int) }
        var expected: [Expected] = []
        for (index, statement) in statements.enumerated() {
            let sent: Int32
            switch statement.kind {
            case .text(let sql):
                sent = Self.withParameters(statement.parameters) { count, types, values, lengths, formats in
                    PQsendQueryParams(connection, sql, count, types, values, lengths, formats, 0)
                }
            case .prepared(let prepared):
                if preparing.remove(prepared.name) != nil {
                    let queued = Self.withParameters(statement.parameters) { count, types, _, _, _ in
                        PQsendPrepare(connection, prepared.name, prepared.sql, count, types)
                    }
                    guard queued == 1 else { throw abandonPipeline(connection) }
                    expected.append(.preparation(index))
                }
                sent = Self.withParameters(statement.parameters) { count, _, values, lengths, formats in
                    PQsendQueryPrepared(connection, prepared.name, count, values, lengths, formats, 0)
                }
            }
            guard sent == 1 else { throw abandonPipeline(connection) }
            expected.append(.statement(index))
        }
        guard PQpipelineSync(connection) == 1 else { throw abandonPipeline(connection) }

        var results: [QueryResult] = []
        results.reserveCapacity(statements.count)
        var failure: PostgresError?
        for item in expected {
            guard let result = PQgetResult(connection) else { throw abandonPipeline(connection) }
            let status = PQresultStatus(result)
            switch item {
            case .preparation(let index):
                if status == PGRES_COMMAND_OK, case .prepared(let prepared) = statements[index].kind {
                    preparedStatements[prepared.name] = prepared.sql
                } else if failure == nil, status == PGRES_FATAL_ERROR {
                    failure = Self.serverError(result, connection: connection)
                    failure?.statementIndex = index
                }
            case .statement(let index):
                guard status != PGRES_PIPELINE_ABORTED, failure == nil else { break }
                do {
                    results.append(try Self.decode(result, connection: connection))
                } catch {
                    failure = error
                    failure?.statementIndex = index
                    if case .prepared(let prepared) = statements[index].kind { forgetIfDeallocated(prepared, error) }
                }
            }
            PQclear(result)
            if PQstatus(connection) == CONNECTION_BAD { throw abandonPipeline(connection, failure) }
            // Each statement's results end with a null result.
            while let extra = PQgetResult(connection) { PQclear(extra) }
        }
        guard let sync = PQgetResult(connection) else { throw abandonPipeline(connection, failure) }
        let synced = PQresultStatus(sync) == PGRES_PIPELINE_SYNC
        PQclear(sync)
        guard synced, PQexitPipelineMode(connection) == 1 else { throw abandonPipeline(connection, failure) }
        if let failure { throw failure }
        guard results.count == statements.count else {
            throw PostgresError(code: .protocolViolation, message: "a pipeline of \(statements.count) statements returned \(results.count) results")
        }
        return results
    }

    /// Whether `statement` is prepared on this connection; a different statement under its name is an error.
    private func isPrepared(_ statement: PreparedStatement) throws(PostgresError) -> Bool {
        guard let sql = preparedStatements[statement.name] else { return false }
        guard sql == statement.sql else {
            throw PostgresError(code: .queryFailed, message: "two different statements hash to the prepared statement name \(statement.name); change one statement's text")
        }
        return true
    }

    /// A statement the session deallocated (`DEALLOCATE`, `DISCARD ALL`) is prepared again on its next use.
    private func forgetIfDeallocated(_ statement: PreparedStatement, _ error: PostgresError) {
        if error.sqlState == .invalidSQLStatementName { preparedStatements[statement.name] = nil }
    }

    /// A pipeline that cannot be finished leaves the connection in an unknown state: it is closed, and the error
    /// says the connection was lost (so its owner reconnects).
    private func abandonPipeline(_ connection: OpaquePointer, _ failure: PostgresError? = nil) -> PostgresError {
        var error = lostOrFailed(connection)
        error.code = .connectionLost
        if let failure, error.message == "no result" { error.message = "\(failure.message) (pipeline abandoned)" }
        close()
        return error
    }
}
