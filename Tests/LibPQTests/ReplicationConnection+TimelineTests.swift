@testable import LibPQ
import PGOutput
import TestSupport
import Testing

@Suite struct TimelineHistoryTests {
    @Test func aHistoryFileInByteaTextFormIsParsedLineByLine() {
        // What TIMELINE_HISTORY 3 returns as its content column: bytea in hex, a file of "parent<TAB>switchpoint<TAB>reason".
        let file = "1\t0/3000148\tno recovery target specified\n\n2\t0/5A01B20\tno recovery target specified\n"
        let hex = "\\x" + file.utf8.map { byte in String(byte, radix: 16).count == 1 ? "0" + String(byte, radix: 16) : String(byte, radix: 16) }.joined()
        #expect(ReplicationConnection.textOfBytea(hex) == file)
        #expect(ReplicationConnection.parseTimelineHistory(file) == [
            .init(timeline: 1, switchPoint: LSN("0/3000148")!), .init(timeline: 2, switchPoint: LSN("0/5A01B20")!),
        ])
    }

    @Test func malformedLinesAndOddHexAreSkippedNotFatal() {
        #expect(ReplicationConnection.parseTimelineHistory("# a comment\nx\t0/1\n1\tnot-an-lsn\n1\n3\t0/10\tok") == [
            .init(timeline: 3, switchPoint: LSN("0/10")!),
        ])
        #expect(ReplicationConnection.textOfBytea("\\x41zz4") == "\\x41zz4", "not bytea's hex output: kept as it is")
        #expect(ReplicationConnection.textOfBytea("plain text") == "plain text")
    }

    @Test func aPromotedStandbyReportsWhereItsNewTimelineBegan() async throws {
        let primary = try await TestPostgres.start()
        let admin = try await Connection.connect(primary.conninfo())
        try await admin.execute("CREATE TABLE t (n int)")
        let standby = try await TestPostgres.startStandby(of: primary, slot: "standby1")
        try await admin.execute("INSERT INTO t SELECT generate_series(1, 1000)")
        let flushed = try #require(LSN(try await admin.query("SELECT pg_current_wal_flush_lsn()::text AS l").first?["l"] ?? ""))
        let replica = try await Connection.connect(standby.conninfo())
        #expect(try await eventually {
            try await replica.query("SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS caught_up", [flushed.description]).first?.bool("caught_up") == true
        })
        await admin.close()
        try await primary.stop(mode: .immediate)
        try await standby.promote()
        await replica.close()

        let replication = try await ReplicationConnection.connect(standby.conninfo())
        let identity = try await replication.identifySystem()
        #expect(identity.timeline == 2)
        let history = try await replication.timelineHistory(2)
        #expect(history.count == 1 && history.first?.timeline == 1)
        let switchPoint = try #require(try await replication.timelineSwitchPoint(from: 1, into: 2))
        #expect(switchPoint >= flushed, "everything the standby had replayed is before the switch point")
        #expect(try await replication.timelineSwitchPoint(from: 7, into: 2) == nil)
        await replication.close()
        try await standby.stop(mode: .immediate)
    }
}
