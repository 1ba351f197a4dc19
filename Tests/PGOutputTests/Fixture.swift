import Foundation
import Testing

/// Loads the hex fixtures captured from PostgreSQL 15 by `scripts/capture-fixtures`.
enum Fixture {
    static func url(_ name: String) throws -> URL {
        try #require(Bundle.module.url(forResource: name, withExtension: "hex", subdirectory: "Fixtures"),
                     "missing fixture \(name).hex")
    }

    /// The single message in `name.hex`.
    static func bytes(_ name: String) throws -> [UInt8] {
        let lines = try lines(name)
        try #require(lines.count == 1, "\(name).hex should hold one message")
        return lines[0]
    }

    /// One message a line.
    static func lines(_ name: String) throws -> [[UInt8]] {
        let text = try String(contentsOf: url(name), encoding: .utf8)
        return try text.split(separator: "\n").map { try hex($0) }
    }

    /// Every single-message fixture, by name.
    static func allSingleMessages() throws -> [(String, [UInt8])] {
        let directory = try url("begin").deletingLastPathComponent()
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
            .filter { $0.hasSuffix(".hex") && !$0.hasPrefix("session-") }
            .map { String($0.dropLast(4)) }
            .sorted()
        return try names.map { ($0, try bytes($0)) }
    }

    static func hex(_ text: some StringProtocol) throws -> [UInt8] {
        let digits = Array(text.utf8)
        try #require(digits.count % 2 == 0, "odd hex length")
        return try stride(from: 0, to: digits.count, by: 2).map { index in
            try #require(UInt8(String(decoding: digits[index..<index + 2], as: UTF8.self), radix: 16))
        }
    }
}

extension Array where Element == UInt8 {
    var utf8String: String { String(decoding: self, as: UTF8.self) }
}

extension String {
    var bytes: [UInt8] { Array(utf8) }
}
