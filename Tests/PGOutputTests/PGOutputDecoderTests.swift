import Testing
@testable import PGOutput

/// Whole sessions as PostgreSQL 15 sent them, decoded in order.
@Suite struct PGOutputDecoderTests {
    @Test func protocolOneSessionDecodesWithBalancedTransactionsAndNamedRows() throws {
        var decoder = PGOutputDecoder()
        var open = false, transactions = 0, inserts: [Row] = [], lastEnd = LSN.invalid
        var beginFinal = LSN.invalid
        for bytes in try Fixture.lines("session-v1") {
            switch try decoder.decode(bytes) {
            case .begin(let begin):
                #expect(!open)
                open = true
                beginFinal = begin.finalLSN
            case .commit(let commit):
                #expect(open)
                open = false
                transactions += 1
                #expect(commit.commitLSN == beginFinal, "Commit's LSN is the one Begin announced")
                #expect(commit.endLSN > commit.commitLSN)
                #expect(commit.endLSN > lastEnd, "commits arrive in LSN order")
                lastEnd = commit.endLSN
            case .insert(let insert):
                #expect(open)
                inserts.append(try decoder.row(relationID: insert.relationID, tuple: insert.newTuple))
            case .streamStart, .streamStop, .streamCommit, .streamAbort:
                Issue.record("protocol 1 never streams")
            default:
                break
            }
        }
        #expect(!open)
        #expect(transactions >= 10)
        let first = try #require(inserts.first)
        #expect(first.relation.name == "items")
        #expect(first["name"]?.string == "first")
        #expect(first["feeling"]?.string == "happy")
        #expect(first["data"]?.string == "\\x00ff10")
        #expect(first["missing"] == nil)
        // The rolled-back bulk insert is absent; the committed one is complete.
        #expect(inserts.filter { $0["name"]?.string == "bulk" }.count == 301)
    }

    @Test func protocolTwoSessionStreamsAbortedAndCommittedTransactions() throws {
        var decoder = PGOutputDecoder()
        var rowsByXID: [UInt32: Int] = [:]
        var aborted: Set<UInt32> = [], committed: Set<UInt32> = []
        for bytes in try Fixture.lines("session-v2-stream") {
            let message = try decoder.decode(bytes)
            switch message {
            case .insert(let insert):
                let xid = try #require(insert.xid, "changes inside a stream block carry the xid")
                #expect(decoder.inStreamBlock)
                rowsByXID[xid, default: 0] += 1
            case .streamAbort(let abort): aborted.insert(abort.xid)
            case .streamCommit(let commit): committed.insert(commit.xid)
            default: break
            }
        }
        #expect(!decoder.inStreamBlock)
        #expect(aborted.count == 1 && committed.count == 1 && aborted.isDisjoint(with: committed))
        // The committed transaction arrives whole, over several blocks; the aborted one only up to where the
        // server learnt of the abort.
        #expect(rowsByXID[committed.first!] == 301)
        #expect((1..<301).contains(rowsByXID[aborted.first!] ?? 0))
    }

    @Test func unbalancedStreamBlocksAreErrors() throws {
        var decoder = PGOutputDecoder()
        #expect(throws: PGOutputError.self) { try decoder.decode(Fixture.bytes("stream-stop")) }
        _ = try decoder.decode(Fixture.bytes("stream-start"))
        #expect(throws: PGOutputError.self) { try decoder.decode(Fixture.bytes("stream-start")) }
    }

    @Test func rowsNeedTheirRelation() throws {
        let decoder = PGOutputDecoder()
        guard case .insert(let insert) = try PGOutputMessage.decode(Fixture.bytes("insert")) else { return }
        let error = try #require(throws: PGOutputError.self) { try decoder.row(relationID: insert.relationID, tuple: insert.newTuple) }
        #expect(error.code == .unknownRelation)
        var known = PGOutputDecoder()
        _ = try known.decode(Fixture.bytes("relation"))
        let short = TupleData(values: [.null])
        let mismatch = try #require(throws: PGOutputError.self) { try known.row(relationID: insert.relationID, tuple: short) }
        #expect(mismatch.code == .invalidValue)
    }
}
