import Testing
@testable import PGOutput

@Suite struct LSNTests {
    @Test(arguments: [("0/0", UInt64(0)), ("16/B374D848", 0x16_B374_D848), ("FFFFFFFF/FFFFFFFF", UInt64.max), ("0/1", 1), ("a/b", 0xA_0000_000B)])
    func parsesAndPrints(text: String, value: UInt64) throws {
        let lsn = try #require(LSN(text))
        #expect(lsn.rawValue == value)
        #expect(LSN(lsn.description) == lsn)
        #expect(lsn.description == text.uppercased())
    }

    @Test(arguments: ["", "0", "/", "0/", "/0", "1/2/3", "G/0", "123456789/0", " 0/0", "0/0 ", "-1/0", "+1/0"])
    func rejectsMalformed(text: String) {
        #expect(LSN(text) == nil)
    }

    @Test func ordersAndMeasures() {
        let a = LSN(rawValue: 100), b = LSN(rawValue: 250)
        #expect(a < b)
        #expect(b.bytes(since: a) == 150)
        #expect(a.bytes(since: b) == 0)
    }
}
