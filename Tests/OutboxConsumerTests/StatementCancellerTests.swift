import Foundation
import LibPQ
@testable import OutboxConsumer
import ServiceRuntime
import Synchronization
import TestSupport
import Testing

/// A stop reaches a statement the consumer's transaction is running, including one sent after the first cancel
/// request went out, and a transaction that had not started when the stop came never starts.
@Suite struct StatementCancellerTests {
    /// The stop comes while the transaction is between statements (the first request is ignored by the server):
    /// the request sent again a second later cancels the statement that followed.
    @Test func aStatementStartedAfterTheStopIsCancelledByTheRequestSentAgain() async throws {
        let postgres = try await TestPostgres.shared()
        let db = try await Connection.connect(postgres.conninfo(database: try await postgres.createDatabase(prefix: "canceller")))
        let stop = StopSignal()
        let canceller = StatementCanceller(stop: stop, resendAfter: .milliseconds(500))
        let key = stop.onStop { canceller.stopRequested() }
        let inTransaction = Atomic<Bool>(false)
        let started = ContinuousClock.now
        async let outcome: String = db.withSession { session in
            do {
                try canceller.whileRunning(session, connection: 1) {
                    try session.query("BEGIN")
                    inTransaction.store(true, ordering: .releasing)
                    // Between statements while the stop's first request arrives.
                    Thread.sleep(forTimeInterval: 0.3)
                    try session.query("SELECT pg_sleep(60)")
                }
                return "not cancelled"
            } catch {
                _ = try? session.query("ROLLBACK")
                return (error as? PostgresError)?.sqlState?.rawValue ?? "\(error)"
            }
        }
        #expect(await eventually { inTransaction.load(ordering: .acquiring) })
        stop.request()
        #expect(await outcome == "57014")
        #expect(ContinuousClock.now - started < .seconds(20), "pg_sleep(60) was cancelled")
        stop.remove(key)
        await db.close()
    }

    /// A stop requested before the transaction starts (its request found nothing to cancel) is seen before the
    /// transaction runs.
    @Test func aTransactionDoesNotStartAfterAStop() async throws {
        let postgres = try await TestPostgres.shared()
        let db = try await Connection.connect(postgres.conninfo(database: try await postgres.createDatabase(prefix: "canceller")))
        let stop = StopSignal()
        let canceller = StatementCanceller(stop: stop)
        let key = stop.onStop { canceller.stopRequested() }
        stop.request()
        let ran = try await db.withSession { session in
            var ran = false
            do {
                try canceller.whileRunning(session, connection: 1) { ran = true }
            } catch is StopInterrupted {}
            return ran
        }
        #expect(!ran)
        stop.remove(key)
        await db.close()
    }
}
