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

    /// The instant in RFC 3339 form, UTC, with microseconds: `2026-12-06T23:25:48.123456Z`.
    public var rfc3339: String {
        let micros = unixMicroseconds
        let seconds = micros >= 0 ? micros / 1_000_000 : (micros - 999_999) / 1_000_000
        let fraction = micros - seconds * 1_000_000
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = seconds - days * 86_400
        // Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's civil_from_days).
        let shifted = days + 719_468
        let era = (shifted >= 0 ? shifted : shifted - 146_096) / 146_097
        let dayOfEra = shifted - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1_460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        func pad(_ value: Int64, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T\(pad(secondOfDay / 3_600, 2)):\(pad(secondOfDay / 60 % 60, 2)):"
            + "\(pad(secondOfDay % 60, 2)).\(pad(fraction, 6))Z"
    }

    public static func < (lhs: PostgresTimestamp, rhs: PostgresTimestamp) -> Bool { lhs.rawValue < rhs.rawValue }
}
