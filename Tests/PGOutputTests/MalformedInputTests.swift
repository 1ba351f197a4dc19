import Testing
@testable import PGOutput

/// Truncated, overlong, unknown and randomly mutated input must produce a ``PGOutputError``, never a trap.
@Suite struct MalformedInputTests {
    /// Streamed fixtures carry an xid that only a decoder inside a stream block expects.
    static func inStream(_ name: String) -> Bool { name == "stream-insert" || name == "stream-relation" }

    @Test func everyTruncationOfEveryFixtureIsATypedError() throws {
        for (name, bytes) in try Fixture.allSingleMessages() where bytes.count > 1 {
            for length in 0..<bytes.count {
                let error = try #require(throws: PGOutputError.self, "\(name) cut to \(length) bytes") {
                    try PGOutputMessage.decode(Array(bytes.prefix(length)), inStream: Self.inStream(name))
                }
                #expect(error.offset <= length, "\(name): error offset \(error.offset) past the input")
                #expect(error.code == .truncated || length == 0 || error.code == .invalidValue, "\(name) at \(length): \(error)")
            }
        }
    }

    @Test func trailingBytesAreRejected() throws {
        for (name, bytes) in try Fixture.allSingleMessages() {
            let error = try #require(throws: PGOutputError.self, "\(name) with a trailing byte") {
                try PGOutputMessage.decode(bytes + [0], inStream: Self.inStream(name))
            }
            #expect(error.code == .trailingBytes || error.code == .invalidValue, "\(name): \(error)")
        }
    }

    @Test func unknownMessageTypeNamesTheByte() throws {
        let error = try #require(throws: PGOutputError.self) { try PGOutputMessage.decode([UInt8(ascii: "Z"), 0, 0]) }
        #expect(error.code == .unknownMessageType)
        #expect(error.description.contains("90 'Z'"))
    }

    @Test func badTupleTagNamesColumnAndOffset() throws {
        var bytes = try Fixture.bytes("insert")
        // Type byte, OID (4), 'N', column count (2): the first column's kind tag is at offset 8.
        bytes[8] = UInt8(ascii: "x")
        let error = try #require(throws: PGOutputError.self) { try PGOutputMessage.decode(bytes) }
        #expect(error.message == "Insert")
        #expect(error.field == "tuple column 0 kind")
        #expect(error.offset == 8)
    }

    @Test func negativeLengthsAreRejected() throws {
        var bytes = try Fixture.bytes("insert")
        bytes[9] = 0xFF // the first column's length becomes negative
        let error = try #require(throws: PGOutputError.self) { try PGOutputMessage.decode(bytes) }
        #expect(error.code == .invalidValue && error.field == "tuple column 0 length")
    }

    @Test func hugeCountsDoNotAllocate() throws {
        // A Truncate claiming two billion relations in a 10-byte message must fail before reserving memory.
        let bytes: [UInt8] = [UInt8(ascii: "T"), 0x7F, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 1]
        let error = try #require(throws: PGOutputError.self) { try PGOutputMessage.decode(bytes) }
        #expect(error.code == .truncated && error.field == "relation count")
    }

    @Test func randomMutationsNeverTrap() throws {
        var generator = SplitMix64(seed: 0x7A11_6A7E)
        let fixtures = try Fixture.allSingleMessages().filter { $0.1.count < 1_000 }
        var decoded = 0, rejected = 0
        for _ in 0..<50_000 {
            let (name, original) = fixtures[Int(generator.next() % UInt64(fixtures.count))]
            var bytes = original
            for _ in 0...(generator.next() % 4) {
                switch generator.next() % 4 {
                case 0: bytes[Int(generator.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: generator.next())
                case 1: bytes.removeLast(Int(generator.next() % UInt64(bytes.count)))
                case 2: bytes.insert(UInt8(truncatingIfNeeded: generator.next()), at: Int(generator.next() % UInt64(bytes.count + 1)))
                default: if bytes.count > 1 { bytes.remove(at: Int(generator.next() % UInt64(bytes.count))) }
                }
                if bytes.isEmpty { bytes = [0] }
            }
            var decoder = PGOutputDecoder()
            do {
                _ = try decoder.decode(bytes)
                decoded += 1
            } catch {
                rejected += 1
                _ = "\(name): \(error)"
            }
        }
        #expect(decoded + rejected == 50_000)
        #expect(rejected > 10_000, "mutations should mostly be caught")
    }
}

/// A small deterministic generator, so a failing mutation can be reproduced from the seed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
