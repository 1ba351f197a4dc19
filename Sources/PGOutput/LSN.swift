/// A PostgreSQL write-ahead log position (`pg_lsn`).
///
/// An LSN is a 64-bit byte offset into the WAL. PostgreSQL prints it as two hexadecimal halves separated by a slash,
/// `16/B374D848`; ``description`` and ``init(_:)`` use that form.
public struct LSN: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The position as a 64-bit byte offset.
    public var rawValue: UInt64

    /// The invalid position `0/0`, which PostgreSQL uses for "none".
    public static let invalid = LSN(rawValue: 0)

    /// Creates a position from its 64-bit value.
    public init(rawValue: UInt64) {
        self.rawValue = rawValue
    }

    /// Parses the textual form `X/X` (each half 1 to 8 hexadecimal digits, either case).
    ///
    /// Returns `nil` for anything else, including surrounding white space.
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2,
              (1...8).contains(parts[0].count), (1...8).contains(parts[1].count),
              text.allSatisfy({ $0.isHexDigit || $0 == "/" }),
              let high = UInt32(parts[0], radix: 16), let low = UInt32(parts[1], radix: 16)
        else { return nil }
        self.rawValue = UInt64(high) << 32 | UInt64(low)
    }

    /// The textual form PostgreSQL uses, e.g. `16/B374D848`.
    public var description: String {
        String(rawValue >> 32, radix: 16, uppercase: true) + "/" + String(rawValue & 0xFFFF_FFFF, radix: 16, uppercase: true)
    }

    public static func < (lhs: LSN, rhs: LSN) -> Bool { lhs.rawValue < rhs.rawValue }

    /// The number of WAL bytes from `other` to `self`, or 0 when `other` is ahead.
    public func bytes(since other: LSN) -> UInt64 {
        rawValue >= other.rawValue ? rawValue - other.rawValue : 0
    }
}
