import Foundation
import LibPQ
import TestSupport
import Testing

@Suite struct CancelRequestTests {
    /// A request sent from another thread ends the statement the connection's queue waits for: it fails with
    /// `57014`, and the connection stays usable.
    @Test func aRequestFromAnotherThreadCancelsTheStatementInFlight() async throws {
        let postgres = try await TestPostgres.shared()
        let db = try await Connection.connect(postgres.conninfo(database: try await postgres.createDatabase(prefix: "cancel")))
        let request = try #require(await db.withSession { $0.cancelRequest() })
        let started = ContinuousClock.now
        async let slept: Void = db.withSession { session throws(PostgresError) in _ = try session.query("SELECT pg_sleep(60)") }
        // Sent again until it lands: one sent before the statement reaches the server is ignored.
        let sender = Task.detached {
            while !Task.isCancelled {
                try request.send()
                try await Task.sleep(for: .milliseconds(200))
            }
        }
        do {
            try await slept
            Issue.record("pg_sleep(60) returned without an error")
        } catch {
            #expect((error as? PostgresError)?.sqlState == .queryCanceled, "\(error)")
        }
        sender.cancel()
        #expect(ContinuousClock.now - started < .seconds(30), "the 60 s statement was cancelled")
        #expect(try await db.query("SELECT 1 AS one").first?.int("one") == 1)
        await db.close()
    }
}
