import Dispatch
import LibPQ
import Synchronization
import TestSupport
import Testing

/// The error `body` threw, or `nil` (an expectation cannot be checked on the connection's queue, off the test's task).
private func thrown(_ body: () throws -> Void) -> PostgresError? {
    do {
        try body()
        return nil
    } catch {
        return error as? PostgresError ?? PostgresError(code: .protocolViolation, message: "not a PostgresError: \(error)")
    }
}

@Suite struct SessionPipelineTests {
    func connect() async throws -> Connection {
        let postgres = try await TestPostgres.shared()
        return try await Connection.connect(postgres.conninfo(database: try await postgres.createDatabase(prefix: "pipe")))
    }

    @Test func aPreparedStatementIsPreparedOncePerConnectionAndAgainOnANewOne() async throws {
        let db = try await connect()
        let lookup = PreparedStatement("SELECT $1::int * 2 AS doubled")
        let (values, roundTrips, prepared) = try await db.withSession { session in
            var values: [Int?] = []
            var roundTrips: [Int] = []
            for input in [1, 2, 3] {
                let before = session.roundTrips
                values.append(try session.query(lookup, [input]).first?.int("doubled"))
                roundTrips.append(session.roundTrips - before)
            }
            let prepared = try session.query("SELECT count(*)::int AS n FROM pg_prepared_statements WHERE name = $1", [lookup.name])
            return (values, roundTrips, prepared.first?.int("n"))
        }
        #expect(values == [2, 4, 6])
        #expect(roundTrips == [2, 1, 1], "prepared on first use only")
        #expect(prepared == 1)
        await db.close()
        // Another connection (a reconnect) has nothing prepared: it prepares again.
        let other = try await connect()
        #expect(try await other.withSession { try $0.query(lookup, [21]).first?.int("doubled") } == 42)
        await other.close()
    }

    @Test func aDeallocatedStatementFailsOnceAndIsPreparedAgain() async throws {
        let db = try await connect()
        let lookup = PreparedStatement("SELECT $1::text AS echoed")
        let outcome = try await db.withSession { session in
            _ = try session.query(lookup, ["a"])
            try session.query("DEALLOCATE ALL")
            let failure = thrown { _ = try session.query(lookup, ["b"]) }
            return (failure?.sqlState, try session.query(lookup, ["c"]).first?["echoed"])
        }
        #expect(outcome.0 == SQLState.invalidSQLStatementName)
        #expect(outcome.1 == "c")
    }

    @Test func aPipelineRunsATransactionInOneRoundTrip() async throws {
        let db = try await connect()
        try await db.execute("CREATE TABLE t (id int PRIMARY KEY, note text)")
        let insert = PreparedStatement("INSERT INTO t VALUES ($1, $2) RETURNING id")
        let (results, roundTrips) = try await db.withSession { session in
            let before = session.roundTrips
            let results = try session.pipeline([
                PipelineStatement("BEGIN"),
                PipelineStatement(insert, [1, "one"]),
                PipelineStatement(insert, [2, nil as String?]),
                PipelineStatement("SELECT count(*)::int AS n FROM t WHERE note IS NULL"),
                PipelineStatement("COMMIT"),
            ])
            return (results, session.roundTrips - before)
        }
        #expect(roundTrips == 1, "the preparation travels in the same pipeline")
        #expect(results.count == 5)
        #expect(results[1].first?.int("id") == 1 && results[2].first?.int("id") == 2)
        #expect(results[3].first?.int("n") == 1)
        #expect(try await db.query("SELECT count(*)::int AS n FROM t").first?.int("n") == 2)
        // Prepared in the pipeline: later uses run it by name.
        let again = try await db.withSession { session in
            let before = session.roundTrips
            _ = try session.query(insert, [3, "three"])
            return session.roundTrips - before
        }
        #expect(again == 1)
    }

    @Test func aFailingStatementAbortsThePipelinesImplicitTransactionAndReportsItsSQLState() async throws {
        let db = try await connect()
        try await db.execute("CREATE TABLE u (id int PRIMARY KEY)")
        let failure = await db.withSession { session in
            thrown {
                _ = try session.pipeline([
                    PipelineStatement("INSERT INTO u VALUES (1)"),
                    PipelineStatement("INSERT INTO u VALUES (1)"),
                    PipelineStatement("INSERT INTO u VALUES (3)"),
                ])
            }
        }
        #expect(failure?.sqlState == .uniqueViolation)
        #expect(failure?.code == .queryFailed)
        #expect(failure?.statementIndex == 1)
        #expect(failure?.description.contains("pipeline statement 1") == true)
        // Nothing of the pipeline stays, the statement after the failure did not run, and the connection is usable.
        #expect(try await db.query("SELECT count(*)::int AS n FROM u").first?.int("n") == 0)
    }

    @Test func aFailureInsideAnExplicitTransactionLeavesItAbortedUntilRollback() async throws {
        let db = try await connect()
        try await db.execute("CREATE TABLE v (id int PRIMARY KEY)")
        let (failure, afterwards) = try await db.withSession { session in
            let failure = thrown {
                _ = try session.pipeline([
                    PipelineStatement("BEGIN"),
                    PipelineStatement("INSERT INTO v VALUES (1)"),
                    PipelineStatement(PreparedStatement("SELECT 1 / $1::int"), [0]),
                ])
            }
            let afterwards = thrown { _ = try session.query("INSERT INTO v VALUES (2)") }
            try session.query("ROLLBACK")
            return (failure, afterwards)
        }
        #expect(failure?.sqlState == "22012", "division by zero")
        #expect(failure?.statementIndex == 2)
        #expect(afterwards?.sqlState == "25P02", "the transaction is aborted")
        #expect(try await db.query("SELECT count(*)::int AS n FROM v").first?.int("n") == 0)
    }

    @Test func aPreparationThatFailsIsReportedAndNotRemembered() async throws {
        let db = try await connect()
        let broken = PreparedStatement("SELEC $1::int")
        let failures = await db.withSession { session in
            let first = thrown {
                _ = try session.pipeline([PipelineStatement("SELECT 1"), PipelineStatement(broken, [1])])
            }
            let second = thrown { _ = try session.query(broken, [1]) }
            return (first, second)
        }
        #expect(failures.0?.sqlState == .syntaxError && failures.0?.statementIndex == 1)
        #expect(failures.1?.sqlState == .syntaxError, "prepared again, not run by a name the server never knew")
        #expect(try await db.query("SELECT 1 AS one").first?.int("one") == 1)
    }

    @Test func aPipelineOnATerminatedBackendReportsTheConnectionLost() async throws {
        let db = try await connect()
        let admin = try await Connection.connect(try await TestPostgres.shared().conninfo())
        try await admin.query("SELECT pg_terminate_backend($1)", [Int(db.backendPID)])
        let failure = await db.withSession { session in
            thrown {
                _ = try session.pipeline([PipelineStatement("BEGIN"), PipelineStatement("SELECT 1"), PipelineStatement("COMMIT")])
            }
        }
        #expect(failure?.code == .connectionLost)
        await admin.close()
    }

    @Test func aLargeResultBeforeALargeParameterDoesNotDeadlockThePipeline() async throws {
        let db = try await connect()
        // The server writes the first result (8 MB) while the client is still sending the second statement's
        // parameter (8 MB): both socket buffers fill, and only a client that reads while it writes gets through.
        let big = String(repeating: "y", count: 8 << 20)
        let finished = DispatchSemaphore(value: 0)
        let lengths = Mutex<[Int?]>([])
        Task {
            let measured = try? await db.withSession { session in
                try session.pipeline([
                    PipelineStatement("SELECT repeat('x', 8 << 20) AS x"),
                    PipelineStatement("SELECT length($1::text) AS n", [big]),
                ]).map { $0.first?["x"].map(\.count) ?? $0.first?.int("n") }
            }
            lengths.withLock { $0 = measured ?? [] }
            finished.signal()
        }
        // Bounded, not timed: a deadlock never finishes.
        // Waited for off the concurrency pool: a semaphore wait on one of its two threads held back every other test.
        let outcome = try await offPool { finished.wait(timeout: .now() + 120) }
        #expect(outcome == .success, "the pipeline deadlocked")
        #expect(lengths.withLock { $0 } == [8 << 20, 8 << 20])
    }
}

@Suite struct SessionDeferredTests {
    func connect() async throws -> Connection {
        let postgres = try await TestPostgres.shared()
        return try await Connection.connect(postgres.conninfo(database: try await postgres.createDatabase(prefix: "deferred")))
    }

    @Test func deferredStatementsTravelWithTheNextStatementThatWaits() async throws {
        let db = try await connect()
        try await db.execute("CREATE TABLE d (id int PRIMARY KEY)")
        let insert = PreparedStatement("INSERT INTO d VALUES ($1)")
        let (count, roundTrips) = try await db.withSession { session in
            try session.query("BEGIN")
            let before = session.roundTrips
            session.executeDeferred(insert, [1])
            session.executeDeferred(insert, [2])
            session.executeDeferred("INSERT INTO d VALUES ($1)", [3])
            let count = try session.query("SELECT count(*)::int AS n FROM d").first?.int("n")
            let roundTrips = session.roundTrips - before
            session.executeDeferred(insert, [4])
            try session.query("COMMIT")
            return (count, roundTrips)
        }
        #expect(count == 3, "a later read sees the deferred writes")
        #expect(roundTrips == 1)
        #expect(try await db.query("SELECT count(*)::int AS n FROM d").first?.int("n") == 4, "COMMIT sent the last one")
    }

    @Test func aFailingDeferredStatementIsReportedAsDeferredByTheCallThatSentIt() async throws {
        let db = try await connect()
        try await db.execute("CREATE TABLE e (id int PRIMARY KEY)")
        let (failure, afterwards) = await db.withSession { session in
            session.executeDeferred("INSERT INTO e VALUES (1)")
            session.executeDeferred("INSERT INTO e VALUES (1)")
            let failure = thrown { _ = try session.query("INSERT INTO e VALUES (3)") }
            // Nothing stays queued: the next statement runs alone.
            let afterwards = thrown { _ = try session.query("SELECT 1") }
            return (failure, afterwards)
        }
        #expect(failure?.isDeferred == true && failure?.statementIndex == 1 && failure?.sqlState == .uniqueViolation)
        #expect(failure?.description.contains("deferred statement 1") == true)
        #expect(afterwards == nil)
        // Outside a transaction block the pipeline was one implicit transaction: none of it stayed.
        #expect(try await db.query("SELECT count(*)::int AS n FROM e").first?.int("n") == 0)
    }

    @Test func aSavepointSendsItsBodysDeferredStatementsInsideIt() async throws {
        let db = try await connect()
        try await db.execute("CREATE TABLE f (id int PRIMARY KEY CHECK (id < 100))")
        let outcome = try await db.withSession { session in
            try session.query("BEGIN")
            session.executeDeferred("INSERT INTO f VALUES (1)")
            let failure = thrown {
                try session.savepoint { inner in
                    inner.executeDeferred("INSERT INTO f VALUES (2)")
                    inner.executeDeferred("INSERT INTO f VALUES (200)")
                }
            }
            try session.savepoint { $0.executeDeferred("INSERT INTO f VALUES (3)") }
            try session.query("COMMIT")
            return failure
        }
        #expect(outcome?.isDeferred == true && outcome?.sqlState == "23514")
        let ids = try await db.query("SELECT id FROM f ORDER BY id").rows.compactMap { $0.int("id") }
        #expect(ids == [1, 3], "the failing savepoint's statements rolled back, the rest committed")
    }

    @Test func aTransactionThatRollsBackDropsItsQueuedStatements() async throws {
        let db = try await connect()
        try await db.execute("CREATE TABLE g (id int)")
        struct Planned: Error {}
        await #expect(throws: Planned.self) {
            try await db.transaction { tx in
                tx.executeDeferred("INSERT INTO g VALUES (1)")
                throw Planned()
            }
        }
        #expect(try await db.query("SELECT count(*)::int AS n FROM g").first?.int("n") == 0)
    }
}
