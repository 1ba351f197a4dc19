import Foundation
import LibPQ
import ServiceRuntime
import Synchronization
import TestSupport
import Testing

/// The one database link of the connector and the consumer, against a real server whose backend is terminated under it.
@Suite struct DatabaseLinkTests {
    /// The link's connection's backend process id.
    static func backendPID(_ result: QueryResult) throws -> String {
        try #require(result.first?["pid"])
    }

    /// Terminates the backend `pid` from another connection, as an administrator or a server restart would, and
    /// waits until it is gone (a deadline, not a measurement).
    static func terminate(_ pid: String, conninfo: String) throws {
        let admin = try Connection.connectBlocking(conninfo)
        defer { admin.closeBlocking() }
        try admin.withSessionBlocking { session in
            try session.query("SELECT pg_terminate_backend($1::int)", [pid])
            let deadline = ContinuousClock.now + .seconds(10)
            while try session.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = $1::int", [pid]).first?.int("n") != 0 {
                guard ContinuousClock.now < deadline else { throw TerminationTimedOut() }
                usleep(10_000)
            }
        }
    }

    struct TerminationTimedOut: Error {}

    @Test func aQueryOnTheCooperativePoolReconnectsOnceAndTheLossIsReportedOnce() async throws {
        let postgres = try await TestPostgres.shared()
        let database = try await postgres.createDatabase(prefix: "link")
        let lost = Mutex<[String]>([])
        let link = DatabaseLink(conninfo: postgres.conninfo(database: database),
                                onLost: { error in lost.withLock { $0.append("\(error)") } })
        let first = try Self.backendPID(try await link.query(deadline: .seconds(10), "SELECT pg_backend_pid()::text AS pid"))
        #expect(link.connectionsOpened == 1 && lost.withLock { $0.isEmpty })

        try Self.terminate(first, conninfo: postgres.conninfo(database: database))
        // The check is run again on a new connection: its caller never sees the loss, the link reports it.
        let second = try Self.backendPID(try await link.query(deadline: .seconds(10), "SELECT pg_backend_pid()::text AS pid"))
        #expect(second != first)
        #expect(link.connectionsOpened == 2)
        #expect(lost.withLock { $0.count } == 1, "\(lost.withLock { $0 })")
        await link.close()
        #expect(!link.isConnected)
    }

    @Test func aSessionOnItsOwnThreadFailsOnceIsReportedOnceAndTheNextUseReconnectsWithTheSchemaCreatedOnce() async throws {
        let postgres = try await TestPostgres.shared()
        let database = try await postgres.createDatabase(prefix: "link")
        let lost = Mutex(0)
        let link = DatabaseLink(conninfo: postgres.conninfo(database: database),
                                schema: ["CREATE TABLE made_once (n int)", "INSERT INTO made_once VALUES (1)"],
                                onLost: { _ in lost.withLock { $0 += 1 } })
        let conninfo = postgres.conninfo(database: database)
        // Blocking calls: on a thread of their own, as the consumer makes them.
        let outcome: (first: String, failed: Bool, rows: String?, opened: Int, lost: Int) = try await withCheckedThrowingContinuation { continuation in
            let thread = Thread {
                do {
                    let first = try link.withSession { try $0.query("SELECT pg_backend_pid()::text AS pid").first?["pid"] ?? "" }
                    try Self.terminate(first, conninfo: conninfo)
                    var failed = false
                    do {
                        _ = try link.withSession { try $0.query("SELECT 1") }
                    } catch let error as PostgresError where DatabaseLink.dropsConnection(error) {
                        failed = true
                    }
                    let rows = try link.withSession { try $0.query("SELECT count(*)::text AS n FROM made_once").first?["n"] }
                    continuation.resume(returning: (first, failed, rows, link.connectionsOpened, lost.withLock { $0 }))
                } catch {
                    continuation.resume(throwing: error)
                }
            }
            thread.start()
        }
        #expect(outcome.failed, "the use that met the loss is told: its transaction is gone")
        #expect(outcome.lost == 1 && outcome.opened == 2)
        #expect(outcome.rows == "1", "the tables are created on the first connection only")
        await link.close()
    }
}
