import Foundation
import LibPQ
import TestSupport
import Testing

@Suite struct ConnectionTests {
    func connect() async throws -> Connection {
        let postgres = try await TestPostgres.shared()
        return try await Connection.connect(postgres.conninfo(database: try await postgres.createDatabase(prefix: "conn")))
    }

    @Test func livenessDefaultsApplyUnlessTheConnectionStringSaysOtherwise() async throws {
        let postgres = try await TestPostgres.shared()
        let conninfo = postgres.conninfo(database: try await postgres.createDatabase(prefix: "conn"))
        let plain = try await Connection.connect(conninfo)
        #expect(plain.option("connect_timeout") == "10")
        #expect(plain.option("keepalives_idle") == "5")
        #expect(plain.option("keepalives_interval") == "2")
        #expect(plain.option("keepalives_count") == "3")
        #expect(plain.option("tcp_user_timeout") == "15000")
        let own = try await Connection.connect(conninfo + " tcp_user_timeout=3000 keepalives_idle=30")
        #expect(own.option("tcp_user_timeout") == "3000")
        #expect(own.option("keepalives_idle") == "30")
        #expect(own.option("keepalives_count") == "3")
        let replication = try await ReplicationConnection.connect(conninfo + " connect_timeout=4")
        #expect(replication.option("connect_timeout") == "4")
        #expect(replication.option("tcp_user_timeout") == "15000")
        #expect(replication.option("replication") == "database")
        await plain.close()
        await own.close()
        await replication.close()
    }

    /// Issue 19: the server's end of every connection gets the same deadlines (sent in `options`), so that a
    /// silently cut client's backend ends within seconds and its open transaction releases its locks.
    @Test func theServersEndGetsTheDeadlinesTooOverTCP() async throws {
        let postgres = try await TestPostgres.shared()
        let database = try await postgres.createDatabase(prefix: "conn")
        let tcp = "host=127.0.0.1 port=\(postgres.port) dbname=\(database) user=postgres"
        func settings(_ db: Connection) async throws -> [String] {
            let row = try #require(try await db.query("""
                SELECT current_setting('tcp_keepalives_idle') AS idle, current_setting('tcp_keepalives_interval') AS interval,
                       current_setting('tcp_keepalives_count') AS count, current_setting('tcp_user_timeout') AS timeout,
                       current_setting('search_path') AS path
                """).first)
            return ["idle", "interval", "count", "timeout", "path"].map { row[$0] ?? "?" }
        }
        let plain = try await Connection.connect(tcp)
        let ours = try await settings(plain)
        #expect(ours.prefix(4) == ["5", "2", "3", "15000"], "\(ours)")
        // The connection string's own options stay, and a setting it names keeps its value.
        let own = try await Connection.connect(tcp + " options='-c search_path=elsewhere -c tcp_keepalives_idle=30'")
        let theirs = try await settings(own)
        #expect(theirs == ["30", "2", "3", "15000", "elsewhere"], "\(theirs)")
        // options='' (for a pooler that refuses the parameter) sends none: the server's defaults.
        let none = try await Connection.connect(tcp + " options=''")
        let defaults = try await settings(none)
        #expect(defaults[0] != "5" && defaults[3] == "0", "\(defaults)")
        // The replication connection the connector streams on gets them as well.
        let replication = try await ReplicationConnection.connect(tcp)
        #expect(replication.option("options")?.contains("-c tcp_user_timeout=15000") == true)
        await plain.close()
        await own.close()
        await none.close()
        await replication.close()
    }

    @Test func parametersTravelApartFromSQL() async throws {
        let db = try await connect()
        let hostile = "x'); DROP TABLE t; --"
        let result = try await db.query("SELECT $1::text AS a, $2::int + 1 AS b, $3::text IS NULL AS c, $4::bytea AS d",
                                        [hostile, 41, nil as String?, [0x00, 0xFF, 0x10] as [UInt8]])
        let row = try #require(result.first)
        #expect(row["a"] == hostile)
        #expect(row.int("b") == 42)
        #expect(row.bool("c") == true)
        #expect(row["d"] == "\\x00ff10")
        #expect(result.columns == ["a", "b", "c", "d"])
    }

    @Test func transactionsCommitAndRollBack() async throws {
        let db = try await connect()
        try await db.execute("CREATE TABLE t (id int PRIMARY KEY, note text)")
        try await db.transaction { tx in
            try tx.execute("INSERT INTO t VALUES ($1, $2)", [1, "kept"])
        }
        struct Planned: Error {}
        await #expect(throws: Planned.self) {
            try await db.transaction { tx in
                try tx.execute("INSERT INTO t VALUES ($1, $2)", [2, "rolled back"])
                throw Planned()
            }
        }
        // A savepoint rolls back only its own part.
        try await db.transaction { tx in
            try tx.execute("INSERT INTO t VALUES (3, 'outer')")
            _ = try? tx.savepoint { inner in
                try inner.execute("INSERT INTO t VALUES (4, 'inner')")
                throw Planned()
            }
        }
        let ids = try await db.query("SELECT id FROM t ORDER BY id").rows.compactMap { $0.int("id") }
        #expect(ids == [1, 3])
    }

    @Test func serverErrorsCarrySQLStateDetailAndHint() async throws {
        let db = try await connect()
        try await db.execute("CREATE TABLE u (id int PRIMARY KEY)")
        try await db.execute("INSERT INTO u VALUES (1)")
        let duplicate = try await #require(throws: PostgresError.self) { try await db.execute("INSERT INTO u VALUES (1)") }
        #expect(duplicate.code == .queryFailed)
        #expect(duplicate.sqlState == "23505")
        #expect(duplicate.detail?.contains("(id)=(1)") == true)
        let typo = try await #require(throws: PostgresError.self) { try await db.query("SELEC 1") }
        #expect(typo.sqlState == "42601")
        // The connection stays usable after an error.
        #expect(try await db.query("SELECT 1 AS one").first?.int("one") == 1)
    }

    @Test func quotedIdentifiersCannotInject() async throws {
        let db = try await connect()
        let name = "x\"; DROP TABLE victim; --"
        try await db.execute("CREATE TABLE victim (id int)")
        try await db.execute("CREATE TABLE \(SQLIdentifier.quote(name)) (id int)")
        let tables = try await db.query("SELECT relname FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace ORDER BY relname")
        #expect(Set(tables.rows.compactMap { $0["relname"] }) == [name, "victim"])
        #expect(QualifiedName(parsing: "Public.\"Odd.Name\"") == QualifiedName(schema: "public", name: "Odd.Name"))
        #expect(QualifiedName(parsing: "outbox") == QualifiedName(schema: nil, name: "outbox"))
        #expect(QualifiedName(parsing: "a.b.c") == nil)
        #expect(QualifiedName(parsing: "a;b") != nil) // a legal (odd) name once quoted
        #expect(QualifiedName(parsing: "a b") == nil)
        #expect(QualifiedName(parsing: "\"unterminated") == nil)
        #expect(SQLIdentifier.quoteQualified(QualifiedName(schema: "s", name: "t\"x")) == "\"s\".\"t\"\"x\"")
    }

    @Test func connectionFailuresNeverEchoThePassword() async throws {
        let postgres = try await TestPostgres.shared()
        let error = try await #require(throws: PostgresError.self) {
            try await Connection.connect(postgres.conninfo(database: "no_such_database") + " password=hunter2-secret")
        }
        #expect(error.code == .connectionFailed)
        #expect(error.description.contains("no_such_database"))
        #expect(!error.description.contains("hunter2-secret"))
    }

    @Test func terminatedBackendSurfacesAsConnectionLost() async throws {
        let db = try await connect()
        let admin = try await Connection.connect(try await TestPostgres.shared().conninfo())
        try await admin.query("SELECT pg_terminate_backend($1)", [Int(db.backendPID)])
        let error = try await #require(throws: PostgresError.self) { try await db.query("SELECT 1") }
        #expect(error.code == .connectionLost)
        await db.close()
        let closed = try await #require(throws: PostgresError.self) { try await db.query("SELECT 1") }
        #expect(closed.code == .closed)
    }
}
