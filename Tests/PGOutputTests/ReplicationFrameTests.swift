import Foundation
import Testing
@testable import PGOutput

@Suite struct ReplicationFrameTests {
    static func bigEndian(_ value: UInt64) -> [UInt8] {
        (0..<8).reversed().map { UInt8(truncatingIfNeeded: value >> UInt64($0 * 8)) }
    }

    @Test func decodesXLogData() throws {
        let payload = try Fixture.bytes("begin")
        let bytes = [UInt8(ascii: "w")] + Self.bigEndian(0x1_5300_0000) + Self.bigEndian(0x1_5400_0000)
            + Self.bigEndian(123_456) + payload
        guard case .xLogData(let frame) = try ReplicationFrame.decode(bytes) else {
            Issue.record("expected XLogData")
            return
        }
        #expect(frame.walStart == LSN("1/53000000"))
        #expect(frame.serverWALEnd == LSN("1/54000000"))
        #expect(frame.sendTime.rawValue == 123_456)
        #expect(frame.data == payload)
    }

    @Test func decodesKeepalive() throws {
        for reply: UInt8 in [0, 1] {
            let bytes = [UInt8(ascii: "k")] + Self.bigEndian(0xAB_CDEF) + Self.bigEndian(42) + [reply]
            #expect(try ReplicationFrame.decode(bytes)
                == .primaryKeepalive(PrimaryKeepalive(serverWALEnd: LSN(rawValue: 0xAB_CDEF), sendTime: .init(rawValue: 42),
                                                      replyRequested: reply == 1)))
        }
    }

    @Test func rejectsBadFrames() throws {
        let keepalive = [UInt8(ascii: "k")] + Self.bigEndian(1) + Self.bigEndian(2) + [0]
        for length in 0..<keepalive.count {
            #expect(throws: PGOutputError.self) { try ReplicationFrame.decode(Array(keepalive.prefix(length))) }
        }
        #expect(throws: PGOutputError.self) { try ReplicationFrame.decode(keepalive + [0]) }
        var badReply = keepalive
        badReply[17] = 7
        let error = try #require(throws: PGOutputError.self) { try ReplicationFrame.decode(badReply) }
        #expect(error.code == .invalidValue && error.offset == 17)
        let unknown = try #require(throws: PGOutputError.self) { try ReplicationFrame.decode([UInt8(ascii: "z")]) }
        #expect(unknown.code == .unknownMessageType)
        let shortXLog = [UInt8(ascii: "w")] + Self.bigEndian(1)
        #expect(throws: PGOutputError.self) { try ReplicationFrame.decode(shortXLog) }
    }

    @Test func encodesStandbyStatusUpdate() throws {
        let update = StandbyStatusUpdate(written: LSN("1/10")!, flushed: LSN("1/8")!, applied: LSN("1/8")!,
                                         clock: PostgresTimestamp(rawValue: 0x0102_0304_0506_0708), replyRequested: true)
        let bytes = update.encode()
        #expect(bytes.count == 34)
        #expect(bytes[0] == UInt8(ascii: "r"))
        #expect(Array(bytes[1..<9]) == Self.bigEndian(0x1_0000_0010))
        #expect(Array(bytes[9..<17]) == Self.bigEndian(0x1_0000_0008))
        #expect(Array(bytes[25..<33]) == [1, 2, 3, 4, 5, 6, 7, 8])
        #expect(bytes[33] == 1)
        #expect(try StandbyStatusUpdate.decode(bytes) == update)
    }

    @Test func timestampsUsePostgresEpoch() {
        let epoch = PostgresTimestamp(rawValue: 0)
        #expect(epoch.date == Date(timeIntervalSince1970: 946_684_800))
        let now = Date()
        #expect(abs(PostgresTimestamp(now).date.timeIntervalSince(now)) < 0.000_002)
    }
}
