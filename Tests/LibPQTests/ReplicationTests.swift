import Foundation
import LibPQ
import PGOutput
import TestSupport
import Testing

/// One decoded transaction: its Begin, its changes in order, its Commit.
struct DecodedTransaction {
    var begin: Begin
    var changes: [PGOutputMessage] = []
    var commit: Commit?
    var inserts: [Insert] { changes.compactMap { if case .insert(let insert) = $0 { insert } else { nil } } }
}

/// A database with an `items` table, a publication on it, and a slot.
struct ReplicationFixture {
    let postgres: TestPostgres
    let database: String
    let db: Connection
    /// Slots are cluster-wide: each fixture's is named after its database.
    var slot: String { "slot_\(database)" }
    let publication = "pub_under_test"

    static func make(on postgres: TestPostgres? = nil) async throws -> ReplicationFixture {
        let postgres = if let postgres { postgres } else { try await TestPostgres.shared() }
        let database = try await postgres.createDatabase(prefix: "repl")
        let db = try await Connection.connect(postgres.conninfo(database: database))
        try await db.execute("CREATE TABLE items (id int PRIMARY KEY, note text, payload text)")
        try await db.execute("CREATE PUBLICATION pub_under_test FOR TABLE items")
        let fixture = ReplicationFixture(postgres: postgres, database: database, db: db)
        let replication = try await fixture.replicationConnection()
        _ = try await replication.createSlot(fixture.slot)
        await replication.close()
        return fixture
    }

    func replicationConnection() async throws -> ReplicationConnection {
        try await ReplicationConnection.connect(postgres.conninfo(database: database))
    }

    func start(protocolVersion: Int = 1, streaming: Bool = false, statusInterval: Duration = .milliseconds(500),
               receiveTimeout: Duration? = .seconds(30)) async throws
        -> (ReplicationConnection, ReplicationStream) {
        let connection = try await replicationConnection()
        let stream = try await connection.startReplication(
            slot: slot, options: PGOutputOptions(protocolVersion: protocolVersion, publications: [publication], messages: true,
                                                 streaming: streaming),
            statusInterval: statusInterval, receiveTimeout: receiveTimeout)
        return (connection, stream)
    }

    /// Reads until `count` transactions have committed (protocol 1).
    func transactions(_ count: Int, from stream: ReplicationStream, timeout: Duration = .seconds(60)) async throws -> [DecodedTransaction] {
        var decoder = PGOutputDecoder()
        var done: [DecodedTransaction] = []
        var current: DecodedTransaction?
        let deadline = ContinuousClock.now + timeout
        while done.count < count {
            try #require(ContinuousClock.now < deadline, "only \(done.count) of \(count) transactions arrived")
            guard case .xLogData(let data)? = try await stream.next(timeout: .seconds(1)) else { continue }
            let message = try decoder.decode(data.data)
            switch message {
            case .begin(let begin):
                #expect(current == nil, "Begin inside a transaction")
                current = DecodedTransaction(begin: begin)
            case .commit(let commit):
                var transaction = try #require(current, "Commit without Begin")
                transaction.commit = commit
                done.append(transaction)
                current = nil
            case .relation, .type, .message:
                break
            default:
                current?.changes.append(message)
            }
        }
        return done
    }

    /// The xid of a transaction, as pgoutput reports it (32 bits).
    func currentXID(_ session: Session) throws -> UInt32 {
        UInt32(try #require(session.query("SELECT txid_current() % 4294967296 AS xid").first?["xid"].flatMap { UInt64($0) }))
    }
}

@Suite struct ReplicationTests {
    static func text(_ value: TupleData.Value) -> String? { value.string }

    @Test func streamsTransactionsWithTheirBoundariesValuesAndCommitLSNs() async throws {
        let fixture = try await ReplicationFixture.make()
        let db = fixture.db
        let firstXID = try await db.transaction { tx in
            let xid = try fixture.currentXID(tx)
            try tx.execute("INSERT INTO items VALUES (1, 'one', 'p1'), (2, 'two', 'p2'), (3, 'three', 'p3')")
            try tx.execute("UPDATE items SET note = 'uno' WHERE id = 1")
            try tx.execute("DELETE FROM items WHERE id = 2")
            return xid
        }
        let afterFirst = try #require(LSN(try await db.query("SELECT pg_current_wal_insert_lsn() AS l").first?["l"] ?? ""))
        try await db.execute("INSERT INTO items SELECT g, 'bulk', md5(g::text) FROM generate_series(100, 10099) g")
        // About 1 MB of poorly compressible text: stored out of line (TOAST).
        try await db.execute("INSERT INTO items VALUES (50, 'big', (SELECT string_agg(md5(g::text), '') FROM generate_series(1, 32768) g))")
        let big = try #require(try await db.query("SELECT payload FROM items WHERE id = 50").first?["payload"])
        #expect(big.utf8.count == 1_048_576)
        let toastTable = try #require(try await db.query("SELECT reltoastrelid::regclass::text AS t FROM pg_class WHERE relname = 'items'").first?["t"])
        #expect(try await db.query("SELECT count(*) AS chunks FROM \(toastTable)").first?.int("chunks") ?? 0 > 100, "the value is stored out of line")

        let (connection, stream) = try await fixture.start()
        let transactions = try await fixture.transactions(3, from: stream)
        await stream.close()
        _ = connection

        let first = transactions[0]
        #expect(first.begin.xid == firstXID)
        #expect(first.changes.map(\.id) == [.insert, .insert, .insert, .update, .delete])
        #expect(first.inserts.map { $0.newTuple.values.map(Self.text) } == [["1", "one", "p1"], ["2", "two", "p2"], ["3", "three", "p3"]])
        if case .update(let update) = first.changes[3] { #expect(update.newTuple.values.map(Self.text) == ["1", "uno", "p1"]) }
        if case .delete(let delete) = first.changes[4] {
            #expect(delete.old.kind == .key && delete.old.tuple.values == [.text(Array("2".utf8)), .null, .null])
        }
        let bulk = transactions[1].inserts
        #expect(bulk.count == 10_000)
        #expect(bulk.map { Int(Self.text($0.newTuple.values[0]) ?? "") } == Array(100...10099))
        let toasted = try #require(transactions[2].inserts.first)
        #expect(Self.text(toasted.newTuple.values[2]) == big)

        var previousEnd = LSN.invalid
        for transaction in transactions {
            let commit = try #require(transaction.commit)
            #expect(transaction.begin.finalLSN == commit.commitLSN)
            #expect(commit.endLSN > commit.commitLSN && commit.endLSN > previousEnd)
            previousEnd = commit.endLSN
        }
        #expect(try #require(transactions[0].commit).endLSN <= afterFirst)
    }

    @Test func confirmingACommitEndMovesTheSlotAndARestartResumesAfterIt() async throws {
        let fixture = try await ReplicationFixture.make()
        try await fixture.db.execute("INSERT INTO items VALUES (1, 'first', NULL)")
        try await fixture.db.execute("INSERT INTO items VALUES (2, 'second', NULL)")

        var (connection, stream) = try await fixture.start()
        let both = try await fixture.transactions(2, from: stream)
        let firstEnd = try #require(both[0].commit?.endLSN)
        stream.confirm(firstEnd)
        stream.confirm(LSN(rawValue: 1)) // an older position never moves it back
        try await stream.sendStatus()
        let observer = try await fixture.replicationConnection()
        let moved = try await eventually {
            try await observer.slotState(fixture.slot)?.confirmedFlushLSN == firstEnd
        }
        #expect(moved, "confirmed_flush_lsn should become the first Commit's end LSN \(firstEnd)")
        await stream.close()
        _ = connection

        #expect(try await eventually { try await observer.slotState(fixture.slot)?.isActive == false })
        (connection, stream) = try await fixture.start()
        let replayed = try await fixture.transactions(1, from: stream)
        #expect(replayed[0].begin.finalLSN == both[1].begin.finalLSN, "the confirmed transaction must not be sent again")
        #expect(replayed[0].inserts.map { Self.text($0.newTuple.values[1]) } == ["second"])
        await stream.close()
        await observer.close()
    }

    @Test func periodicStatusUpdatesKeepAStreamAliveWhileTheCallerStopsReading() async throws {
        // This cluster runs with a short wal_sender_timeout: without unsolicited status updates a stream that is
        // not read for 2.5 times that long is dropped by the server.
        let fixture = try await ReplicationFixture.make(on: try await TestPostgres.sharedWithShortSenderTimeout())
        let (connection, stream) = try await fixture.start(statusInterval: .milliseconds(500))
        try await Task.sleep(for: TestPostgres.shortSenderTimeout * 2.5)
        #expect(stream.statusUpdatesSent >= 20)
        try await fixture.db.execute("INSERT INTO items VALUES (7, 'after the pause', NULL)")
        let transactions = try await fixture.transactions(1, from: stream)
        #expect(transactions[0].inserts.count == 1)
        await stream.close()
        _ = connection
    }

    @Test func withoutStatusUpdatesTheServerDropsAnUnreadStream() async throws {
        // The control for the test above: a 60 s interval and no reading, and wal_sender_timeout ends the stream.
        let fixture = try await ReplicationFixture.make(on: try await TestPostgres.sharedWithShortSenderTimeout())
        let (connection, stream) = try await fixture.start(statusInterval: .seconds(60))
        try await Task.sleep(for: TestPostgres.shortSenderTimeout * 2.5)
        let error = try await #require(throws: PostgresError.self) {
            for _ in 0..<100 { _ = try await stream.next(timeout: .milliseconds(200)) }
        }
        #expect(error.code == .connectionLost)
        _ = connection
    }

    @Test func aSilentServerIsNoticedWithinTheReceiveTimeout() async throws {
        // A stopped walsender keeps its TCP connection open and says nothing: what a silently dropped network looks
        // like from here. Without a receive timeout, reading would wait on it forever.
        let fixture = try await ReplicationFixture.make()
        let (connection, stream) = try await fixture.start(statusInterval: .seconds(60), receiveTimeout: .seconds(2))
        _ = try await stream.next(timeout: .milliseconds(200))
        let walsender = connection.backendPID
        #expect(kill(walsender, SIGSTOP) == 0)
        defer { kill(walsender, SIGCONT) }
        let sentBefore = stream.statusUpdatesSent
        let started = ContinuousClock.now
        let error = try await #require(throws: PostgresError.self) {
            for _ in 0..<200 { _ = try await stream.next(timeout: .milliseconds(200)) }
        }
        let noticedAfter = ContinuousClock.now - started
        #expect(error.code == .connectionLost)
        #expect(error.message.contains("receive timeout"), "\(error)")
        #expect(noticedAfter >= .milliseconds(1500) && noticedAfter < .seconds(15), "noticed after \(noticedAfter)")
        #expect(stream.statusUpdatesSent > sentBefore, "a reply was asked for after half the timeout")
        kill(walsender, SIGCONT)
        await stream.close()
    }

    @Test func anIdleServerIsAskedForRepliesAndKept() async throws {
        // Idle and alive: the server has nothing to send; the stream asks for a reply after half the timeout and
        // the answer keeps it, reading after reading, well past the timeout. A cluster of its own: on the shared one
        // other tests' WAL makes the walsender send keepalives, and a stream that hears those need not ask.
        let postgres = try await TestPostgres.start()
        defer { Task { try? await postgres.stop(mode: .immediate) } }
        let fixture = try await ReplicationFixture.make(on: postgres)
        let (connection, stream) = try await fixture.start(statusInterval: .seconds(60), receiveTimeout: .seconds(2))
        // Reading (not wall-clock time: a loaded machine reads less often) on a silent server: a reply request per
        // silent second of reading, each answered, and never a receive timeout. Reading throws if one passes.
        let asked = try await eventually(timeout: .seconds(60), every: .zero) {
            _ = try await stream.next(timeout: .milliseconds(300))
            return stream.statusUpdatesSent >= 3
        }
        #expect(asked, "three reply requests, and the answers kept the stream")
        // Time away from reading is not silence: a caller applying back-pressure for twice the timeout reads on.
        try await Task.sleep(for: .seconds(4))
        try await fixture.db.execute("INSERT INTO items VALUES (11, 'after the pause', NULL)")
        let transactions = try await fixture.transactions(1, from: stream)
        #expect(transactions[0].inserts.count == 1)
        await stream.close()
        _ = connection
    }

    @Test func keepaliveRequestsAreAnsweredAtOnce() async throws {
        // With a 60 s interval only the replies to the server's keepalive requests keep this stream alive. The server
        // allows half of wal_sender_timeout for a reply, so the reading runs on a thread of its own: a concurrency
        // pool kept busy by other tests under a full parallel run once held this reader back for over 5 s (the
        // server then rightly dropped the stream) although the reply itself went out at once.
        let fixture = try await ReplicationFixture.make(on: try await TestPostgres.sharedWithShortSenderTimeout())
        let (connection, stream) = try await fixture.start(statusInterval: .seconds(60))
        let outcome = await Self.onThread { () -> (requests: Int, repliedAtOnce: Bool, error: String?) in
            var requests = 0
            var repliedAtOnce = true
            let until = ContinuousClock.now + TestPostgres.shortSenderTimeout * 2.5
            while ContinuousClock.now < until {
                let sentBefore = stream.statusUpdatesSent
                do {
                    if case .primaryKeepalive(let keepalive)? = try stream.nextBlocking(timeout: .milliseconds(500)), keepalive.replyRequested {
                        requests += 1
                        repliedAtOnce = repliedAtOnce && stream.statusUpdatesSent == sentBefore + 1
                    }
                } catch {
                    return (requests, repliedAtOnce, "\(error)")
                }
            }
            return (requests, repliedAtOnce, nil)
        }
        #expect(outcome.error == nil, "\(outcome.error ?? "") after \(outcome.requests) keepalive request(s); server log:\n\(fixture.postgres.serverLogTail())")
        #expect(outcome.repliedAtOnce, "the reply went out before the frame was handed over")
        #expect(outcome.requests >= 2, "the server asked for replies (every wal_sender_timeout / 2) and kept the stream")
        #expect(stream.serverWALEnd > .invalid)
        await stream.close()
        _ = connection
    }

    /// Runs `body` on a new thread and returns its result.
    private static func onThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            Thread { continuation.resume(returning: body()) }.start()
        }
    }

    @Test func protocolTwoStreamsLargeInProgressTransactions() async throws {
        let fixture = try await ReplicationFixture.make()
        try await fixture.db.execute("INSERT INTO items SELECT g, 'streamed', repeat('z', 100) FROM generate_series(1, 3000) g")
        let (connection, stream) = try await fixture.start(protocolVersion: 2, streaming: true)
        var decoder = PGOutputDecoder()
        var starts = 0, inserts = 0
        var committed: StreamCommit?
        let deadline = ContinuousClock.now + .seconds(60)
        while committed == nil, ContinuousClock.now < deadline {
            guard case .xLogData(let data)? = try await stream.next(timeout: .seconds(1)) else { continue }
            switch try decoder.decode(data.data) {
            case .streamStart: starts += 1
            case .insert(let insert):
                #expect(insert.xid != nil && decoder.inStreamBlock)
                inserts += 1
            case .streamCommit(let commit): committed = commit
            default: break
            }
        }
        #expect(starts >= 2, "logical_decoding_work_mem = 64kB forces several blocks")
        #expect(inserts == 3000)
        #expect(try #require(committed).endLSN > .invalid)
        await stream.close()
        _ = connection
    }

    @Test func aSlotInUseOrMissingIsATypedError() async throws {
        let fixture = try await ReplicationFixture.make()
        let (connection, stream) = try await fixture.start()
        let second = try await fixture.replicationConnection()
        let inUse = try await #require(throws: PostgresError.self) {
            _ = try await second.startReplication(slot: fixture.slot, options: PGOutputOptions(publications: [fixture.publication]))
        }
        #expect(inUse.sqlState == "55006")
        let other = try await fixture.replicationConnection()
        let missing = try await #require(throws: PostgresError.self) {
            _ = try await other.startReplication(slot: "no_such_slot", options: PGOutputOptions(publications: [fixture.publication]))
        }
        #expect(missing.sqlState == "42704")
        let state = try #require(try await other.slotState(fixture.slot))
        #expect(state.isActive && state.isLogical && state.plugin == "pgoutput" && state.walStatus == "reserved")
        #expect(try await other.slotState("no_such_slot") == nil)
        let system = try await other.identifySystem()
        #expect(system.database == fixture.database && system.timeline == 1 && system.walFlushPosition > .invalid)
        await stream.close()
        _ = connection
    }

    @Test func aTerminatedWalsenderSurfacesAsConnectionLost() async throws {
        let fixture = try await ReplicationFixture.make()
        let (connection, stream) = try await fixture.start()
        try await fixture.db.query("SELECT pg_terminate_backend($1)", [Int(connection.backendPID)])
        let error = try await #require(throws: PostgresError.self) {
            for _ in 0..<100 { _ = try await stream.next(timeout: .milliseconds(200)) }
        }
        #expect(error.code == .connectionLost)
    }

    @Test func aServerRestartSurfacesAsConnectionLostAndNothingIsLost() async throws {
        let postgres = try await TestPostgres.start()
        let fixture = try await ReplicationFixture.make(on: postgres)
        try await fixture.db.execute("INSERT INTO items VALUES (1, 'before', NULL)")
        var (connection, stream) = try await fixture.start()
        let before = try await fixture.transactions(1, from: stream)
        try await postgres.restart(mode: .immediate)
        let error = try await #require(throws: PostgresError.self) {
            for _ in 0..<100 { _ = try await stream.next(timeout: .milliseconds(200)) }
        }
        #expect(error.code == .connectionLost)
        _ = connection
        let db = try await Connection.connect(postgres.conninfo(database: fixture.database))
        try await db.execute("INSERT INTO items VALUES (2, 'after', NULL)")
        (connection, stream) = try await fixture.start()
        // Nothing was confirmed, so the first transaction comes again (at-least-once), then the new one.
        let again = try await fixture.transactions(2, from: stream)
        #expect(again[0].begin.finalLSN == before[0].begin.finalLSN)
        #expect(again[1].inserts.map { Self.text($0.newTuple.values[1]) } == ["after"])
        await stream.close()
        try await postgres.stop(mode: .immediate)
    }
}
