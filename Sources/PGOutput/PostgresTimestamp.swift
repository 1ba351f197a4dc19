import Foundation

/// A PostgreSQL protocol timestamp: microseconds since 2000-01-01 00:00:00 UTC.
///
/// The replication protocol and pgoutput send commit times and clocks in this form.
public struct PostgresTimestamp: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    /// Seconds between the Unix epoch and PostgreSQL's epoch (2000-01-01).
    static let unixEpochOffsetSeconds: Int64 = 946_684_800

    /// Microseconds since 2000-01-01 00:00:00 UTC.
    public var rawValue: Int64

    /// Creates a timestamp from microseconds since PostgreSQL's epoch.
    public init(rawValue: Int64) {
        self.rawValue = rawValue
    }

    /// Creates a timestamp from a `Date`, truncated to whole microseconds.
    public init(_ date: Date) {
        let micros = (date.timeIntervalSince1970 - Double(Self.unixEpochOffsetSeconds)) * 1_000_000
        self.rawValue = Int64(micros.rounded(.down))
    }

    /// The current time.
    public static var now: PostgresTimestamp { PostgresTimestamp(Date()) }

    /// The same instant as a `Date`.
    public var date: Date {
        Date(timeIntervalSince1970: Double(rawValue) / 1_000_000 + Double(Self.unixEpochOffsetSeconds))
    }

    /// Microseconds since the Unix epoch (1970-01-01 00:00:00 UTC).
    public var unixMicroseconds: Int64 { rawValue + Self.unixEpochOffsetSeconds * 1_000_000 }

    public var description: String { date.description }

    public static func < (lhs: PostgresTimestamp, rhs: PostgresTimestamp) -> Bool { lhs.rawValue < rhs.rawValue }
}
